"""Money a refund or a dispute already gave back of a paid correction invoice is never given back again
when the usage it billed is taken back (docs/billing.md, "Negative corrections settle against what they
correct"): the credit note goes on the correction invoice that billed the usage, for what it still has
(its total less the refund's or dispute's share), and nothing lands on the corrected invoice, whose usage
survives.

Real pricing (1.00 per API call, daily windows), 19% exclusive tax: day 0 billed 4 calls, day 1 one call
(the final window), then 2 calls counted late on day 1 (a correction invoice C of 200 + 38), C paid, 10
of it refunded (or charged back, the dispute lost), then the 2 calls taken back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day
from tests.functional.billing.taxed_days import day0_billed, day1_billed
from tests.functional.billing.test_correction_settlement import _agree, _credit_note
from tests.functional.billing.test_event_void_billing import _bill
from tests.functional.billing.test_grant_paid_corrections import _balance, _remaining_of
from tests.functional.billing.test_grant_paid_tax_where import _correction_invoices, _notes_total
from tests.functional.billing.test_negative_final_invoice import _credit_notes
from tests.functional.billing.test_real_correction import api, rerun
from tests.support.deep import covering, every

__all__ = ["api"]  # the fixture, used by name
GIVEN = 10  # what the refund (or the lost dispute) gave back of C
NOTED = 12  # what an operator's goodwill note gave back of C (10 of the line, 2 of its tax)


def _ended(real: World, monkeypatch: Any, grant: int) -> tuple[dict[str, Any], str | None]:
    """Day 0 (4 calls) and day 1 (1 call, the final window) billed and finalized, with a promotional grant
    of ``grant`` (none when 0). Returns day 1's invoice and the grant's id."""
    _sub, grant_id = day0_billed(real, monkeypatch, grant)
    day1_billed(real, monkeypatch, end=True)
    (final,) = [i for i in real.invoices("acme") if i["kind"] == "usage" and i["subtotal_minor"] == 100]
    return final, grant_id


def _doc(real: World, invoice_id: str) -> dict[str, Any]:
    (found,) = [i for i in real.invoices("acme") if i["id"] == invoice_id]
    return found


def _give_back(real: World, api: Any, invoice_id: str, how: str) -> None:
    """``GIVEN`` of ``invoice_id``'s payment given back: refunded, or charged back (a dispute, open or
    lost)."""
    from neruba import bootstrap
    from neruba.logic.ledger.admin import Operator, Stores, close_dispute, open_dispute
    from neruba.models.ledger import DisputeClose, DisputeCreate
    from tests.functional.billing.credit_note_support import refund

    if how == "refund":
        refund(invoice_id, GIVEN)
        return
    if how == "note":  # an operator's goodwill: 10 of the line and its 2 of tax, as customer credit
        line = next(li for li in _doc(real, invoice_id)["lines"] if li["kind"] == "adjustment")
        body = {"lines": [{"line_id": line["line_id"], "amount_minor": 10}], "credit_amount_minor": NOTED}
        status, note = _credit_note(api, invoice_id, "goodwill", **body)
        assert (status, note["amount_minor"]) == (201, NOTED), note
        return
    stores = Stores(
        bootstrap.ledger(), bootstrap.audit(), bootstrap.catalog().get_customer, bootstrap.invoices().get
    )
    body = DisputeCreate(amount_minor=GIVEN, invoice_id=invoice_id, reason="chargeback")
    opened = open_dispute(stores, Operator("key:t", None, "d1"), "acme", body)
    if how == "dispute_lost":
        close_dispute(stores, Operator("key:t", None, "d2"), str(opened["id"]),
                      DisputeClose(outcome="lost", reason="closed"))  # fmt: skip


def _late_paid_then_given_back(real: World, api: Any, final: dict[str, Any], how: str) -> dict[str, Any]:
    """2 calls counted late on day 1 (rerun: a correction invoice C), C paid whole, ``GIVEN`` of it given
    back (``how``). Returns C."""
    from tests.functional.billing.credit_note_support import pay

    real.usage("acme", START + day(1, 2), 3)
    status, billed = rerun(api, final["id"], "in")
    assert (status, billed["correction"]["type"]) == (200, "correction_invoice"), billed
    (doc,) = _correction_invoices(real)
    if doc["total_minor"] > 0:
        pay(real, doc["id"], int(doc["total_minor"]), payment_id="ch_c")
    _give_back(real, api, doc["id"], how)
    return doc


WAYS = ["refund", "dispute_lost"]  # an open dispute: the correction waits (test_correction_disputed.py)


def _tax_owed_is_the_surviving_usage_s(how: str) -> None:
    """``tax_payable`` is the tax of the surviving calls (95): the tax of what a refund or a lost dispute
    gave back of the calls taken back left it (booked off ``refunds`` or ``dispute_losses``)."""
    assert -_balance("tax_payable") == 95, how


def _settled(real: World, invoice_id: str) -> int:
    """What the correction notes of ``invoice_id`` say they took back of the lines they correct."""
    from neruba.logic.billing.credit_notes import repository

    notes = [repository(real.ctx).get(str(n["id"])) or {} for n in _credit_notes(real, invoice_id)]
    return sum(
        int(a["amount_minor"]) for n in notes for a in (n.get("correction") or {}).get("adjustments", [])
    )


@pytest.mark.parametrize(("grant", "how"), covering([1000, 600], [*WAYS, "note"]))
def test_a_grant_paid_correction_invoice_refunded_gives_back_only_what_it_still_has(
    real: World, api: Any, monkeypatch: Any, how: str, grant: int
) -> None:
    # GIVEN billing ended, a correction invoice C of 2 late calls (200 + 38, the grant paying the 200, or
    # the 100 it has left), the rest paid, 10 of it given back outside credit notes
    final, grant_id = _ended(real, monkeypatch, grant)
    doc = _late_paid_then_given_back(real, api, final, how)
    paid_by_grant = min(grant - 500, 200)
    assert (doc["subtotal_minor"], doc["tax_minor"], doc["credits_applied_minor"]) == (200, 38, paid_by_grant)

    # WHEN the 2 calls are taken back (day 1 back to its one call, rerun)
    real.usage("acme", START + day(1, 2), 1)
    status, back = rerun(api, final["id"], "out")
    assert status == 200, back

    # THEN the grant gets back what it paid of C; C gives back what it still has in money (the 38 of tax,
    # and the 100 paid in money when the grant paid half), less the 10 given back, the corrected invoice
    # nothing (its call survives)
    assert _remaining_of(str(grant_id)) == grant - 500
    money = 238 - paid_by_grant
    outside = 0 if how == "note" else GIVEN  # an operator's note is one of C's notes
    amount, tax = _notes_total(real, doc["id"])
    assert amount + tax == money - outside
    if how != "note":  # (when 138 was paid, the 10 given back is 7.25 of the amount and 2.75 of tax)
        assert tax == (38 - GIVEN if paid_by_grant == 200 else 38 - 3)
    assert _notes_total(real, final["id"]) == (0, 0)
    assert [i for i in _correction_invoices(real) if i["id"] != doc["id"]] == []
    # AND the receivable is what the surviving calls owe (95) less the customer credit C's notes gave
    # (its money part was paid, 10 came back by the refund or dispute, the rest by the notes)
    assert _balance("receivable") == 95 - (money - outside)
    _tax_owed_is_the_surviving_usage_s(how)
    _agree(real)
    # AND a rerun changes nothing more
    assert rerun(api, final["id"], "again")[1]["action"] == "unchanged"


@pytest.mark.parametrize("how", every([*WAYS, "note"], 2))
def test_a_correction_invoice_paid_in_money_refunded_is_credited_for_what_it_still_has(
    real: World, api: Any, monkeypatch: Any, how: str
) -> None:
    # GIVEN billing ended without credit, a correction invoice C of 2 late calls (200 + 38) paid whole,
    # 10 of it given back outside credit notes
    final, _ = _ended(real, monkeypatch, 0)
    doc = _late_paid_then_given_back(real, api, final, how)
    assert (doc["subtotal_minor"], doc["tax_minor"], doc["total_minor"]) == (200, 38, 238)

    # WHEN the 2 calls are taken back
    real.usage("acme", START + day(1, 2), 1)
    status, back = rerun(api, final["id"], "out")
    assert status == 200, back

    # THEN C is credited for what it still has (238 less the 10 a refund or dispute gave back; after an
    # operator's note of 12, its notes come to 238 in all), the corrected invoice keeps its call, no
    # standalone credit
    outside = 0 if how == "note" else GIVEN
    amount, tax = _notes_total(real, doc["id"])
    assert amount + tax == 238 - outside
    # AND the correction's note says what it took back of the corrected line: what it credited
    assert _settled(real, doc["id"]) == amount - (10 if how == "note" else 0)
    assert _notes_total(real, final["id"]) == (0, 0)
    assert [i for i in _correction_invoices(real) if i["id"] != doc["id"]] == []
    # AND the receivable: day 0 and day 1 owed in full (476 + 119) less the customer credit C's notes gave
    assert _balance("receivable") == 476 + 119 - (238 - outside)
    _tax_owed_is_the_surviving_usage_s(how)
    _agree(real)
    assert rerun(api, final["id"], "again")[1]["action"] == "unchanged"


@pytest.mark.parametrize("refunded", [300, 50], ids=["beyond-what-it-keeps", "within-what-it-keeps"])
def test_a_window_line_taking_back_a_refunded_window_s_difference_gives_back_only_what_it_still_has(
    real: World, monkeypatch: Any, refunded: int
) -> None:
    from tests.functional.billing.credit_note_support import pay, refund
    from tests.functional.billing.test_grant_paid_corrections import _usage

    # GIVEN 19% exclusive tax; day 0 billed 4 calls (400 + 76); 2 more calls of day 0 counted late, billed
    # on day 1's invoice with its own call (100 + 200 adjustment, 57 of tax: 357), paid, then ``refunded``
    day0_billed(real, monkeypatch)
    day1_billed(real, monkeypatch, 6, end=False)
    second = _usage(real, 1)
    assert (second["subtotal_minor"], second["tax_minor"]) == (300, 57)
    pay(real, second["id"], 357, payment_id="ch_w1")
    refund(second["id"], refunded)

    # WHEN the 2 late calls are voided and day 2 (3 calls) is billed, staying above zero
    real.usage("acme", START + day(0, 4), 4)
    real.usage("acme", START + day(2, 2), 3)
    _bill(real, START + day(3, 1), monkeypatch)

    # THEN the refund comes first out of what day 1 keeps billing (its call: 119); only what is left of it
    # had given back part of the 2 calls (238): day 2's negative line gives back the rest, never more
    third = _usage(real, 2)
    (line,) = [li for li in third["lines"] if li["kind"] == "adjustment"]
    given = int(line["amount_minor"]) + int(line["tax"]["exclusive_minor"])
    assert given == -(238 - max(refunded - 119, 0))
    assert third["total_minor"] == 357 + given
    assert _credit_notes(real, second["id"]) == []
    _agree(real)


def test_a_window_line_taking_back_grant_paid_usage_of_a_refunded_window_gives_back_only_its_tax_left(
    real: World, monkeypatch: Any
) -> None:
    from tests.functional.billing.credit_note_support import pay, refund
    from tests.functional.billing.test_grant_paid_corrections import _usage

    # GIVEN a grant paying all usage; day 1's invoice billed its own call and 2 late calls of day 0 (300,
    # the grant paying it, 57 of tax owed), paid, then 50 of it refunded: 19 of it was the tax of day 1's
    # own call, the other 31 the tax of the late calls
    day0_billed(real, monkeypatch, 2000)
    day1_billed(real, monkeypatch, 6, end=False)
    second = _usage(real, 1)
    assert (second["subtotal_minor"], second["credits_applied_minor"], second["total_minor"]) == (
        300,
        300,
        57,
    )
    pay(real, second["id"], 57, payment_id="ch_w1")
    refund(second["id"], 50)

    # WHEN the 2 late calls are voided and day 2 (3 calls) is billed, staying above zero
    real.usage("acme", START + day(0, 4), 4)
    real.usage("acme", START + day(2, 2), 3)
    _bill(real, START + day(3, 1), monkeypatch)

    # THEN the grant gets its 200 back and day 2's line gives back only the 7 of tax left of the 38
    third = _usage(real, 2)
    assert [int(r["amount_minor"]) for r in third["grant_restorations"]] == [200]
    given = [int(li["tax"]["exclusive_minor"]) for li in third["lines"] if li["kind"] == "adjustment"]
    assert sum(given) == -(38 - (50 - 19))
    _agree(real)
