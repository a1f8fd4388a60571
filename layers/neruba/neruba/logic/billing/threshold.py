"""Threshold invoicing: what the period-end invoice, the upcoming-invoice preview and explain need of it
(the evaluation that issues threshold invoices is ``logic.billing.threshold_invoices``; docs/billing.md,
"Threshold invoices").

What the threshold invoices of a period billed is stored per period (``dal.thresholds``). The period-end
invoice rates the whole period as always and carries one ``threshold_deduction`` line per line billed
early (minus the quantity and amount the period's threshold invoices billed of it, naming them); its
state advance is conditional on the threshold invoice count it read, so the two always agree and the
threshold invoices plus the period-end invoice equal the period's rating without thresholds, to the
minor unit.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.dal.thresholds import PeriodThresholds, ThresholdsRepository
from neruba.logic.billing.context import Billing
from neruba.timefmt import ts

if TYPE_CHECKING:
    from neruba.dal.billing import BillingRepository
    from neruba.logic.billing.windows import Window

KIND = "threshold"
DEDUCTION_KIND = "threshold_deduction"
BILLING_REASON = "subscription_threshold"


def thresholds(ctx: Billing) -> ThresholdsRepository:
    """The period records, stored next to the billing state."""
    return ctx.billing.thresholds


def deduction_lines(
    record: PeriodThresholds | None, rated: list[dict[str, Any]], numbers: dict[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """The period-end invoice's lines taking off what the period's threshold invoices billed: one per line
    billed early, minus its billed quantity and amount, naming the invoices (``numbers``: id -> number)."""
    if record is None or not record.count:
        return []
    by_id = {str(line["line_id"]): line for line in rated}
    names = [(numbers or {}).get(ref.invoice_id) or ref.invoice_id for ref in record.invoices]
    invoices = [
        {"invoice_id": r.invoice_id, "number": (numbers or {}).get(r.invoice_id), "n": r.n,
         "cut_at": r.cut_at, "amount_minor": r.amount_minor, "posting_key": f"invoice:{r.invoice_id}"}
        for r in record.invoices
    ]  # fmt: skip
    out: list[dict[str, Any]] = []
    for line_id, billed in sorted(record.lines.items()):
        if billed.quantity == 0 and billed.amount_minor == 0:
            continue
        line = by_id.get(line_id, {})
        out.append(
            {
                "line_id": f"{DEDUCTION_KIND}:{line_id}",
                "kind": DEDUCTION_KIND,
                "description": f"Already invoiced on threshold invoice(s) {', '.join(names)}: "
                + str(line.get("description") or line_id),
                "meter_code": line.get("meter_code"),
                "group": line.get("group") or {},
                "quantity": -billed.quantity,
                "unit_price": None,
                "tiers": [],
                "amount_minor": -billed.amount_minor,
                "period_start": record.period_start,
                "period_end": record.period_end,
                "plan_code": line.get("plan_code"),
                "plan_version": line.get("plan_version"),
                "source": {
                    "threshold": {
                        "billed": {"quantity": billed.quantity, "amount_minor": billed.amount_minor},
                        "invoices": invoices,
                    }
                },
                "references": {
                    "line_id": line_id,
                    "threshold_invoices": [r.invoice_id for r in record.invoices],
                },
            }
        )
    return out


def period_end_lines(
    ctx: Billing, window: Window, issued: int | None, rated: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """For the invoice of usage ``window``: its deduction lines, when the subscription has had threshold
    invoices (``issued`` as read with the state; 0 or None reads nothing)."""
    if not issued or window.kind != "usage":
        return []
    record = thresholds(ctx).period(window.subscription_id, ts(window.start))
    if record is None:
        return []
    numbers = {}
    for ref in record.invoices:
        invoice = ctx.invoices.get(ref.invoice_id)
        numbers[ref.invoice_id] = invoice.number if invoice is not None else None
    return deduction_lines(record, rated, numbers)


def threshold_figures(line: dict[str, Any]) -> dict[str, Any]:
    """For explain: what a threshold line (increment or deduction) was computed from."""
    return {"threshold": (line.get("source") or {}).get("threshold")}


def upcoming_deductions(
    billing: BillingRepository, subscription_id: str, period_start: datetime, lines: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """For the upcoming-invoice preview: the ``threshold_deduction`` lines the period-end invoice of the
    period starting at ``period_start`` will carry (none, and no read beyond the state, without a
    threshold invoice)."""
    state = billing.state(subscription_id)
    if state is None or not state.thresholds_issued:
        return []
    record = billing.thresholds.period(subscription_id, ts(period_start))
    return deduction_lines(record, lines)
