"""The lines of pay-in-advance events on invoices: their pick-up by a window invoice's own transaction,
the pending ones in the upcoming invoice, their figures in explain (``logic.billing.advance`` bills the
events)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neruba.dal.advance import AdvanceRepository

KIND = "advance"


def pick_up(
    repo: AdvanceRepository, customer_id: str, currency: str, invoice_id: str, room: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pending advance lines a window invoice carries (oldest first, at most ``room``) and the actions
    marking them invoiced there, each conditional on the item still being pending."""
    pending = sorted(repo.pending(customer_id, currency), key=lambda c: str(c.document["created_at"]))
    chosen = pending[: max(room, 0)]
    lines = [dict(c.document["line"]) for c in chosen]
    return lines, [repo.invoice_item(customer_id, c.id, invoice_id) for c in chosen]


def pending_lines(
    repo: AdvanceRepository, customer_id: str, currency: str, room: int | None = None
) -> list[dict[str, Any]]:
    """The pending advance lines as the next invoice will carry them (at most ``room``, as
    :func:`pick_up`), marked ``pending`` (the upcoming invoice preview)."""
    lines = []
    pending = sorted(repo.pending(customer_id, currency), key=lambda c: str(c.document["created_at"]))
    for item in pending if room is None else pending[: max(room, 0)]:
        line = dict(item.document["line"])
        line["pending"] = True
        line["description"] = f"Pending: {line['description']} (billed on the next invoice)"
        lines.append(line)
    return lines


def figures(line: Mapping[str, Any], invoice_id: str) -> dict[str, Any]:
    """An advance line's figures for explain: the event, position and proration behind it, the invoice
    that carries it and that invoice's ledger posting."""
    source = dict(line.get("source") or {})
    keys = ("advance_id", "transaction_id", "event_timestamp", "meter_code", "subscription_id", "delta",
            "level_before", "level_after", "paid_before", "paid_after", "full_amount", "fraction", "amount",
            "invoicing", "on_removal")  # fmt: skip
    return {
        "advance": {
            **{key: source.get(key) for key in keys},
            "billed_in": invoice_id,
            "posting_key": f"invoice:{invoice_id}",
        }
    }
