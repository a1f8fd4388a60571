"""Explain names the credit notes that took a line back and the correction each settled: an invoice
line's explanation cites the credit note, the adjustments it settled and the voided events behind them;
the credit note's own explanation names them too; every line names the ledger postings booking it
(docs/billing.md, "Explain: credit notes, corrections and ledger entries")."""

from __future__ import annotations

from typing import Any

from tests.functional.billing.conftest import START, World, subscribe_real
from tests.functional.billing.helpers import billing_state, day, schedule
from tests.functional.billing.test_correction_settlement import _credit_note, _ended
from tests.functional.billing.test_correction_settlement_merged import _with_correction_a
from tests.functional.billing.test_event_void_billing import _bill, _events, _explain, _void
from tests.functional.billing.test_real_correction import api, rerun
from tests.support.api import api_event, call

__all__ = ["api"]  # the fixture, used by name


def _explain_note(note_id: str) -> Any:
    from functions.billing_api.app import lambda_handler

    path = f"/v1/credit-notes/{note_id}/explain"
    event = api_event("GET", path, path_parameters={"credit_note_id": note_id}, scopes="read")
    status, body, _ = call(lambda_handler, event)
    assert status == 200, body
    return body


def _line(explained: dict[str, Any], kind: str) -> dict[str, Any]:
    (line,) = [line for line in explained["lines"] if line["kind"] == kind]
    return line


def test_a_void_settled_by_a_credit_note_is_cited_on_the_line_and_on_the_note(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing.corrections import late_corrections
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    # GIVEN an ended subscription's final invoice of 3 calls, one of them voided afterwards
    sub = subscribe_real(real, "acme")
    _events("a", "b", "c", at=START + day(0, 4))
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    _bill(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    assert billing_state(real, sub["id"]).status == "ended"
    final = real.invoices("acme")[-1]
    _void("a", START + day(1, 1), "v1")
    (issued,) = late_corrections(real.ctx, "acme", START + day(1, 2))
    (note_id,) = issued["credit_notes"]

    # WHEN the final invoice is explained
    explained = _explain(final["id"])
    usage = _line(explained, "usage")
    # THEN its usage line names the credit note, the correction it settled and the void behind it
    (cited,) = usage["credit_notes"]
    assert (cited["credit_note_id"], cited["amount_minor"]) == (note_id, 100)
    correction = cited["correction"]
    assert correction["corrects"]["invoice_id"] == final["id"]
    (adjustment,) = correction["adjustments"]
    assert (adjustment["amount_minor"], adjustment["corrects"]["line_id"]) == (-100, usage["line_id"])
    (void,) = adjustment["voided_events"]
    assert (void["transaction_id"], void["kind"], void["ticket"]) == ("a", "void", "FIN-7")
    assert usage["credited"]["amount_minor"] == 100
    # AND the line names the postings booking it: the invoice's own, then the credit note's
    postings = {p["posting_id"]: p for p in explained["postings"]}
    assert usage["postings"][-1] == cited["posting_id"] and len(usage["postings"]) == 2
    assert [postings[p]["idempotency_key"] for p in usage["postings"]] == [
        f"invoice:{final['id']}",
        f"credit_note:{note_id}",
    ]
    entries = postings[cited["posting_id"]]["entries"]
    assert {(e["account"], e["debit_minor"], e["credit_minor"]) for e in entries} == {
        ("revenue", 100, 0),
        ("receivable", 0, 100),
    }
    # AND the credit note's own explanation names the adjustment and the void
    note = _explain_note(note_id)
    (settled,) = note["settles"]
    assert settled["key"] == adjustment["key"]
    assert [v["transaction_id"] for v in settled["voided_events"]] == ["a"]


def test_two_notes_each_cited_on_the_line_it_took_from(real: World, api: Any, monkeypatch: Any) -> None:
    # GIVEN the final invoice and correction invoice A, then the usage recounted below what was billed
    final, a_id = _with_correction_a(real, api, monkeypatch)
    real.usage("acme", START + day(0, 4), 10)
    status, taken = rerun(api, final["id"], "rr-below")
    assert status == 200, taken
    by_invoice = {n["invoice_id"]: n for n in taken["correction"]["credit_notes"]}
    # THEN A's adjustment line names A's note and the final invoice's usage line the other one, each with
    # the one adjustment of 35 calls taken back and its own share of it
    for invoice_id, kind, share in ((a_id, "adjustment", 3300), (final["id"], "usage", 200)):
        line = _line(_explain(invoice_id), kind)
        (cited,) = line["credit_notes"]
        assert cited["credit_note_id"] == by_invoice[invoice_id]["id"]
        assert cited["correction"]["corrects"]["invoice_id"] == final["id"]
        (adjustment,) = cited["correction"]["adjustments"]
        assert (adjustment["amount_minor"], adjustment["settled_minor"]) == (-3500, share)
        stored = real.ctx.billing.credit_notes.get(cited["credit_note_id"])
        assert stored is not None
        assert stored["correction"]["adjustments"] == [
            {"key": adjustment["key"], "corrects": adjustment["corrects"], "amount_minor": share}
        ]
        assert _explain_note(cited["credit_note_id"])["settles"][0]["corrects"]["invoice_id"] == final["id"]


def test_an_operators_credit_note_is_cited_without_a_correction(
    real: World, api: Any, monkeypatch: Any
) -> None:
    final = _ended(real, api, monkeypatch)
    usage = _line(final, "usage")
    status, note = _credit_note(
        api, final["id"], "cn-op", lines=[{"line_id": usage["line_id"], "amount_minor": 300}]
    )
    assert status in (200, 201), note
    (cited,) = _line(_explain(final["id"]), "usage")["credit_notes"]
    assert (cited["credit_note_id"], cited["amount_minor"], cited["correction"]) == (note["id"], 300, None)
    assert cited["reason"] == "again" and cited["tax_minor"] == 57
    assert _explain_note(note["id"])["settles"] == []


def test_completeness_names_the_credit_note_that_settled_a_late_difference(
    real: World, monkeypatch: Any
) -> None:
    from functions.billing_api.app import lambda_handler
    from neruba.logic.billing.corrections import late_corrections
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    # GIVEN an ended subscription's final invoice, one of its events voided and the difference settled
    # by a credit note against that invoice
    sub = subscribe_real(real, "acme")
    _events("a", "b", "c", at=START + day(0, 4))
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    _bill(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    final = real.invoices("acme")[-1]
    _void("a", START + day(1, 1), "v1")
    (issued,) = late_corrections(real.ctx, "acme", START + day(1, 2))
    (note_id,) = issued["credit_notes"]

    # WHEN the final invoice's completeness is read
    path = f"/v1/invoices/{final['id']}/completeness"
    event = api_event("GET", path, path_parameters={"invoice_id": final["id"]}, scopes="read")
    status, body, _ = call(lambda_handler, event)
    assert status == 200, body

    # THEN the late difference says where it went: the credit note (its id and number) on that invoice
    (late,) = body["late_events"]
    assert (late["amount_minor"], late["status"]) == (-100, "applied")
    carrier = late["applied_to"]
    assert carrier is not None, late
    assert (carrier["kind"], carrier["credit_note_id"], carrier["invoice_id"]) == (
        "credit_note",
        note_id,
        final["id"],
    )
    assert carrier["number"].startswith("CN-")
