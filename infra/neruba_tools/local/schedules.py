"""EventBridge schedules: ``rate(...)`` and ``cron(...)`` fired on a timer thread, or on demand.

The cron evaluator covers AWS's six fields (minutes hours day-of-month month day-of-week year) with ``*``,
``?``, numbers, names (JAN, MON), lists, ranges and ``/`` steps, in UTC. ``L``, ``W`` and ``#`` are not
evaluated: such a schedule only fires on demand (``Schedules.fire``), and says so in ``problem``.

Example:
    >>> CronExpression("cron(0/15 8-17 ? * MON-FRI *)").next_after(datetime(2024, 1, 6, tzinfo=UTC))
    datetime.datetime(2024, 1, 8, 8, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba_tools.local.intrinsics import ACCOUNT_ID, REGION

LOG = logging.getLogger("neruba.local")
UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
DAYS = {d: i + 1 for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
# (low, high, names) of minutes, hours, day-of-month, month, day-of-week (1 = SUN), year
FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, MONTHS),
    (1, 7, DAYS),
    (1970, 2199, {}),
)


class ScheduleError(ValueError):
    """A schedule expression the local stack cannot evaluate (it can still be fired on demand)."""


def rate_seconds(expression: str) -> int | None:
    """Seconds between fires of ``rate(N unit)``; None when ``expression`` is not a rate.

    Example:
        >>> rate_seconds("rate(5 minutes)"), rate_seconds("cron(0 * * * ? *)")
        (300, None)
    """
    if not expression.strip().startswith("rate("):
        return None
    found = re.fullmatch(r"rate\(\s*(\d+)\s+(\w+)\s*\)", expression.strip())
    if not found or found.group(2) not in UNITS or int(found.group(1)) < 1:
        raise ScheduleError(f"not a rate expression: {expression!r}")
    return int(found.group(1)) * UNITS[found.group(2)]


def _parse_field(text: str, low: int, high: int, names: dict[str, int]) -> set[int] | None:
    """The values a cron field allows; None for ``?``."""
    if text == "?":
        return None
    text = re.sub(r"[A-Z]{3}", lambda m: str(names.get(m.group(), m.group())), text.upper())
    if re.search(r"[LW#]", text):
        raise ScheduleError(f"cron field {text!r}: L, W and # are not evaluated locally")

    def number(token: str) -> int:
        if not token.isdigit() or not low <= int(token) <= high:
            raise ScheduleError(f"cron value {token!r} is not within {low}-{high}")
        return int(token)

    allowed: set[int] = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ScheduleError(f"cron step {step!r} is not a positive number")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (number(t) for t in base.split("-", 1))
        else:
            first = number(base)
            last = high if step else first
        if first > last:
            raise ScheduleError(f"cron range {base!r} wraps around; write it as a list")
        allowed.update(range(first, last + 1, int(step) if step else 1))
    return allowed


@dataclass(frozen=True)
class CronExpression:
    """An AWS ``cron(...)`` expression (UTC)."""

    text: str
    fields: tuple[set[int] | None, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        found = re.fullmatch(r"cron\((.*)\)", self.text.strip())
        parts = found.group(1).split() if found else []
        if len(parts) != 6:
            raise ScheduleError(f"not a six-field cron expression: {self.text!r}")
        fields = tuple(_parse_field(p, *spec) for p, spec in zip(parts, FIELDS, strict=True))
        if (fields[2] is None) == (fields[4] is None):
            raise ScheduleError(f"{self.text!r}: exactly one of day-of-month and day-of-week must be '?'")
        if None in (fields[0], fields[1], fields[3], fields[5]):
            raise ScheduleError(f"{self.text!r}: '?' is only allowed for the day fields")
        object.__setattr__(self, "fields", fields)

    def _day_matches(self, moment: datetime) -> bool:
        days, weekdays = self.fields[2], self.fields[4]
        if days is not None:
            return moment.day in days
        return weekdays is not None and (moment.weekday() + 1) % 7 + 1 in weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first minute strictly after ``moment`` that the expression matches."""
        minutes, hours, _, months, _, years = self.fields
        assert minutes and hours and months and years
        t = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        while t.year <= max(years):
            if t.year not in years:
                t = datetime(t.year + 1, 1, 1, tzinfo=UTC)
            elif t.month not in months:
                t = datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=UTC)
            elif not self._day_matches(t):
                t = datetime(t.year, t.month, t.day, tzinfo=UTC) + timedelta(days=1)
            elif t.hour not in hours:
                t = datetime(t.year, t.month, t.day, t.hour, tzinfo=UTC) + timedelta(hours=1)
            elif t.minute not in minutes:
                t += timedelta(minutes=1)
            else:
                return t
        raise ScheduleError(f"{self.text!r} never fires again")


def scheduled_event(rule_arn: str, now: datetime | None = None) -> dict[str, Any]:
    """The event EventBridge sends for a schedule rule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


class Schedule:
    """One schedule of a function; ``problem`` says why it does not fire on its own (if it does not)."""

    def __init__(
        self,
        name: str,
        expression: str,
        invoke: Callable[[dict[str, Any]], Any],
        enabled: bool = True,
        input: str | None = None,
        rule_name: str | None = None,
    ) -> None:
        self.name, self.expression, self.invoke, self.enabled, self.input = (
            name,
            expression,
            invoke,
            enabled,
            input,
        )
        self.rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule_name or name}"
        self.interval: int | None = None
        self.cron: CronExpression | None = None
        self.problem = "" if enabled else "disabled in the template"
        self.fired = 0
        try:
            self.interval = rate_seconds(expression)
            self.cron = None if self.interval else CronExpression(expression)
        except ScheduleError as exc:
            self.problem = self.problem or str(exc)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def timed(self) -> bool:
        """Whether a timer fires it (else only ``fire``)."""
        return self.enabled and not self.problem

    def next_fire(self, after: datetime) -> datetime | None:
        if not self.timed:
            return None
        return after + timedelta(seconds=self.interval) if self.interval else self.cron.next_after(after)  # type: ignore[union-attr]

    def fire(self) -> Any:
        """Run the function now with the schedule's event (its constant Input, if it has one)."""
        self.fired += 1
        event = json.loads(self.input) if self.input else scheduled_event(self.rule_arn)
        return self.invoke(event)

    def start(self) -> None:
        if self.timed and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"schedule-{self.name}", daemon=True)
            self._thread.start()

    def request_stop(self) -> None:
        """Ask the timer to stop (returns at once; ``stop`` also waits for it)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        due = self.next_fire(datetime.now(UTC))
        while due is not None and not self._stop.wait(max(0.0, (due - datetime.now(UTC)).total_seconds())):
            try:
                self.fire()
            except Exception:
                LOG.exception("schedule %s failed", self.name)
            due = self.next_fire(due)
