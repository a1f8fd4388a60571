"""The lines of one-off charges on invoices, and their pick-up by a window invoice's own transaction
(``logic.billing.one_off`` creates, lists and voids the charges)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neruba.dal.one_offs import OneOffRepository

KIND = "one_off"
MAX_PICK_UP = 20  # one-off lines one window invoice carries (its transaction takes 100 actions)


def charge_line(charge: dict[str, Any]) -> dict[str, Any]:
    """The invoice line of a charge (kind ``one_off``): its description, quantity, price and amount, the
    operator's reason and metadata in ``source`` for explain."""
    at = str(charge["created_at"])
    return {
        "line_id": f"one_off:{charge['id']}",
        "kind": KIND,
        "description": charge["description"],
        "meter_code": None,
        "group": {},
        "quantity": Decimal(str(charge.get("quantity") or 1)),
        "unit_price": charge.get("unit_price"),
        "tiers": [],
        "amount_minor": int(charge["amount_minor"]),
        "period_start": at,
        "period_end": at,
        "plan_code": None,
        "plan_version": None,
        "source": {
            "one_off_charge_id": charge["id"],
            "reason": charge.get("reason"),
            "ticket": charge.get("ticket"),
            "metadata": charge.get("metadata") or {},
            "created_at": at,
        },
        "references": None,  # references name a corrected invoice; the charge is in source
    }


def pending_lines(repo: OneOffRepository, customer_id: str, currency: str) -> list[dict[str, Any]]:
    """The pending charges as the next window invoice will carry them (the same ones :func:`pick_up`
    takes), marked ``pending``: the upcoming invoice preview."""
    pending = sorted(repo.pending(customer_id, currency), key=lambda c: str(c.document["created_at"]))
    lines = []
    for charge in pending[:MAX_PICK_UP]:
        line = charge_line(charge.document)
        line["pending"] = True
        line["description"] = f"Pending: {line['description']} (billed on the next invoice)"
        lines.append(line)
    return lines


def pick_up(
    repo: OneOffRepository, customer_id: str, currency: str, invoice_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pending charges a window invoice carries (at most ``MAX_PICK_UP``, oldest first; the rest wait
    for the next one) and the actions marking them invoiced, each conditional on the charge still being
    pending: add both to the invoice's own transaction."""
    pending = sorted(repo.pending(customer_id, currency), key=lambda c: str(c.document["created_at"]))
    chosen = pending[:MAX_PICK_UP]
    lines = [charge_line(c.document) for c in chosen]
    return lines, [repo.invoice_item(customer_id, c.id, invoice_id) for c in chosen]
