"""EventBridge schedules, fired on a timer (``rate(...)``) or on demand."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from neruba_tools.local.template import ACCOUNT_ID, REGION

LOG = logging.getLogger("neruba.local")
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def rate_seconds(expression: str) -> int | None:
    """Seconds between fires of ``rate(N unit)``; None for cron expressions (fired on demand only)."""
    found = re.fullmatch(r"rate\((\d+)\s+(\w+)\)", expression.strip())
    return int(found.group(1)) * _UNITS[found.group(2)] if found and found.group(2) in _UNITS else None


def scheduled_event(name: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{name}"],
        "detail": {},
    }


class Schedule:
    def __init__(self, name: str, expression: str, function: Any) -> None:
        self.name, self.expression, self.function = name, expression, function
        self.interval = rate_seconds(expression)
        self._stop = threading.Event()

    def fire(self) -> Any:
        return self.function.invoke(scheduled_event(self.name))

    def start(self) -> None:
        if self.interval:
            threading.Thread(target=self._run, name=f"schedule-{self.name}", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.fire()
            except Exception:
                LOG.exception("schedule %s failed", self.name)
