"""A subscription's timeline: its phases clipped to a window, its periods, trial end and end.

Pure Python, no AWS. The rules work on a :class:`Timeline`: the fields of a subscription they read, times
as aware datetimes, read once from a subscription document by :meth:`Timeline.of` (times there are ISO
strings or datetimes with an offset). ``dal.plans.Subscription.timeline`` is the stored subscription's;
every rule also takes a document (a subscription being built) and reads it through the same function.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from neruba.domain.periods import add_interval
from neruba.domain.pricing import PricingError

Versions = Mapping[tuple[str, int], Mapping[str, Any]]
Period = tuple[datetime, datetime]
AddInterval = Callable[[datetime, str, int], datetime]
_MICRO = timedelta(microseconds=1)


def at_time(value: Any) -> datetime | None:
    """A subscription time (ISO string or datetime) as an aware datetime; ``None`` stays ``None``."""
    if value is None:
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise PricingError("subscription times are timezone-aware")
    return at


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase of a subscription: a plan version from ``start`` to ``end`` (None: open), recorded at
    ``recorded`` (None for phases stored before plan changes recorded it)."""

    plan_code: str
    plan_version: int
    start: datetime
    end: datetime | None
    recorded: datetime | None = None

    @classmethod
    def of(cls, phase: Mapping[str, Any]) -> Phase:
        """The phase a subscription document's phase entry describes."""
        start = at_time(phase["start_at"])
        assert start is not None
        return cls(
            str(phase["plan_code"]),
            int(phase["plan_version"]),
            start,
            at_time(phase.get("end_at")),
            at_time(phase.get("created_at")),
        )


@dataclass(frozen=True, slots=True)
class Timeline:
    """What the phase, fee and overlap rules read of a subscription (see the module docstring)."""

    id: str | None
    customer_id: str | None
    currency: str | None
    interval: str | None
    start: datetime | None
    status: str | None
    trial_end: datetime | None
    ended_at: datetime | None
    canceled_at: datetime | None
    cancel_at_period_end: bool
    phases: tuple[Phase, ...]

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Timeline:
        """The timeline of subscription document ``doc`` (fields it lacks read as None, or no phases)."""

        def text(name: str) -> str | None:
            value = doc.get(name)
            return None if value is None else str(value)

        return cls(
            id=text("id"),
            customer_id=text("customer_id"),
            currency=text("currency"),
            interval=text("interval"),
            start=at_time(doc.get("start_at")),
            status=text("status"),
            trial_end=at_time(doc.get("trial_end")),
            ended_at=at_time(doc.get("ended_at")),
            canceled_at=at_time(doc.get("canceled_at")),
            cancel_at_period_end=bool(doc.get("cancel_at_period_end")),
            phases=tuple(Phase.of(p) for p in doc.get("phases") or ()),
        )

    @property
    def anchor(self) -> datetime:
        """The start its periods are counted from (a subscription always has one)."""
        if self.start is None:
            raise PricingError("a subscription has a start_at")
        return self.start

    @property
    def every(self) -> str:
        """Its billing interval (a subscription always has one)."""
        if self.interval is None:
            raise PricingError("a subscription has an interval")
        return self.interval


Terms = Timeline | Mapping[str, Any]


def timeline(subscription: Terms) -> Timeline:
    """``subscription`` as a :class:`Timeline` (a document is read once, with :meth:`Timeline.of`)."""
    return subscription if isinstance(subscription, Timeline) else Timeline.of(subscription)


def seconds(start: datetime, end: datetime) -> Decimal:
    """Exact length of [start, end) in seconds (microsecond resolution).

    Example:
        >>> from datetime import UTC
        >>> seconds(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 1, 500, tzinfo=UTC))
        Decimal('1.000500')
    """
    return Decimal((end - start) // _MICRO).scaleb(-6)


def trial_end(subscription: Terms) -> datetime | None:
    """The instant charging starts (``trial_end``), or ``None`` without a trial."""
    return timeline(subscription).trial_end


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


def phase_spans(subscription: Terms, start: datetime, end: datetime) -> list[PhaseSpan]:
    """Each phase clipped to [start, end); phases (or parts) outside it are left out."""
    spans = []
    for index, phase in enumerate(timeline(subscription).phases):
        lo = max(phase.start, start)
        hi = end if phase.end is None else min(phase.end, end)
        if lo < hi:
            spans.append(
                PhaseSpan(index, phase.plan_code, phase.plan_version, lo, hi, phase.start, phase.end)
            )
    return spans


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour ``at`` falls in (usage is kept per hour)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_after(at: datetime) -> datetime:
    """The end of the hour ``at`` falls in: ``at`` itself when on the hour, else the next hour's start.

    Example:
        >>> from datetime import UTC
        >>> [hour_after(datetime(2026, 1, 1, 9, m, tzinfo=UTC)).hour for m in (15, 0)]
        [10, 9]
    """
    hour = hour_of(at)
    return hour if hour == at else hour + timedelta(hours=1)


def owned_hours(start: datetime, end: datetime | None, *, first: bool) -> tuple[datetime, datetime | None]:
    """The whole hours a phase (or subscription) [start, end) rates (``rated_at``): from the hour it starts
    in when it is the subscription's first (that hour is its own), else from the next whole hour; to the
    end of the hour it ends in (that hour's start found it in force)."""
    return (hour_of(start) if first else hour_after(start)), None if end is None else hour_after(end)


def rated_at(at: datetime, subscription_start: datetime) -> datetime:
    """The instant that places usage at ``at`` in a phase: usage is stored per hour, so it is the start
    of the event's UTC hour, or the subscription's start for the hour the subscription starts in.

    Rating in arrears and pay-in-advance billing both use it, so the hour of a plan change belongs to
    one phase (the one in force at the hour's start) and each event is billed by exactly one phase.

    Example:
        >>> from datetime import UTC
        >>> start = datetime(2026, 1, 1, 9, 15, tzinfo=UTC)
        >>> rated_at(datetime(2026, 1, 2, 0, 40, tzinfo=UTC), start).isoformat()
        '2026-01-02T00:00:00+00:00'
        >>> rated_at(datetime(2026, 1, 1, 9, 40, tzinfo=UTC), start) == start
        True
    """
    hour = hour_of(at)
    return subscription_start if hour <= subscription_start < hour + timedelta(hours=1) else hour


def phase_at(subscription: Terms, at: datetime) -> tuple[int, Phase] | None:
    """The phase in force at instant ``at`` (start <= at < end), with its index."""
    for index, phase in enumerate(timeline(subscription).phases):
        if phase.start <= at and (phase.end is None or at < phase.end):
            return index, phase
    return None


def ended_at(subscription: Terms) -> datetime | None:
    """When the subscription ended (an immediate cancellation), or ``None``."""
    return timeline(subscription).ended_at


def ends_at(subscription: Terms, period_end: datetime) -> bool:
    """True when the subscription does not continue past ``period_end`` (ended, or canceled at period end)."""
    terms = timeline(subscription)
    if terms.ended_at is not None and terms.ended_at <= period_end:
        return True
    canceled = terms.canceled_at
    return terms.cancel_at_period_end and canceled is not None and canceled < period_end


def next_period_end(subscription: Terms, period_end: datetime, add: AddInterval = add_interval) -> datetime:
    """The end of the period that starts at ``period_end`` (periods anchored at the subscription start);
    more generally the first period boundary after that instant."""
    terms = timeline(subscription)
    anchor, interval = terms.anchor, terms.every
    n = 1
    while add(anchor, interval, n) <= period_end:
        n += 1
    return add(anchor, interval, n)


def subscription_end(subscription: Terms, add: AddInterval = add_interval) -> datetime | None:
    """When the subscription stops (or stopped): ``ended_at`` (an immediate cancellation), or the end of
    the period in which ``cancel_at_period_end`` was requested; ``None`` while it runs on.

    Example:
        >>> sub = {"start_at": "2026-01-31T00:00:00+00:00", "interval": "month", "ended_at": None,
        ...        "cancel_at_period_end": True, "canceled_at": "2026-03-05T00:00:00+00:00"}
        >>> subscription_end(sub).date().isoformat()
        '2026-03-31'
    """
    terms = timeline(subscription)
    if terms.ended_at is not None:
        return terms.ended_at
    if terms.cancel_at_period_end and terms.canceled_at is not None:
        return next_period_end(terms, terms.canceled_at, add)
    return None


def state_at(subscription: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The subscription as it stands at ``now``: one canceled at period end reads ``canceled`` with its
    ``ended_at`` once that end has passed (nothing has to write it then).

    Example:
        >>> sub = {"start_at": "2026-01-01T00:00:00+00:00", "interval": "month", "status": "active",
        ...        "ended_at": None, "cancel_at_period_end": True, "canceled_at": "2026-01-05T00:00:00+00:00"}
        >>> from datetime import UTC
        >>> state_at(sub, datetime(2026, 2, 1, tzinfo=UTC))["ended_at"]
        '2026-02-01T00:00:00+00:00'
    """
    view = dict(subscription)
    end = subscription_end(subscription)
    if view.get("status") == "active" and end is not None and end <= now:
        view.update(status="canceled", ended_at=end.isoformat())
    return view


def timeline_at(terms: Timeline, now: datetime) -> Timeline:
    """:func:`state_at` of a timeline: ``canceled``, ended at its period end, once that end has passed."""
    end = subscription_end(terms)
    if terms.status == "active" and end is not None and end <= now:
        return replace(terms, status="canceled", ended_at=end)
    return terms


def rating_period(subscription: Terms, start: datetime, end: datetime) -> Period:
    """The period the fees and minimum of window [start, end) are prorated over: the window itself,
    except the final window of a subscription canceled inside a period, which stops at ``ended_at`` but
    is rated over its whole period [start, period end) (its time simply ends at ``ended_at``).

    Example:
        >>> from datetime import UTC
        >>> sub = {"start_at": "2026-01-01T00:00:00+00:00", "interval": "month",
        ...        "ended_at": "2026-01-11T00:00:00+00:00"}
        >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 11, tzinfo=UTC)
        >>> rating_period(sub, t0, t1)[1].date().isoformat()
        '2026-02-01'
    """
    terms = timeline(subscription)
    if terms.ended_at is not None and end == terms.ended_at:
        whole = next_period_end(terms, start)
        if whole > end:
            return start, whole
    return start, end


def _recorded_before(phase: Phase, at: datetime) -> bool:
    """Whether a phase was recorded before ``at`` (phases without ``created_at`` count as recorded by
    their start, as they were before plan changes recorded it)."""
    return phase.recorded is None or phase.recorded < at


def prepaid_phase(subscription: Terms, period_start: datetime) -> int | None:
    """The index of the phase whose advance fee pays for the period starting at ``period_start``.

    That fee is billed when the period starts (the opening window for the first period, the previous
    window for the others), so it follows the phases **known then**: the first phase always, later ones
    only when recorded (``created_at``) before ``period_start``. Among them, the last that starts at or
    before ``period_start``. A plan change recorded later, even one effective exactly at
    ``period_start``, is therefore settled by proration on the period's own window, whenever the
    previous window happens to be billed.

    Example:
        >>> from datetime import UTC
        >>> sub = {"phases": [
        ...     {"plan_code": "pro", "plan_version": 1, "start_at": "2026-01-01T00:00:00+00:00"},
        ...     {"plan_code": "max", "plan_version": 1, "start_at": "2026-02-01T00:00:00+00:00",
        ...      "created_at": "2026-02-03T00:00:00+00:00"}]}
        >>> feb, mar = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
        >>> prepaid_phase(sub, feb), prepaid_phase(sub, mar)
        (0, 1)
    """
    found = None
    for index, phase in enumerate(timeline(subscription).phases):
        if phase.start > period_start or (index > 0 and not _recorded_before(phase, period_start)):
            break
        found = index
    return found


def check_phases(phases: list[Mapping[str, Any]]) -> None:
    """Phases are well-formed: each ends at or after its start and the next one starts where it ends;
    only the last may be open. ``PricingError`` otherwise.

    Example:
        >>> check_phases([{"start_at": "2026-01-05T00:00:00+00:00", "end_at": "2026-01-02T00:00:00+00:00"}])
        Traceback (most recent call last):
        ...
        neruba.domain.pricing.PricingError: phase 0 ends before it starts
    """
    for index, phase in enumerate(phases):
        start, end = at_time(phase["start_at"]), at_time(phase.get("end_at"))
        assert start is not None
        if end is not None and end < start:
            raise PricingError(f"phase {index} ends before it starts")
        if index + 1 < len(phases) and end != at_time(phases[index + 1]["start_at"]):
            raise PricingError(f"phase {index} does not end where phase {index + 1} starts")


def end_phases(phases: list[dict[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """The phases of a subscription ending at ``at``: phases that would start at or after it are
    dropped (they never took effect), and the one in force ends at ``at`` (at its start, empty, when
    the subscription ends before it begins).

    Example:
        >>> from datetime import UTC
        >>> phases = [{"start_at": "2026-01-01T00:00:00+00:00", "end_at": "2026-01-20T00:00:00+00:00"},
        ...           {"start_at": "2026-01-20T00:00:00+00:00", "end_at": None}]
        >>> [p["end_at"] for p in end_phases(phases, datetime(2026, 1, 10, tzinfo=UTC))]
        ['2026-01-10T00:00:00+00:00']
    """
    kept = [dict(p) for i, p in enumerate(phases) if i == 0 or _start(p) < at]
    kept[-1]["end_at"] = max(at, _start(kept[-1])).isoformat()  # a subscription ended before it began
    return kept


def _start(phase: Mapping[str, Any]) -> datetime:
    start = at_time(phase["start_at"])
    assert start is not None
    return start


def version_of(versions: Versions, code: str, number: int) -> Mapping[str, Any]:
    """The plan version the caller provided, or ``PricingError``."""
    try:
        return versions[(code, number)]
    except KeyError as exc:
        raise PricingError(f"plan version {code} v{number} was not provided") from exc
