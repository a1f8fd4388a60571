"""A subscription's timeline: its phases clipped to a window, its periods, trial end and end.

Pure Python, no AWS. Times on a subscription document are ISO strings (or datetimes) with an offset.

Example:
    >>> from datetime import UTC
    >>> sub = {"start_at": "2026-01-01T00:00:00+00:00", "interval": "month", "trial_end": None,
    ...        "phases": [{"plan_code": "pro", "plan_version": 1,
    ...                    "start_at": "2026-01-01T00:00:00+00:00", "end_at": None}]}
    >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    >>> [(s.index, s.plan_code, s.start == t0, s.end == t1) for s in phase_spans(sub, t0, t1)]
    [(0, 'pro', True, True)]
    >>> next_period_end(sub, t1).date().isoformat()
    '2026-03-01'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from neruba.domain.periods import add_interval
from neruba.domain.pricing import PricingError

Versions = Mapping[tuple[str, int], Mapping[str, Any]]
_MICRO = timedelta(microseconds=1)


def at_time(value: Any) -> datetime | None:
    """A subscription time (ISO string or datetime) as an aware datetime; ``None`` stays ``None``."""
    if value is None:
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise PricingError("subscription times are timezone-aware")
    return at


def seconds(start: datetime, end: datetime) -> Decimal:
    """Exact length of [start, end) in seconds (microsecond resolution).

    Example:
        >>> from datetime import UTC
        >>> seconds(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 1, 500, tzinfo=UTC))
        Decimal('1.000500')
    """
    return Decimal((end - start) // _MICRO).scaleb(-6)


def trial_end(subscription: Mapping[str, Any]) -> datetime | None:
    """The instant charging starts (``trial_end``), or ``None`` without a trial."""
    return at_time(subscription.get("trial_end"))


def paid_part(start: datetime, end: datetime, trial: datetime | None) -> tuple[datetime, datetime] | None:
    """The part of [start, end) at or after the trial end, ``None`` when all of it is trial.

    Example:
        >>> from datetime import UTC
        >>> a, b, t = (datetime(2026, 1, d, tzinfo=UTC) for d in (1, 31, 15))
        >>> paid_part(a, b, t)[0].day, paid_part(a, b, None)[0].day, paid_part(a, t, b)
        (15, 1, None)
    """
    lo = start if trial is None else max(start, trial)
    return (lo, end) if lo < end else None


@dataclass(frozen=True, slots=True)
class PhaseSpan:
    """The part of one subscription phase that falls inside a window."""

    index: int
    plan_code: str
    plan_version: int
    start: datetime
    end: datetime
    phase_start: datetime
    phase_end: datetime | None


def phase_spans(subscription: Mapping[str, Any], start: datetime, end: datetime) -> list[PhaseSpan]:
    """Each phase clipped to [start, end); phases (or parts) outside it are left out."""
    spans = []
    for index, phase in enumerate(subscription.get("phases") or []):
        phase_start, phase_end = at_time(phase["start_at"]), at_time(phase.get("end_at"))
        assert phase_start is not None
        lo = max(phase_start, start)
        hi = end if phase_end is None else min(phase_end, end)
        if lo < hi:
            spans.append(
                PhaseSpan(
                    index, str(phase["plan_code"]), int(phase["plan_version"]), lo, hi, phase_start, phase_end
                )
            )
    return spans


def phase_at(subscription: Mapping[str, Any], at: datetime) -> tuple[int, Mapping[str, Any]] | None:
    """The phase in force at instant ``at`` (start <= at < end), with its index."""
    for index, phase in enumerate(subscription.get("phases") or []):
        phase_start, phase_end = at_time(phase["start_at"]), at_time(phase.get("end_at"))
        assert phase_start is not None
        if phase_start <= at and (phase_end is None or at < phase_end):
            return index, phase
    return None


def ended_at(subscription: Mapping[str, Any]) -> datetime | None:
    """When the subscription ended (an immediate cancellation), or ``None``."""
    return at_time(subscription.get("ended_at"))


def ends_at(subscription: Mapping[str, Any], period_end: datetime) -> bool:
    """True when the subscription does not continue past ``period_end`` (ended, or canceled at period end)."""
    ended = ended_at(subscription)
    if ended is not None and ended <= period_end:
        return True
    canceled = at_time(subscription.get("canceled_at"))
    return bool(subscription.get("cancel_at_period_end")) and canceled is not None and canceled < period_end


def next_period_end(subscription: Mapping[str, Any], period_end: datetime) -> datetime:
    """The end of the period that starts at ``period_end`` (periods anchored at the subscription start)."""
    anchor = at_time(subscription["start_at"])
    assert anchor is not None
    interval = str(subscription["interval"])
    n = 1
    while add_interval(anchor, interval, n) <= period_end:
        n += 1
    return add_interval(anchor, interval, n)


def version_of(versions: Versions, code: str, number: int) -> Mapping[str, Any]:
    """The plan version the caller provided, or ``PricingError``."""
    try:
        return versions[(code, number)]
    except KeyError as exc:
        raise PricingError(f"plan version {code} v{number} was not provided") from exc
