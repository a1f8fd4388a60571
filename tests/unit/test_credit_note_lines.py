"""What credit notes took of an invoice's lines, as ``line_states`` reads it back: a correction's notes
are told apart from an operator's (``corrected_minor``), and an entry written before they were told apart
counts all it took as corrections', as settlements then did (docs/billing.md, "Refunds and disputes
count as taken back")."""

from __future__ import annotations

from typing import Any

from neruba.dal.invoices import Invoice, invoice_record
from neruba.logic.billing.credit_notes import corrected, line_states

LINE = {"line_id": "usage:api_calls::0", "kind": "usage", "quantity": "4", "amount_minor": 400,
        "description": "API calls"}  # fmt: skip


def _invoice(line_credits: dict[str, Any]) -> Invoice:
    doc = {"id": "in_1", "customer_id": "acme", "currency": "USD", "kind": "usage", "status": "finalized",
           "lines": [LINE], "subtotal_minor": 400, "total_minor": 400,
           "line_credits": line_credits}  # fmt: skip
    return invoice_record(doc)


def test_an_operator_s_note_and_a_correction_s_are_told_apart() -> None:
    entry = {"amount_minor": 150, "quantity": "0", "corrected_minor": 100}
    (state,) = line_states(_invoice({LINE["line_id"]: entry}))
    assert (state.credited_minor, state.corrected_minor, state.share_left()) == (150, 100, 300)


def test_an_entry_written_before_they_were_told_apart_counts_as_corrections() -> None:
    entry = {"amount_minor": 150, "quantity": "0", "tax": {"txr_1": 28}}
    assert corrected(entry) == (150, {"txr_1": 28})
    (state,) = line_states(_invoice({LINE["line_id"]: entry}))
    assert (state.credited_minor, state.corrected_minor) == (150, 150)
    assert corrected({}) == (0, {})
