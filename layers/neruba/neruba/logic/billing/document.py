"""The invoice document: the one shape every draft invoice is stored in, whatever made it.

A subscription window's invoice, a top-up's invoice and a correction invoice differ only in what they are
for (``details``: the window, the top-up request and its grant, or the invoice corrected); status, totals,
revision and finalization fields are built here once, the totals from the lines and the credit
applications. A correction invoice bills no window of its own, so it has no ``seq``.

Example:
    >>> doc = invoice_document(
    ...     invoice_id="in_1", customer_id="acme", subscription_id=None, currency="USD", kind="topup",
    ...     seq=0, details={}, period=("2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z"),
    ...     lines=[{"line_id": "l1", "amount_minor": 500}], applications=[],
    ...     created_at="2026-01-01T00:00:00.000000Z", finalize_at="2026-01-01T01:00:00.000000Z",
    ... )
    >>> doc["status"], doc["subtotal_minor"], doc["total_minor"]
    ('draft', 500, 500)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from neruba.domain.pricing import MAX_LINE_MINOR, over_minor_limit
from neruba.errors import InvalidRequestError

if TYPE_CHECKING:
    from datetime import datetime

    from neruba.domain.credits import CreditApplication

# lines a window invoice carries that no rating makes (corrections, one-off charges, advance lines, what
# threshold invoices billed of the period, logic.billing.threshold): re-rating a draft keeps them as they
# are, and a rerun or a late-event check never takes them back
CARRIED_KINDS = ("adjustment", "one_off", "advance", "threshold_deduction")
# lines no rating makes that a re-rating recomputes from what the invoice stored (its discounts' terms):
# never compared with a re-rating, never corrected by an adjustment line
DERIVED_KINDS = ("discount",)


def invoice_document(
    *,
    invoice_id: str,
    customer_id: str,
    subscription_id: str | None,
    currency: str,
    kind: str,
    seq: int | None,
    details: Mapping[str, Any],
    period: tuple[str, str],
    lines: Sequence[Mapping[str, Any]],
    applications: Sequence[CreditApplication],
    created_at: str,
    finalize_at: str,
) -> dict[str, Any]:
    """A draft invoice: ``details`` stand after ``seq`` (the key order is the stored order); ``seq`` None
    leaves it out."""
    applied = sum(int(a.amount_minor) for a in applications)
    totals = invoice_totals(lines, applied)
    return {
        "id": invoice_id,
        "object": "invoice",
        "number": None,
        "customer_id": customer_id,
        "subscription_id": subscription_id,
        "currency": currency,
        "status": "draft",
        "kind": kind,
        **({} if seq is None else {"seq": seq}),
        **details,
        "period_start": period[0],
        "period_end": period[1],
        "lines": list(lines),
        "applications": [
            {"grant_id": a.grant_id, "line_id": a.line_id, "amount_minor": int(a.amount_minor)}
            for a in applications
        ],
        **totals,
        "rev": 0,
        "created_at": created_at,
        "finalize_at": finalize_at,
        "finalized_at": None,
        "stripe": None,
    }


EXTRA_TOTALS = ("discounts_minor", "tax_minor", "tax_included_minor")


class AmountTooLargeError(InvalidRequestError):
    """An amount an invoice or a credit note would carry is over the line limit (400 ``amount_too_large``
    on a request; a billing job fails before writing anything and is reported, docs/billing.md)."""

    default_code = "amount_too_large"


def check_amount(amount_minor: int, param: str, what: str) -> None:
    """Refuse ``amount_minor`` beyond the line limit (``domain.pricing.MAX_LINE_MINOR``, either sign):
    ``what`` names it for people, ``param`` for machines."""
    if over_minor_limit(amount_minor):
        raise AmountTooLargeError(
            f"{what} would be {amount_minor} minor units: over the limit of {MAX_LINE_MINOR} minor units "
            "one amount may reach.",
            param=param,
        )


def _check_totals(lines: Sequence[Mapping[str, Any]], totals: Mapping[str, int]) -> None:
    """Every line, tax and total of an invoice within the line limit (before anything is written)."""
    for n, line in enumerate(lines):
        check_amount(int(line["amount_minor"]), f"lines.{n}.amount_minor", f"Line {line.get('line_id')}")
        for key in ("exclusive_minor", "inclusive_minor"):
            tax = (line.get("tax") or {}).get(key) or 0
            check_amount(int(tax), f"lines.{n}.tax.{key}", f"The tax of line {line.get('line_id')}")
    for key, value in totals.items():
        check_amount(int(value), key, f"The invoice's {key}")


def invoice_totals(lines: Sequence[Mapping[str, Any]], credits_applied_minor: int) -> dict[str, int]:
    """An invoice's amounts from its lines (docs/billing.md, "Invoice amounts with discounts and taxes"):
    ``subtotal_minor`` is the sum of the lines (discount lines are negative lines, so it is after
    discounts), ``discounts_minor`` what the discount lines took off, ``tax_minor`` the exclusive tax
    added on top, ``tax_included_minor`` the tax contained in the lines' amounts (inclusive rates), and
    ``total_minor = subtotal_minor + tax_minor - credits_applied_minor``. The three new fields are stored
    only when a line is discounted or taxed (an invoice without either keeps its stored shape; the API
    answers 0). Any of them, a line or a line's tax beyond the line limit raises
    :class:`AmountTooLargeError` (nothing is built, so nothing is written).

    Example:
        >>> invoice_totals([{"amount_minor": 1000, "tax": {"exclusive_minor": 180, "inclusive_minor": 0}},
        ...                 {"kind": "discount", "amount_minor": -100}], 0)["total_minor"]
        1080
    """
    subtotal = sum(int(line["amount_minor"]) for line in lines)
    discounts = -sum(int(line["amount_minor"]) for line in lines if line.get("kind") == "discount")
    taxes = [line.get("tax") or {} for line in lines]
    tax = sum(int(t.get("exclusive_minor") or 0) for t in taxes)
    included = sum(int(t.get("inclusive_minor") or 0) for t in taxes)
    extra = {"discounts_minor": discounts, "tax_minor": tax, "tax_included_minor": included}
    totals = {
        "subtotal_minor": subtotal,
        # stored only on an invoice with a discount or a tax line (older invoices read them as 0)
        **(extra if any(extra.values()) or any(taxes) else {}),
        "credits_applied_minor": credits_applied_minor,
        "total_minor": subtotal + tax - credits_applied_minor,
    }
    _check_totals(lines, totals)
    return totals


EVENT_KEYS = ("id", "customer_id", "subscription_id", "kind", "currency", "period_start", "period_end",
              "subtotal_minor", "credits_applied_minor", "total_minor", "status")  # fmt: skip


def event_totals(invoice: Mapping[str, Any]) -> dict[str, int]:
    """The discount and tax totals every ``invoice.*`` event with amounts carries (0 on an invoice with
    neither), next to ``subtotal_minor`` and ``total_minor``."""
    return {k: int(invoice.get(k) or 0) for k in EXTRA_TOTALS}


def invoice_event(event_type: str, invoice: dict[str, Any], now: datetime, **more: Any) -> dict[str, Any]:
    """The outbox action of an ``invoice.*`` webhook event, for the transaction that changes the invoice:
    the invoice's ids, amounts and period as the transaction leaves them (periods as stored times)."""
    from neruba.logic.webhooks.outbox import event_action
    from neruba.timefmt import iso, parse_ts

    data = {k: invoice[k] for k in EVENT_KEYS if k in invoice}
    if "subtotal_minor" in invoice:
        data.update(event_totals(invoice))
    for key in ("period_start", "period_end"):
        if isinstance(data.get(key), str) and str(data[key]).endswith("Z"):
            data[key] = iso(parse_ts(str(data[key])))
    return event_action(event_type, str(invoice["customer_id"]), {**data, **more}, now)
