"""Rating one billing window of a subscription: each phase's usage, fees and the minimum commitment.

Pure Python, no AWS: the caller (``logic.pricing.rating``) reads plan versions and usage and passes them in.
Phases and periods are in ``domain.phases``, fixed fees, proration, trials and the minimum commitment in
``domain.fees``, usage lines in ``domain.lines``. The rules are in docs/pricing.md.

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
from datetime import datetime
from typing import Any

from neruba.domain.fees import (
    minimum_line,
    minimum_share,
    next_advance,
    opening_lines,
    prepaid_credit,
    span_fee_lines,
)
from neruba.domain.lines import GroupUsage, trial_usage_lines, usage_lines
from neruba.domain.phases import (
    PhaseSpan,
    Terms,
    Timeline,
    Versions,
    ends_at,
    next_period_end,
    paid_part,
    phase_at,
    phase_spans,
    rating_period,
    timeline,
    version_of,
)
from neruba.domain.pricing import ZERO, InvoiceLine, RatedWindow

__all__ = [
    "PhaseSpan",
    "PhaseUsage",
    "Timeline",
    "Versions",
    "ends_at",
    "next_period_end",
    "phase_at",
    "phase_spans",
    "rate_opening_window",
    "rate_subscription_window",
]

# phase index -> meter code -> group key -> usage
PhaseUsage = Mapping[int, Mapping[str, Mapping[str, GroupUsage]]]


def _usage_lines(
    terms: Timeline,
    version: Mapping[str, Any],
    span: PhaseSpan,
    usage: PhaseUsage,
    trial_usage: PhaseUsage,
) -> list[InvoiceLine]:
    """Zero trial lines for the span's trial part, priced lines for its paid part."""
    trial = terms.trial_end
    lines: list[InvoiceLine] = []
    if trial is not None and span.start < trial:
        lines += trial_usage_lines(
            version, span.start, min(span.end, trial), trial_usage.get(span.index, {}), phase_index=span.index
        )
    paid = paid_part(span.start, span.end, trial)
    if paid is not None:
        lines += usage_lines(version, *paid, usage.get(span.index, {}), phase_index=span.index)
    return lines


def rate_subscription_window(
    subscription: Terms,
    versions: Versions,
    period_start: datetime,
    period_end: datetime,
    usage: PhaseUsage,
    *,
    as_of: datetime | None = None,
    trial_usage: PhaseUsage | None = None,
) -> RatedWindow:
    """Every line of window [period_start, period_end) of ``subscription`` (see docs/pricing.md).

    ``usage`` is the billable usage per phase (hours starting at or after ``trial_end``), ``trial_usage``
    the usage of hours starting before it (shown on zero lines, never charged). The final window of a
    subscription canceled inside a period ends at ``ended_at``, but its fees and minimum are prorated
    over the whole period (``phases.rating_period``).
    """
    terms = timeline(subscription)
    currency = str(terms.currency)
    period = rating_period(terms, period_start, period_end)
    spans = phase_spans(terms, period_start, period_end)
    lines: list[InvoiceLine] = []
    usage_total = 0
    minimum = ZERO
    for span in spans:
        version = version_of(versions, span.plan_code, span.plan_version)
        phase_lines = _usage_lines(terms, version, span, usage, trial_usage or {})
        lines += phase_lines
        usage_total += sum(line.amount_minor for line in phase_lines)
        minimum += minimum_share(terms, version, span, period)
        lines += span_fee_lines(terms, version, span, period, currency)
    lines += prepaid_credit(terms, versions, period, currency)
    lines += minimum_line(minimum, usage_total, currency, spans)
    lines += next_advance(terms, versions, period[1])
    return RatedWindow.of(
        currency,
        lines,
        period_start,
        period_end,
        subscription_id=terms.id,
        customer_id=terms.customer_id,
        as_of=as_of,
    )


def rate_opening_window(subscription: Terms, versions: Versions) -> RatedWindow:
    """The advance fee of the first period, for its paid part (issued when the subscription starts).

    No lines when the fee is in arrears or absent, or when the trial covers the whole first period.
    """
    terms = timeline(subscription)
    start = terms.anchor
    return RatedWindow.of(
        str(terms.currency),
        opening_lines(terms, versions),
        start,
        next_period_end(terms, start),
        subscription_id=terms.id,
        customer_id=terms.customer_id,
        kind="opening",
    )
