"""The exclusive tax of a grant-paid line goes back on the invoices that collected it (docs/billing.md, "The
tax of usage a grant paid"): a correction invoice after the end applies grant credit, so it collects the
exclusive tax of the usage it bills; when that usage is taken back, the grant gets its part back and the
tax goes back, the money way, on the invoice that collected it (the correction invoice, newest first, then
the corrected invoice), never on an invoice whose usage survives, never dropped, never an empty note.

Real pricing (1.00 per API call, daily windows), 19% exclusive tax, a promotional grant: day 0 billed 4
calls (400 + 76, credit 400), day 1 one call (100 + 19, credit 100), then the subscription ended."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, assert_books_agree, subscribe_real
from tests.functional.billing.helpers import billing_state, day, schedule
from tests.functional.billing.test_correction_settlement import _agree, _credit_note
from tests.functional.billing.test_event_void_billing import _bill
from tests.functional.billing.test_grant_paid_corrections import (
    _balance,
    _grant,
    _remaining_of,
    _taxed,
    _usage,
)
from tests.functional.billing.test_negative_final_invoice import _credit_notes
from tests.functional.billing.test_real_correction import api, rerun

__all__ = ["api"]  # the fixture, used by name
OWED = 76 + 19  # what the surviving calls owe in money: their exclusive tax


def _ended(real: World, monkeypatch: Any, grant: int) -> tuple[dict[str, Any], dict[str, Any], str]:
    """19% exclusive tax, a promotional grant of ``grant``, day 0 (4 calls) and day 1 (1 call, the final
    window: the subscription cancelled at day 1 + 5h) billed and finalized. Returns day 0, day 1 and the
    grant's id."""

    from tests.functional.billing.taxed_days import day0_billed, day1_billed

    sub_id, grant_id = day0_billed(real, monkeypatch, grant)
    day1_billed(real, monkeypatch, end=True)
    assert billing_state(real, sub_id).status == "ended" and grant_id is not None
    first, final = _usage(real, 0), _usage(real, 1)
    assert (first["tax_minor"], first["credits_applied_minor"], first["total_minor"]) == (76, 400, 76)
    assert (final["tax_minor"], final["credits_applied_minor"], final["total_minor"]) == (19, 100, 19)
    return first, final, grant_id


def _correction_invoices(real: World) -> list[dict[str, Any]]:
    return sorted(
        (i for i in real.invoices("acme") if i["kind"] in ("correction", "credit_note")),
        key=lambda i: (i.get("created_at") or "", i["id"]),
    )


def _notes_total(real: World, invoice_id: str) -> tuple[int, int]:
    """What the credit notes of ``invoice_id`` took: (amount, tax)."""
    from neruba.logic.billing.credit_notes import repository

    notes = [repository(real.ctx).get(str(n["id"])) or {} for n in _credit_notes(real, invoice_id)]
    return sum(int(n["subtotal_minor"]) for n in notes), sum(int(n["tax_minor"]) for n in notes)


def _late_then_back(real: World, api: Any, final: dict[str, Any], late: int, key: str) -> dict[str, Any]:
    """``late`` calls counted late on day 1 (billed on a correction invoice), then taken back (day 1 back
    to its one call, as a backfill's revert voids them): both rerun. Returns the correction invoice."""
    real.usage("acme", START + day(1, 2), 1 + late)
    status, billed = rerun(api, final["id"], f"{key}-in")
    assert (status, billed["correction"]["type"]) == (200, "correction_invoice"), billed
    doc = real.ctx.invoices.get(billed["correction"]["invoice_id"])
    assert doc is not None
    real.usage("acme", START + day(1, 2), 1)
    status, back = rerun(api, final["id"], f"{key}-out")
    assert status == 200, back
    found = [i for i in real.invoices("acme") if i["id"] == doc.id]
    return found[0]


def _owed_tax() -> int:
    return -_balance("tax_payable")


@pytest.mark.parametrize(("late", "grant", "credit"), [(3, 800, 300), (3, 700, 200), (1, 600, 100)],
                         ids=["three-whole", "three-part", "one"])  # fmt: skip
def test_the_tax_of_late_usage_a_grant_paid_goes_back_on_the_correction_invoice_that_collected_it(
    real: World, api: Any, monkeypatch: Any, late: int, grant: int, credit: int
) -> None:
    # GIVEN billing ended, ``late`` calls counted late on day 1: a correction invoice (100 x late + 19%,
    # the grant paying ``credit`` of it, the rest and the tax owed in money)
    first, final, grant_id = _ended(real, monkeypatch, grant)

    # WHEN they are taken back (voided, the day rerun)
    doc = _late_then_back(real, api, final, late, "r")

    # THEN the correction invoice had collected their tax
    tax = 19 * late
    assert (doc["subtotal_minor"], doc["tax_minor"], doc["credits_applied_minor"]) == (
        100 * late,
        tax,
        credit,
    )
    # AND its tax goes back on it (with the money part of the amount), the corrected invoice keeps its 19
    assert _notes_total(real, doc["id"]) == (100 * late - credit, tax)
    assert _notes_total(real, final["id"]) == (0, 0)
    assert _credit_notes(real, first["id"]) == []
    # AND the grant got its part back; receivable and tax_payable are those of the surviving calls
    assert _remaining_of(grant_id) == grant - 500
    assert _balance("receivable") == OWED
    assert _owed_tax() == OWED
    assert_books_agree(real, "acme")
    # AND a rerun changes nothing more
    assert rerun(api, final["id"], "r-again")[1]["action"] == "unchanged"
    assert _balance("receivable") == OWED


@pytest.mark.parametrize("via", ["rerun", "sweep"])
def test_a_second_round_never_writes_an_empty_note(real: World, api: Any, monkeypatch: Any, via: str) -> None:
    from neruba.logic.billing.corrections import late_corrections

    # GIVEN billing ended; one late call on day 1 billed on a correction invoice and taken back
    _first, final, grant_id = _ended(real, monkeypatch, 700)
    one = _late_then_back(real, api, final, 1, "a")
    # AND another late call billed on a second correction invoice
    real.usage("acme", START + day(1, 2), 2)
    assert rerun(api, final["id"], "b-in")[0] == 200

    # WHEN it is taken back too (a rerun, or the corrections sweep)
    real.usage("acme", START + day(1, 2), 1)
    if via == "rerun":
        status, back = rerun(api, final["id"], "b-out")
        assert status == 200, back
    else:
        late_corrections(real.ctx, "acme", START + day(2, 10))
        assert rerun(api, final["id"], "b-check")[1]["action"] == "unchanged"

    # THEN each correction invoice gave back the tax it collected; day 1 keeps its 19; nothing empty
    two = [i for i in _correction_invoices(real) if i["id"] != one["id"] and i["subtotal_minor"] > 0]
    assert len(two) == 1
    assert _notes_total(real, one["id"]) == (0, 19)
    assert _notes_total(real, two[0]["id"]) == (0, 19)
    assert _notes_total(real, final["id"]) == (0, 0)
    notes = [n for i in real.invoices("acme") for n in _credit_notes(real, i["id"])]
    assert all(int(n["amount_minor"]) > 0 for n in notes), notes
    assert _remaining_of(grant_id) == 200
    assert _balance("receivable") == OWED == _owed_tax()
    assert_books_agree(real, "acme")


def test_a_tax_only_note_on_an_invoice_with_nothing_left_is_never_written(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN billing ended, day 1's 19 owed credited by an operator (nothing left due on it)
    _first, final, _grant_id = _ended(real, monkeypatch, 700)
    status, note = _credit_note(api, final["id"], "cn-op")
    assert status == 201, note
    # WHEN a late call is billed on a correction invoice, then taken back
    doc = _late_then_back(real, api, final, 1, "r")
    # THEN the tax goes back on the correction invoice; no 500, no empty note
    assert _notes_total(real, doc["id"]) == (0, 19)
    assert _notes_total(real, final["id"]) == (int(note["subtotal_minor"]), int(note["tax_minor"]))
    assert all(
        int(n["amount_minor"]) > 0 for i in real.invoices("acme") for n in _credit_notes(real, i["id"])
    )
    assert _balance("receivable") == OWED - int(note["amount_minor"])
    assert_books_agree(real, "acme")


def test_an_operator_note_of_all_a_grant_paid_invoice_owed_leaves_the_grant_its_whole_part(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN billing ended, day 0's 76 owed credited by an operator (64 of the line, 12 of tax): all the
    # money day 0 asked, of usage a grant paid
    first, _final, grant_id = _ended(real, monkeypatch, 500)
    status, note = _credit_note(api, first["id"], "cn-op")
    assert status == 201, note
    assert (note["subtotal_minor"], note["tax_minor"]) == (64, 12)
    # WHEN all 4 of day 0's calls are taken back and day 0 rerun
    real.usage("acme", START + day(0, 4), 0)
    status, taken = rerun(api, first["id"], "r0")
    # THEN the grant gets its whole 400 back; nothing more is given back (the note gave back all the money
    # the customer owed for the line): no correction invoice, no credit-note invoice
    assert status == 200, taken
    assert _remaining_of(grant_id) == 400
    assert _correction_invoices(real) == []
    # AND the note's 64, booked off revenue, moved off tax_payable with the grant's 400: day 0 leaves
    # neither revenue nor tax behind (day 1's 100 and 19 remain)
    restored = taken["correction"]["grant_restorations"]
    assert [(r["amount_minor"], r["tax_included_minor"]) for r in restored] == [(400, 64)]
    assert (-_balance("revenue"), -_balance("tax_payable")) == (100, 19)
    assert_books_agree(real, "acme")


def test_a_window_below_zero_gives_the_tax_back_on_the_window_whose_adjustment_collected_it(
    real: World, monkeypatch: Any
) -> None:
    # GIVEN 19% exclusive tax, a promotional grant; day 0 billed 4 calls (400 + 76, credit 400)
    _taxed(real, False)
    grant_id = _grant("g1", "promotional", 1000)
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 4)
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = _usage(real, 0)
    # AND 3 more of day 0's calls counted late: day 1's window carries +300 (57 of tax) with its own call
    real.usage("acme", START + day(0, 4), 7)
    real.usage("acme", START + day(1, 2), 1)
    _bill(real, START + day(2, 1), monkeypatch)
    schedule(real, START + day(2, 3))
    second = _usage(real, 1)
    assert (second["subtotal_minor"], second["tax_minor"], second["credits_applied_minor"]) == (400, 76, 400)

    # WHEN the 3 are taken back and day 2 (no call of its own) is billed below zero
    real.usage("acme", START + day(0, 4), 4)
    _bill(real, START + day(3, 1), monkeypatch)
    schedule(real, START + day(3, 3))

    # THEN the grant gets its 300 back and the 57 of tax goes back on day 1, whose adjustment collected it
    assert _remaining_of(grant_id) == 1000 - 500
    assert _notes_total(real, second["id"]) == (0, 57)
    assert _credit_notes(real, first["id"]) == []
    assert _balance("receivable") == OWED == _owed_tax()
    assert_books_agree(real, "acme")


def test_the_tax_a_paid_correction_invoice_collected_goes_back_as_the_customers_credit(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from tests.functional.billing.credit_note_support import pay

    # GIVEN billing ended, 3 late calls billed on a correction invoice (300 + 57, credit 300) and its 57 paid
    _first, final, grant_id = _ended(real, monkeypatch, 800)
    real.usage("acme", START + day(1, 2), 4)
    status, billed = rerun(api, final["id"], "r-in")
    assert status == 200, billed
    doc_id = str(billed["correction"]["invoice_id"])
    pay(real, doc_id, 57, payment_id="ch_corr")
    # WHEN the 3 are taken back
    real.usage("acme", START + day(1, 2), 1)
    assert rerun(api, final["id"], "r-out")[0] == 200
    # THEN the 57 goes back on the correction invoice, after its payment: the customer's credit balance
    assert _notes_total(real, doc_id) == (0, 57)
    assert _notes_total(real, final["id"]) == (0, 0)
    doc = real.ctx.invoices.get(doc_id)
    assert doc is not None and int(doc.document.get("credited_balance_minor") or 0) == 57
    assert _remaining_of(grant_id) == 300
    assert _owed_tax() == OWED
    assert _balance("receivable") == OWED - 57  # 57 paid; the 57 given back is the customer's credit
    _agree(real)  # payments counted
