"""Credit notes and voids of an invoice whose tax Stripe Tax computed: the note gives back its share of the
Stripe tax recorded on the invoice (one rounding rule, the last credit taking what is left), Stripe's credit
note credits the same tax (compared at sync; a difference is recorded), the books stay balanced and the
receivable is the total less the notes; a note before Stripe's tax is known is refused; a paid delegated
invoice voided is credited in Stripe through one note of its whole total."""

from __future__ import annotations

from typing import Any

import pytest

from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import World
from tests.functional.stripe.test_end_to_end import (
    CUSTOMER,
    invoice,
    ledger,
    stripe_invoice_of,
    sync_run,
    work_events,
)
from tests.functional.stripe.test_stripe_tax import _bill, _ledger_balanced_and_owed, _place
from tests.support.stripe_events import event


def _synced_and_taxed(fake: FakeStripe, world: World, deliver: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """acme delegated in DE, its day billed (1000), synced, Stripe's 19% (190) recorded; the invoice id."""
    _place(world, "stripe_tax")
    usage = _bill(world, monkeypatch)
    while sync_run():
        pass
    assert deliver(event("invoice.finalized", stripe_invoice_of(fake, usage["id"])))[0] == 200
    work_events()
    assert invoice(usage["id"]).total_minor == 1190
    return str(usage["id"])


def _credit(invoice_id: str, body: dict[str, Any], key: str) -> tuple[int, Any]:
    from neruba import bootstrap

    world_ctx = bootstrap.billing()
    from functions.billing_api.app import lambda_handler
    from tests.support.api import api_event, call

    bootstrap.install(billing=world_ctx)
    path, params = f"/admin/invoices/{invoice_id}/credit-notes", {"invoice_id": invoice_id}
    found = api_event("POST", path, body={"reason": "outage", **body}, path_parameters=params,
                      headers={"Idempotency-Key": key})  # fmt: skip
    status, answer, _ = call(lambda_handler, found)
    return status, answer


def _line(invoice_id: str) -> str:
    [line] = invoice(invoice_id).lines
    return str(line.line_id)


def _notes_of(fake: FakeStripe, theirs: str) -> list[dict[str, Any]]:
    return [n for n in fake.credit_notes.values() if n["invoice"] == theirs]


def _owed_by_invoice(invoice_id: str) -> int:
    doc = invoice(invoice_id).document
    return int(doc["total_minor"]) - int(doc.get("credited_minor") or 0)


def test_credit_notes_of_a_delegated_invoice_give_back_stripe_s_tax_and_agree_with_stripe(
    fake: FakeStripe, world: World, deliver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a delegated invoice of 1000 with Stripe's 190 recorded
    invoice_id = _synced_and_taxed(fake, world, deliver, monkeypatch)
    theirs = stripe_invoice_of(fake, invoice_id)["id"]
    # WHEN 333 of its line is credited (the request sent twice)
    status, note = _credit(invoice_id, {"lines": [{"line_id": _line(invoice_id), "amount_minor": 333}]}, "c1")
    assert status == 201, note
    assert (
        _credit(invoice_id, {"lines": [{"line_id": _line(invoice_id), "amount_minor": 333}]}, "c1")[1]["id"]
        == note["id"]
    )
    # THEN it gives back 19% of 333 rounded half-up (63.27 -> 63) on top
    assert (note["subtotal_minor"], note["tax_minor"], note["amount_minor"]) == (333, 63, 396)
    books = _ledger_balanced_and_owed()
    assert (books["tax_payable"], books["receivable"]) == (-127, 794) and _owed_by_invoice(invoice_id) == 794
    # WHEN it is synced twice: one Stripe note, Stripe's tax the same, so synced
    while sync_run():
        pass
    assert not sync_run()
    [first] = _notes_of(fake, theirs)
    assert (first["subtotal"], first["total_taxes"][0]["amount"], first["total"]) == (333, 63, 396)
    from neruba import bootstrap

    kept = bootstrap.billing().billing.credit_notes.get(note["id"]) or {}
    assert kept["stripe"] == {"credit_note_id": first["id"], "status": "synced", "tax_minor": 63,
                              "amount_minor": 396}  # fmt: skip
    # WHEN the rest is credited whole: it takes all that is left of the line and of the tax
    status, rest = _credit(invoice_id, {}, "c2")
    assert status == 201, rest
    assert (rest["subtotal_minor"], rest["tax_minor"], rest["amount_minor"]) == (667, 127, 794)
    while sync_run():
        pass
    assert sorted(n["total"] for n in _notes_of(fake, theirs)) == [396, 794]
    assert (bootstrap.billing().billing.credit_notes.get(rest["id"]) or {})["stripe"]["status"] == "synced"
    # AND the books: no tax owed, nothing receivable, the invoice fully credited
    books = _ledger_balanced_and_owed()
    assert (books["tax_payable"], books["receivable"]) == (0, 0) and _owed_by_invoice(invoice_id) == 0
    # AND invoice.finalized delivered again records nothing more
    assert deliver(event("invoice.finalized", stripe_invoice_of(fake, invoice_id)))[0] == 200
    work_events()
    assert invoice(invoice_id).total_minor == 1190 and _ledger_balanced_and_owed()["tax_payable"] == 0


def test_stripe_crediting_another_tax_is_a_recorded_mismatch(
    fake: FakeStripe, world: World, deliver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a delegated invoice whose Stripe invoice says another tax than the one Neruba recorded
    invoice_id = _synced_and_taxed(fake, world, deliver, monkeypatch)
    stripe_invoice_of(fake, invoice_id)["tax"] = 200
    # WHEN half its line is credited and synced
    status, note = _credit(invoice_id, {"lines": [{"line_id": _line(invoice_id), "amount_minor": 500}]}, "c1")
    assert status == 201 and note["tax_minor"] == 95
    while sync_run():
        pass
    # THEN the note's sync says the two amounts, the message is consumed (no retry can change it)
    from neruba import bootstrap

    kept = (bootstrap.billing().billing.credit_notes.get(note["id"]) or {})["stripe"]
    assert (kept["status"], kept["tax_minor"], kept["amount_minor"]) == ("mismatch", 100, 600)
    assert kept["last_error"].startswith("stripe_credit_note_mismatch: Stripe credited 600 with tax 100")
    assert not sync_run() and len(fake.credit_notes) == 1
    # AND the credit note's answer shows it
    from functions.billing_api.app import lambda_handler
    from tests.support.api import api_event, call

    path, params = f"/v1/credit-notes/{note['id']}", {"credit_note_id": note["id"]}
    status, shown, _ = call(lambda_handler, api_event("GET", path, path_parameters=params))
    assert status == 200 and shown["stripe"]["status"] == "mismatch", shown


def test_a_credit_note_before_stripe_s_tax_is_recorded_is_refused_until_it_is(
    fake: FakeStripe, world: World, deliver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a delegated invoice finalized and synced, whose invoice.finalized has not arrived
    _place(world, "stripe_tax")
    usage = _bill(world, monkeypatch)
    while sync_run():
        pass
    # WHEN it is credited: refused, nothing written
    status, answer = _credit(usage["id"], {}, "c1")
    assert (status, answer["error"]["code"]) == (409, "stripe_tax_pending"), answer
    assert "credited_minor" not in invoice(usage["id"]).document or not invoice(usage["id"]).document[
        "credited_minor"]  # fmt: skip
    # WHEN Stripe's tax arrives, the same request is accepted and gives the whole tax back
    assert deliver(event("invoice.finalized", stripe_invoice_of(fake, usage["id"])))[0] == 200
    work_events()
    status, note = _credit(usage["id"], {}, "c1")
    assert status == 201 and (note["tax_minor"], note["amount_minor"]) == (190, 1190)
    books = _ledger_balanced_and_owed()
    assert (books["tax_payable"], books["receivable"]) == (0, 0)


def test_a_paid_delegated_invoice_voided_is_credited_whole_in_stripe_once(
    fake: FakeStripe, world: World, deliver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a delegated invoice with Stripe's tax recorded, paid in Stripe (its invoice.paid not arrived:
    # Neruba voids only an invoice it has no payment for)
    invoice_id = _synced_and_taxed(fake, world, deliver, monkeypatch)
    stripe_invoice = stripe_invoice_of(fake, invoice_id)
    fake.invoices[stripe_invoice["id"]]["status"] = "paid"
    fake.invoices[stripe_invoice["id"]].update(amount_paid=1190, amount_remaining=0)
    # WHEN it is voided and the void reaches Stripe (the message run twice)
    from neruba import bootstrap
    from neruba.logic.billing.void import void_invoice
    from neruba.models.billing import InvoiceVoid

    void_invoice(bootstrap.billing(), invoice_id, InvoiceVoid(reason="wrong customer"), "key:t", "v1")
    while sync_run():
        pass
    import json

    import boto3

    from tests.support.aws import queue_url

    boto3.client("sqs").send_message(QueueUrl=queue_url("StripeSyncQueue"),
                                     MessageBody=json.dumps({"void_invoice_id": invoice_id}))  # fmt: skip
    while sync_run():
        pass
    # THEN one Stripe note: the total before tax as its line, Stripe's tax on top, the whole 1190 credited
    [note] = _notes_of(fake, stripe_invoice["id"])
    assert (note["subtotal"], note["total_taxes"][0]["amount"], note["total"], note["credit_amount"]) == (
        1000, 190, 1190, 1190)  # fmt: skip
    state = (invoice(invoice_id).stripe or {})["void"]
    assert (state["status"], state["credit_note_id"]) == ("credited", note["id"])
    # AND the books: the voided invoice's tax and total reversed, balanced
    books = _ledger_balanced_and_owed()
    assert books["tax_payable"] == 0
    reversed_ = [p for p in ledger().postings(CUSTOMER, limit=100)[0] if p.reason == "invoice_void"]
    assert [sum(e.debit_minor for e in p.entries if e.account == "tax_payable") for p in reversed_] == [190]
