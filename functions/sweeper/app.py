"""Scheduled consistency sweep: run every registered check over the window that settled, store a report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba import bootstrap
from neruba.logic.sweeps.runner import run_sweep as run_checks_sweep
from neruba.logic.sweeps.usage import SETTLE
from neruba.observability import logger, metrics

WINDOW = timedelta(hours=2)


def run_sweep(
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    checks: Sequence[str] | None = None,
    trigger: str = "schedule",
    actor: str = "schedule",
) -> dict[str, Any]:
    """Run ``checks`` (default: all) over [start, end), store the report and return it."""
    return run_checks_sweep(
        bootstrap.ops(), checks, start, end, trigger=trigger, actor=actor, billing=bootstrap.billing, now=now
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """EventBridge schedule: sweep the two hours that settled before now."""
    end = datetime.now(UTC) - SETTLE
    report = run_sweep(end - WINDOW, end)
    return {"id": report["id"], "found": report["found"], "repaired": report["repaired"]}
