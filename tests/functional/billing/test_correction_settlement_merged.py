"""A negative correction after the end settles by credit notes against every invoice carrying what it
takes back, in its one transaction, even when the notes (and the correction's own invoice) move the same
ledger balances: the moves on one balance item are combined into one update, never a fallback to a
standalone credit-note invoice that leaves the earlier invoices asking for the amount (docs/billing.md,
"Negative corrections settle against what they correct", "Several postings in one transaction").

19% exclusive tax, 1.00 per call, the final window of a cancelled subscription billed with 12 calls.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, ledger
from tests.functional.billing.helpers import day
from tests.functional.billing.test_correction_settlement import (
    LATE,
    _agree,
    _credit_note,
    _ended,
    _remaining,
    _taxed,
)
from tests.functional.billing.test_real_correction import BILLED_CALLS, PRICE, api, rerun

__all__ = ["api"]  # the fixture, used by name


def _standalone(real: World) -> list[dict[str, Any]]:
    return [i for i in real.invoices("acme") if i["kind"] == "credit_note"]


def _with_correction_a(real: World, api: Any, monkeypatch: Any) -> tuple[dict[str, Any], str]:
    """The final invoice (12 calls) and correction invoice A billing a backfill of 33 calls."""
    final = _ended(real, api, monkeypatch)
    real.usage("acme", START + day(0, 4), BILLED_CALLS + LATE)
    status, added = rerun(api, final["id"], "rr-add")
    assert status == 200 and added["correction"]["type"] == "correction_invoice", added
    return final, str(added["correction"]["invoice_id"])


def test_two_credit_notes_against_two_invoices_of_the_customer(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN the final invoice and correction invoice A, both unpaid
    final, a_id = _with_correction_a(real, api, monkeypatch)
    # WHEN the usage is recounted as 10 calls: all of A's 33 and 2 of the final invoice's 12 taken back
    real.usage("acme", START + day(0, 4), 10)
    status, taken = rerun(api, final["id"], "rr-below")
    # THEN two credit notes, A's whole amount and the final invoice's 2 calls, and no standalone credit
    assert status == 200, taken
    correction = taken["correction"]
    notes = [(n["invoice_id"], n["amount_minor"]) for n in correction["credit_notes"]]
    assert notes == [(a_id, _taxed(LATE * PRICE)), (final["id"], _taxed(2 * PRICE))], correction
    assert (correction["type"], correction["invoice_id"]) == ("credit_note", None)
    assert correction["amount_minor"] == -(_taxed(LATE * PRICE) + _taxed(2 * PRICE))
    assert _standalone(real) == []
    # AND each invoice asks for exactly what is left: A nothing (paid by the note), the final 10 calls
    remaining = _remaining(real)  # the other invoices (the opening one) asked for nothing
    left = _taxed(BILLED_CALLS * PRICE) - _taxed(2 * PRICE)
    assert (remaining[final["id"]], remaining[a_id], sum(remaining.values())) == (left, 0, left)
    assert ledger().balances("acme")["USD"]["receivable"] == remaining[final["id"]]
    _agree(real)
    # AND nothing is credited twice: a retry answers the same, a new rerun finds nothing, A is exhausted
    assert rerun(api, final["id"], "rr-below") == (200, taken)
    assert rerun(api, final["id"], "rr-below-2")[1]["action"] == "unchanged"
    assert _credit_note(api, a_id, "cn-again")[1]["error"]["code"] == "credit_note_exceeds_creditable"
    _agree(real)


def test_a_credit_note_beside_the_corrections_own_invoice(real: World, api: Any, monkeypatch: Any) -> None:
    # GIVEN the final invoice's usage line credited by an operator down to 1.00 left
    final = _ended(real, api, monkeypatch)
    (line,) = [line for line in final["lines"] if line["kind"] == "usage"]
    body = {"lines": [{"line_id": line["line_id"], "amount_minor": BILLED_CALLS * PRICE - PRICE}]}
    status, first = _credit_note(api, final["id"], "cn-op", **body)
    assert status in (200, 201), first
    # WHEN the usage is recounted as 10 calls: 2.00 to take back, 1.00 still carried by the final invoice
    real.usage("acme", START + day(0, 4), 10)
    status, taken = rerun(api, final["id"], "rr-beside")
    # THEN a credit note takes the 1.00 the invoice still carries and only the other 1.00 stays on the
    # correction's own credit note invoice, in the one transaction
    assert status == 200, taken
    correction = taken["correction"]
    assert [(n["invoice_id"], n["amount_minor"]) for n in correction["credit_notes"]] == [
        (final["id"], _taxed(PRICE))
    ], correction
    (own,) = _standalone(real)
    assert (correction["invoice_id"], own["subtotal_minor"]) == (own["id"], -PRICE)
    assert correction["amount_minor"] == own["total_minor"] - _taxed(PRICE)
    assert _remaining(real)[final["id"]] == 0
    stored = real.ctx.invoices.get(final["id"])
    assert stored is not None and stored.status == "paid"
    _agree(real)
    assert rerun(api, final["id"], "rr-beside-2")[1]["action"] == "unchanged"


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_rerun_killed_around_its_transaction_is_retried_once(
    real: World, api: Any, monkeypatch: Any, when: str
) -> None:
    from neruba.dal import transaction
    from neruba.logic.billing import admin

    final, a_id = _with_correction_a(real, api, monkeypatch)
    real.usage("acme", START + day(0, 4), 10)

    def killed(unit: Any) -> None:
        if when == "after":
            transaction.commit(unit)
        raise RuntimeError("killed")

    # WHEN the process dies just before (or just after) the settling transaction, then the call is retried
    monkeypatch.setattr(admin, "commit", killed)
    status, _ = rerun(api, final["id"], "rr-killed")
    assert status == 500
    monkeypatch.setattr(admin, "commit", transaction.commit)
    status, taken = rerun(api, final["id"], "rr-killed")
    # THEN the two notes exist once, and everything agrees
    assert status == 200, taken
    ids = [n["id"] for n in taken["correction"]["credit_notes"]]
    assert len(ids) == 2 and all(real.ctx.billing.credit_notes.get(i) for i in ids)
    for invoice_id in (final["id"], a_id):
        stored = real.ctx.invoices.get(invoice_id)
        assert stored is not None and len(stored.document.get("credit_notes") or []) == 1
    assert _standalone(real) == []
    assert _remaining(real)[a_id] == 0
    _agree(real)


def test_two_sweeps_at_once_settle_once(real: World, api: Any, monkeypatch: Any) -> None:
    from neruba.dal import transaction
    from neruba.logic.billing.corrections import late_corrections

    final, a_id = _with_correction_a(real, api, monkeypatch)
    real.usage("acme", START + day(0, 4), 10)
    now = START + day(1, 2)
    real_commit = transaction.commit
    inner: list[list[dict[str, Any]]] = []

    def racing(unit: Any) -> None:
        # the other sweep decides and commits between this sweep's decision and its commit
        monkeypatch.setattr(transaction, "commit", real_commit)
        inner.append(late_corrections(real.ctx, "acme", now))
        real_commit(unit)

    monkeypatch.setattr(transaction, "commit", racing)
    outer = late_corrections(real.ctx, "acme", now)
    # THEN one of them settled with the two notes, the other found its transaction cancelled
    (issued,) = inner[0] + outer
    assert issued["invoice_id"] is None and len(issued["credit_notes"]) == 2
    assert late_corrections(real.ctx, "acme", now) == []  # and a third finds nothing
    remaining = _remaining(real)
    left = _taxed(BILLED_CALLS * PRICE) - _taxed(2 * PRICE)
    assert (remaining[final["id"]], remaining[a_id], sum(remaining.values())) == (left, 0, left)
    assert _standalone(real) == []
    _agree(real)


def test_a_correction_over_the_transaction_limit_is_refused_whole(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.logic.billing import corrections

    final, a_id = _with_correction_a(real, api, monkeypatch)
    real.usage("acme", START + day(0, 4), 10)
    before = ledger().balances("acme")
    # WHEN the settling transaction would need more actions than one transaction holds
    monkeypatch.setattr(corrections, "LIMIT", 12)
    status, refused = rerun(api, final["id"], "rr-big")
    # THEN the rerun is refused with its own code, and nothing is written
    assert status == 409, refused
    assert refused["error"]["code"] == "correction_too_large"
    assert refused["error"]["details"][0]["limit"] == 12
    assert ledger().balances("acme") == before
    assert _standalone(real) == []
    stored = real.ctx.invoices.get(a_id)
    assert stored is not None and not stored.document.get("credit_notes")


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_sweep_killed_around_its_transaction_settles_once(
    real: World, api: Any, monkeypatch: Any, when: str
) -> None:
    from neruba.dal import transaction
    from neruba.logic.billing.corrections import late_corrections

    final, a_id = _with_correction_a(real, api, monkeypatch)
    real.usage("acme", START + day(0, 4), 10)
    now = START + day(1, 2)
    real_commit = transaction.commit

    def killed(unit: Any) -> None:
        if when == "after":
            real_commit(unit)
        raise RuntimeError("killed")

    # WHEN the sweep dies just before (or just after) the settling transaction, then runs again
    monkeypatch.setattr(transaction, "commit", killed)
    with pytest.raises(RuntimeError):
        late_corrections(real.ctx, "acme", now)
    monkeypatch.setattr(transaction, "commit", real_commit)
    again = late_corrections(real.ctx, "acme", now)
    # THEN the next run issues the two notes only if the first wrote nothing; either way they exist once
    assert len(again) == (1 if when == "before" else 0)
    for invoice_id in (final["id"], a_id):
        stored = real.ctx.invoices.get(invoice_id)
        assert stored is not None and len(stored.document.get("credit_notes") or []) == 1
    assert late_corrections(real.ctx, "acme", now) == []
    left = _taxed(BILLED_CALLS * PRICE) - _taxed(2 * PRICE)
    remaining = _remaining(real)
    assert (remaining[final["id"]], remaining[a_id], sum(remaining.values())) == (left, 0, left)
    assert _standalone(real) == []
    _agree(real)


def test_completeness_names_every_credit_note_a_difference_was_settled_by(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from functions.billing_api.app import lambda_handler
    from tests.support.api import api_event, call

    # GIVEN a difference of the final invoice settled by two credit notes (on A and on the final invoice)
    final, a_id = _with_correction_a(real, api, monkeypatch)
    real.usage("acme", START + day(0, 4), 10)
    status, taken = rerun(api, final["id"], "rr-below")
    assert status == 200, taken
    notes = {n["invoice_id"]: n for n in taken["correction"]["credit_notes"]}
    # WHEN the final invoice's completeness is read
    path = f"/v1/invoices/{final['id']}/completeness"
    event = api_event("GET", path, path_parameters={"invoice_id": final["id"]}, scopes="read")
    status, body, _ = call(lambda_handler, event)
    assert status == 200, body
    # THEN the negative difference names both notes, each with the share it settled (taken back, as
    # explain's settled_minor), adding up to it
    (negative,) = [late for late in body["late_events"] if late["amount_minor"] < 0]
    shares = {(c["credit_note_id"], c["invoice_id"], c["settled_minor"]) for c in negative["settled_by"]}
    assert {(note_id, invoice) for note_id, invoice, _ in shares} == {
        (notes[a_id]["id"], a_id),
        (notes[final["id"]]["id"], final["id"]),
    }
    assert sum(share for _, _, share in shares) == -negative["amount_minor"]
    assert negative["applied_to"]["kind"] == "credit_note"
    # AND the positive difference billed on A names A, and no note
    (positive,) = [late for late in body["late_events"] if late["amount_minor"] > 0]
    assert positive["applied_to"]["invoice_id"] == a_id and positive["settled_by"] == []
