"""Fixed fees, proration, trials and the minimum commitment of a window (rules in docs/pricing.md).

Every time-based amount is ``amount x seconds(part) / seconds(period)``, rounded once per line, and only
the **paid** part of time counts: time before the subscription's ``trial_end`` is never charged.

Example:
    >>> from datetime import UTC
    >>> t0, t1, trial = (datetime(2026, m, d, tzinfo=UTC) for m, d in ((4, 1), (5, 1), (4, 11)))
    >>> sub = {"start_at": t0.isoformat(), "interval": "month", "currency": "USD",
    ...        "trial_end": trial.isoformat(), "phases": [{"plan_code": "pro", "plan_version": 1,
    ...        "start_at": t0.isoformat(), "end_at": None}]}
    >>> pro = {"code": "pro", "version": 1, "fixed_fee": {"amount": "30", "timing": "advance"}}
    >>> [(l.line_id, l.amount_minor, l.period_start.day) for l in opening_lines(sub, {("pro", 1): pro})]
    [('fixed_fee:advance:0', 2000, 11)]
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from neruba.domain.periods import add_interval
from neruba.domain.phases import (
    Phase,
    PhaseSpan,
    Terms,
    Timeline,
    Versions,
    ends_at,
    next_period_end,
    paid_part,
    prepaid_phase,
    seconds,
    timeline,
    version_of,
)
from neruba.domain.pricing import ZERO, InvoiceLine, LineKind, exact, fraction_of, line_minor

Period = tuple[datetime, datetime]


def fee_of(version: Mapping[str, Any]) -> tuple[Decimal, str] | None:
    """The version's fixed fee and timing (``advance`` or ``arrears``), or ``None``."""
    fee = version.get("fixed_fee")
    if not fee:
        return None
    return exact(fee["amount"], "fixed_fee.amount"), str(fee.get("timing", "advance"))


def credits_on_cancel(version: Mapping[str, Any]) -> bool:
    """Whether an immediate cancellation credits the unused prepaid fee (``fixed_fee.credit_on_cancel``,
    true unless the plan version sets it to false)."""
    return bool((version.get("fixed_fee") or {}).get("credit_on_cancel", True))


def _name(version: Mapping[str, Any], code: str) -> str:
    return str(version.get("name", code))


def fee_line(
    line_id: str,
    kind: LineKind,
    description: str,
    fee: Decimal,
    sign: int,
    part: Period,
    period: Period,
    currency: str,
    plan: tuple[str, int],
    trial: datetime | None = None,
) -> InvoiceLine:
    """``sign x fee x seconds(part) / seconds(period)`` as one line, rounded once.

    A whole period gives ``quantity`` 1 and ``source`` {fee, amount}; a part gives the fraction and the
    seconds. ``trial`` (the trial end) is recorded in ``source`` when it shortened the part.
    """
    source: dict[str, Any] = {"fee": fee}
    if part == period:
        amount, fraction = sign * fee, Decimal(1)
    else:
        length, whole = seconds(*part), seconds(*period)
        fraction = fraction_of(Decimal(1), length, whole)
        amount = sign * fraction_of(fee, length, whole)
        source.update(seconds=length, period_seconds=whole, fraction=fraction)
    source["amount"] = amount
    if trial is not None and part[0] == trial:
        source["trial_end"] = trial.isoformat()
    return InvoiceLine(
        line_id=line_id,
        kind=kind,
        description=description,
        meter_code=None,
        group={},
        quantity=fraction,
        unit_price=fee,
        tiers=[],
        amount_minor=line_minor(amount, currency),
        period_start=part[0],
        period_end=part[1],
        plan_code=plan[0],
        plan_version=plan[1],
        source=source,
    )


def _ended_by(terms: Timeline, index: int, end: datetime) -> str | None:
    """Why phase ``index`` ended at ``end``: ``change`` (the next phase began then), ``cancel`` (the
    subscription ended then)."""
    phases = terms.phases
    if index + 1 < len(phases) and phases[index + 1].start == end:
        return "change"
    if terms.ended_at == end:
        return "cancel"
    return None


def span_fee_lines(
    subscription: Terms,
    version: Mapping[str, Any],
    span: PhaseSpan,
    period: Period,
    currency: str,
) -> list[InvoiceLine]:
    """The fee lines of one phase's part of window ``period``: its arrears fee, or for an advance fee
    not prepaid for this period (see ``phases.prepaid_phase``) a proration charge for its own paid time.
    The prepaid phase's credit is :func:`prepaid_credit`."""
    fee = fee_of(version)
    if fee is None:
        return []
    amount, timing = fee
    terms = timeline(subscription)
    trial = terms.trial_end
    plan = (span.plan_code, span.plan_version)
    name = _name(version, span.plan_code)
    part = paid_part(span.start, span.end, trial)
    if part is None:
        return []
    kind: LineKind
    if timing == "arrears":
        line_id, kind, label = f"fixed_fee:arrears:{span.index}", "fixed_fee", f"{name} fixed fee (arrears)"
    elif span.index == prepaid_phase(terms, period[0]):
        return []
    else:
        line_id, kind = f"proration:charge:{span.index}", "proration"
        label = f"{name} fixed fee for the rest of the period"
    return [fee_line(line_id, kind, label, amount, 1, part, period, currency, plan, trial)]


def prepaid_credit(
    subscription: Terms, versions: Versions, period: Period, currency: str
) -> list[InvoiceLine]:
    """A negative ``proration:credit:{phase}`` line for the unused paid time of the advance fee that was
    prepaid for ``period`` (by the opening or the previous window), when its phase ended inside the
    period: from that end (a plan change or an immediate cancellation) to the period end. None when
    the prepaid fee was in arrears or absent, or the plan version keeps its fee on a cancellation."""
    terms = timeline(subscription)
    index = prepaid_phase(terms, period[0])
    if index is None:
        return []
    phase = terms.phases[index]
    plan = (phase.plan_code, phase.plan_version)
    version = version_of(versions, *plan)
    fee = fee_of(version)
    end = phase.end
    if fee is None or fee[1] != "advance" or end is None or end >= period[1]:
        return []
    reason = _ended_by(terms, index, end)
    if reason is None or (reason == "cancel" and not credits_on_cancel(version)):
        return []
    trial = terms.trial_end
    part = paid_part(max(end, period[0]), period[1], trial)
    if part is None:
        return []
    event = "the plan change" if reason == "change" else "the cancellation"
    label = f"Unused {_name(version, plan[0])} fixed fee after {event}"
    return [
        fee_line(
            f"proration:credit:{index}", "proration", label, fee[0], -1, part, period, currency, plan, trial
        )
    ]


def minimum_share(
    subscription: Terms, version: Mapping[str, Any], span: PhaseSpan, period: Period
) -> Decimal:
    """The version's minimum commitment prorated to the span's paid time (exact, unrounded)."""
    if version.get("minimum_commitment") is None:
        return ZERO
    part = paid_part(span.start, span.end, timeline(subscription).trial_end)
    if part is None:
        return ZERO
    minimum = exact(version["minimum_commitment"], "minimum_commitment")
    return fraction_of(minimum, seconds(*part), seconds(*period))


def minimum_line(
    minimum: Decimal, usage_total: int, currency: str, spans: list[PhaseSpan]
) -> list[InvoiceLine]:
    """The top-up line when the usage lines' total is below the (prorated) minimum, rounded once."""
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


def _advance(
    terms: Timeline, versions: Versions, index: int, phase: Phase, period: Period
) -> list[InvoiceLine]:
    """The advance fee of ``period`` under ``phase``, for its paid part only (none if all trial)."""
    version = version_of(versions, phase.plan_code, phase.plan_version)
    fee = fee_of(version)
    trial = terms.trial_end
    part = paid_part(*period, trial)
    if fee is None or fee[1] != "advance" or part is None:
        return []
    return [
        fee_line(
            f"fixed_fee:advance:{index}",
            "fixed_fee",
            f"{_name(version, phase.plan_code)} fixed fee (in advance)",
            fee[0],
            1,
            part,
            period,
            str(terms.currency),
            (phase.plan_code, phase.plan_version),
            trial,
        )
    ]


def next_advance(subscription: Terms, versions: Versions, period_end: datetime) -> list[InvoiceLine]:
    """The next period's advance fee, under the version in force at ``period_end`` as known then
    (``phases.prepaid_phase``), unless the subscription ends there."""
    terms = timeline(subscription)
    if ends_at(terms, period_end):
        return []
    index = prepaid_phase(terms, period_end)
    if index is None:
        return []
    period = (period_end, next_period_end(terms, period_end))
    return _advance(terms, versions, index, terms.phases[index], period)


def opening_lines(subscription: Terms, versions: Versions) -> list[InvoiceLine]:
    """The first period's advance fee under the first phase (paid part only)."""
    terms = timeline(subscription)
    start = terms.anchor
    if not terms.phases:
        return []
    period = (start, add_interval(start, terms.every, 1))
    return _advance(terms, versions, 0, terms.phases[0], period)
