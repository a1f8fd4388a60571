"""Rating one billing window of a subscription: phases, fixed fees, proration, minimum commitment.

Pure Python, no AWS: the caller (``logic.rating``) reads plan versions and usage and passes them in.
The rules (window rule, proration, minimum commitment) are in docs/pricing.md.

Example:
    >>> from datetime import UTC
    >>> sub = {"id": "sub_1", "customer_id": "acme", "currency": "USD", "interval": "month",
    ...        "start_at": "2026-01-01T00:00:00+00:00", "status": "active", "cancel_at_period_end": False,
    ...        "phases": [{"plan_code": "pro", "plan_version": 1,
    ...                    "start_at": "2026-01-01T00:00:00+00:00", "end_at": None}]}
    >>> pro = {"code": "pro", "version": 1, "currency": "USD", "charges": [],
    ...        "fixed_fee": {"amount": "30", "timing": "advance"}}
    >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    >>> w = rate_subscription_window(sub, {("pro", 1): pro}, t0, t1, {})
    >>> [(l.line_id, l.amount_minor, l.period_start.date().isoformat()) for l in w.lines]
    [('fixed_fee:advance:0', 3000, '2026-02-01')]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from neruba.domain.lines import GroupUsage, usage_lines
from neruba.domain.periods import add_interval
from neruba.domain.pricing import (
    ZERO,
    InvoiceLine,
    LineKind,
    PricingError,
    RatedWindow,
    exact,
    fraction_of,
    line_minor,
)

Versions = Mapping[tuple[str, int], Mapping[str, Any]]
# phase index -> meter code -> group key -> usage
PhaseUsage = Mapping[int, Mapping[str, Mapping[str, GroupUsage]]]
_MICRO = timedelta(microseconds=1)


def _at(value: Any) -> datetime | None:
    if value is None:
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise PricingError("subscription times are timezone-aware")
    return at


def _seconds(start: datetime, end: datetime) -> Decimal:
    """Exact length of [start, end) in seconds (microsecond resolution)."""
    return Decimal((end - start) // _MICRO).scaleb(-6)


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
        phase_start, phase_end = _at(phase["start_at"]), _at(phase.get("end_at"))
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
        phase_start, phase_end = _at(phase["start_at"]), _at(phase.get("end_at"))
        assert phase_start is not None
        if phase_start <= at and (phase_end is None or at < phase_end):
            return index, phase
    return None


def ends_at(subscription: Mapping[str, Any], period_end: datetime) -> bool:
    """True when the subscription does not continue past ``period_end`` (ended, or canceled at period end)."""
    ended = _at(subscription.get("ended_at"))
    if ended is not None and ended <= period_end:
        return True
    canceled = _at(subscription.get("canceled_at"))
    return bool(subscription.get("cancel_at_period_end")) and canceled is not None and canceled < period_end


def _fee(version: Mapping[str, Any]) -> tuple[Decimal, str] | None:
    fee = version.get("fixed_fee")
    if not fee:
        return None
    return exact(fee["amount"], "fixed_fee.amount"), str(fee.get("timing", "advance"))


def _fee_line(
    line_id: str,
    kind: LineKind,
    description: str,
    amount: Decimal,
    currency: str,
    start: datetime,
    end: datetime,
    span: PhaseSpan | tuple[str, int],
    source: dict[str, Any],
) -> InvoiceLine:
    code, version = (span.plan_code, span.plan_version) if isinstance(span, PhaseSpan) else span
    return InvoiceLine(
        line_id=line_id,
        kind=kind,
        description=description,
        meter_code=None,
        group={},
        quantity=Decimal(1) if "fraction" not in source else source["fraction"],
        unit_price=source.get("fee"),
        tiers=[],
        amount_minor=line_minor(amount, currency),
        period_start=start,
        period_end=end,
        plan_code=code,
        plan_version=version,
        source=source,
    )


def _prorated(
    line_id: str,
    kind: LineKind,
    description: str,
    fee: Decimal,
    sign: int,
    start: datetime,
    end: datetime,
    period: tuple[datetime, datetime],
    currency: str,
    span: PhaseSpan,
) -> InvoiceLine:
    """``sign * fee * seconds(start, end) / seconds(period)``, rounded once."""
    part, whole = _seconds(start, end), _seconds(*period)
    fraction = fraction_of(Decimal(1), part, whole)
    amount = sign * fraction_of(fee, part, whole)
    source = {"fee": fee, "seconds": part, "period_seconds": whole, "fraction": fraction, "amount": amount}
    return _fee_line(line_id, kind, description, amount, currency, start, end, span, source)


def _version(versions: Versions, code: str, number: int) -> Mapping[str, Any]:
    try:
        return versions[(code, number)]
    except KeyError as exc:
        raise PricingError(f"plan version {code} v{number} was not provided") from exc


def rate_subscription_window(
    subscription: Mapping[str, Any],
    versions: Versions,
    period_start: datetime,
    period_end: datetime,
    usage: PhaseUsage,
    *,
    as_of: datetime | None = None,
) -> RatedWindow:
    """Every line of window [period_start, period_end) of ``subscription`` (see docs/pricing.md)."""
    currency = str(subscription["currency"])
    period = (period_start, period_end)
    spans = phase_spans(subscription, period_start, period_end)
    lines: list[InvoiceLine] = []
    usage_total = 0
    minimum = ZERO
    for span in spans:
        version = _version(versions, span.plan_code, span.plan_version)
        phase_lines = usage_lines(
            version, span.start, span.end, usage.get(span.index, {}), phase_index=span.index
        )
        lines += phase_lines
        usage_total += sum(line.amount_minor for line in phase_lines)
        if version.get("minimum_commitment") is not None:
            minimum += fraction_of(
                exact(version["minimum_commitment"], "minimum_commitment"),
                _seconds(span.start, span.end),
                _seconds(*period),
            )
        fee = _fee(version)
        if fee is None:
            continue
        amount, timing = fee
        if timing == "arrears":
            lines.append(
                _prorated(
                    f"fixed_fee:arrears:{span.index}",
                    "fixed_fee",
                    f"{version.get('name', span.plan_code)} fixed fee (arrears)",
                    amount,
                    1,
                    span.start,
                    span.end,
                    period,
                    currency,
                    span,
                )
            )
        elif span.phase_start > period_start:  # a phase that began inside the window: charge its time
            lines.append(
                _prorated(
                    f"proration:charge:{span.index}",
                    "proration",
                    f"{version.get('name', span.plan_code)} fixed fee for the rest of the period",
                    amount,
                    1,
                    span.start,
                    span.end,
                    period,
                    currency,
                    span,
                )
            )
        elif span.end < period_end and _changed_at(subscription, span):  # prepaid phase left by a plan change
            lines.append(
                _prorated(
                    f"proration:credit:{span.index}",
                    "proration",
                    f"Unused {version.get('name', span.plan_code)} fixed fee after the plan change",
                    amount,
                    -1,
                    span.end,
                    period_end,
                    period,
                    currency,
                    span,
                )
            )
    lines += _minimum_line(minimum, usage_total, currency, period, spans)
    lines += _next_advance(subscription, versions, period_end, currency)
    return RatedWindow.of(
        currency,
        lines,
        period_start,
        period_end,
        subscription_id=subscription.get("id"),
        customer_id=subscription.get("customer_id"),
        as_of=as_of,
    )


def _changed_at(subscription: Mapping[str, Any], span: PhaseSpan) -> bool:
    """The phase ended because another phase began at its end (a plan change, not a cancellation)."""
    phases = subscription.get("phases") or []
    return span.index + 1 < len(phases) and _at(phases[span.index + 1]["start_at"]) == span.phase_end


def _minimum_line(
    minimum: Decimal,
    usage_total: int,
    currency: str,
    period: tuple[datetime, datetime],
    spans: list[PhaseSpan],
) -> list[InvoiceLine]:
    if not spans or minimum <= 0:
        return []
    floor = line_minor(minimum, currency)
    if floor <= usage_total:
        return []
    last = spans[-1]
    return [
        InvoiceLine(
            line_id="minimum_commitment",
            kind="minimum_commitment",
            description="Minimum commitment top-up",
            meter_code=None,
            group={},
            quantity=Decimal(1),
            unit_price=None,
            tiers=[],
            amount_minor=floor - usage_total,
            period_start=spans[0].start,
            period_end=last.end,
            plan_code=last.plan_code,
            plan_version=last.plan_version,
            source={"minimum": minimum, "minimum_minor": floor, "usage_minor": usage_total},
        )
    ]


def _next_advance(
    subscription: Mapping[str, Any], versions: Versions, period_end: datetime, currency: str
) -> list[InvoiceLine]:
    """The advance fee of the next period, under the version in force at ``period_end``."""
    if ends_at(subscription, period_end):
        return []
    found = phase_at(subscription, period_end)
    if found is None:
        return []
    index, phase = found
    version = _version(versions, str(phase["plan_code"]), int(phase["plan_version"]))
    fee = _fee(version)
    if fee is None or fee[1] != "advance":
        return []
    next_end = next_period_end(subscription, period_end)
    source = {"fee": fee[0], "amount": fee[0]}
    return [
        _fee_line(
            f"fixed_fee:advance:{index}",
            "fixed_fee",
            f"{version.get('name', phase['plan_code'])} fixed fee (in advance)",
            fee[0],
            currency,
            period_end,
            next_end,
            (str(phase["plan_code"]), int(phase["plan_version"])),
            source,
        )
    ]


def next_period_end(subscription: Mapping[str, Any], period_end: datetime) -> datetime:
    """The end of the period that starts at ``period_end`` (periods anchored at the subscription start)."""
    anchor = _at(subscription["start_at"])
    assert anchor is not None
    interval = str(subscription["interval"])
    n = 1
    while add_interval(anchor, interval, n) <= period_end:
        n += 1
    return add_interval(anchor, interval, n)


def rate_opening_window(subscription: Mapping[str, Any], versions: Versions) -> RatedWindow:
    """The advance fee of the first period (issued when the subscription starts); no lines otherwise."""
    start = _at(subscription["start_at"])
    assert start is not None
    end = add_interval(start, str(subscription["interval"]), 1)
    lines: list[InvoiceLine] = []
    phase = (subscription.get("phases") or [None])[0]
    if phase is not None:
        version = _version(versions, str(phase["plan_code"]), int(phase["plan_version"]))
        fee = _fee(version)
        if fee is not None and fee[1] == "advance":
            lines.append(
                _fee_line(
                    "fixed_fee:advance:0",
                    "fixed_fee",
                    f"{version.get('name', phase['plan_code'])} fixed fee (in advance)",
                    fee[0],
                    str(subscription["currency"]),
                    start,
                    end,
                    (str(phase["plan_code"]), int(phase["plan_version"])),
                    {"fee": fee[0], "amount": fee[0]},
                )
            )
    return RatedWindow.of(
        str(subscription["currency"]),
        lines,
        start,
        end,
        subscription_id=subscription.get("id"),
        customer_id=subscription.get("customer_id"),
        kind="opening",
    )
