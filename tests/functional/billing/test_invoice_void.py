"""Void a finalized, unpaid invoice and issue its replacement: a new number, the same lines (or lines rated
again from the usage stored now), linked both ways; posted so the books still agree; idempotent and
audited; refused with a code when the invoice was paid, credited or is not voidable; and the late-event
check follows the replacement."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.errors import ConflictError
from tests.functional.billing.conftest import START, World, ledger, subscribe_real
from tests.functional.billing.credit_note_support import issue, pay
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.webhooks.sources import outbox
from tests.support.api import api_event, call


@pytest.fixture
def api(world: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


def void(api: Any, invoice_id: str, key: str | None = "v-1", **body: Any) -> tuple[int, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    event = api_event("POST", f"/admin/invoices/{invoice_id}/void", body={"reason": "wrong address", **body},
                      path_parameters={"invoice_id": invoice_id}, headers=headers)  # fmt: skip
    status, answer = call(api, event)[:2]
    return status, answer


def _books(world: World) -> None:
    from neruba.logic.sweeps.receivable import invoice_owed, receivable_by_invoice

    assert ledger().reconcile("acme") == []
    postings, _ = ledger().postings("acme", 1000)
    owed, _ = receivable_by_invoice(postings)
    for inv in world.ctx.invoices.of_customer("acme"):
        assert owed.get(inv.id, 0) == invoice_owed(inv), inv.id


def test_void_issues_a_numbered_replacement_with_the_same_lines_once(world: World, api: Any) -> None:
    old = issue(world, [("a", 1000, "10"), ("b", 500, "1")])
    status, result = void(api, old)
    again = void(api, old)

    assert status == 200, result
    assert again == (200, result)
    voided, new = result["invoice"], result["replacement"]
    assert (voided["status"], voided["replaced_by"]) == ("void", new["id"])
    assert new["regenerated_from"] == {"invoice_id": old, "number": voided["number"]}
    assert (new["status"], new["number"]) == ("finalized", "INV-000002")
    assert [(line["line_id"], line["amount_minor"]) for line in new["lines"]] == [("a", 1000), ("b", 500)]
    assert ledger().balances("acme")["USD"]["receivable"] == 1500
    assert [e["data"]["id"] for e in outbox("invoice.created")][-1] == new["id"]
    assert [(e["data"]["id"], e["data"]["replaced_by"]) for e in outbox("invoice.voided")] == [
        (old, new["id"])
    ]
    _books(world)


@pytest.mark.parametrize(
    ("prepare", "code"),
    [("paid", "invoice_has_payments"), ("credited", "invoice_has_credit_notes"), ("voided", "invoice_void")],
)
def test_what_cannot_be_voided(world: World, api: Any, prepare: str, code: str) -> None:
    from neruba.logic.billing.credit_notes import create_credit_note
    from neruba.models.billing import CreditNoteCreate

    old = issue(world, [("a", 1000, "1")])
    if prepare == "paid":
        pay(world, old, 100)
    elif prepare == "credited":
        create_credit_note(world.ctx, old, CreditNoteCreate(reason="part"), "key:t", "c1")
    else:
        void(api, old, key="first")
    status, refused = void(api, old, key="second")
    assert (status, refused["error"]["code"]) == (409, code)
    _books(world)


@pytest.mark.parametrize(
    ("kind", "says"),
    [("correction", "with a credit note"), ("credit_note", "rerun"), ("topup", "void of its grant")],
)
def test_an_invoice_of_another_kind_is_refused_with_what_to_do_instead(
    world: World, api: Any, kind: str, says: str
) -> None:
    # GIVEN a finalized correction, credit note or top-up invoice
    invoice = issue(world, [("a", 1000, "1")], kind=kind)
    # WHEN an operator voids it
    status, refused = void(api, invoice)
    # THEN 409 invoice_not_voidable, saying why and what to do instead; nothing written
    assert (status, refused["error"]["code"]) == (409, "invoice_not_voidable"), refused
    assert says in refused["error"]["message"] and "posting of its own" not in refused["error"]["message"]
    assert world.ctx.invoices.get(invoice).status == "finalized"
    _books(world)


@pytest.mark.parametrize("action", ["void", "rerun", "credit-notes"])
def test_every_action_on_a_void_invoice_answers_409_invoice_void(world: World, api: Any, action: str) -> None:
    old = issue(world, [("a", 1000, "1")])
    assert void(api, old, key="first")[0] == 200
    event = api_event("POST", f"/admin/invoices/{old}/{action}", body={"reason": "again"},
                      path_parameters={"invoice_id": old}, headers={"Idempotency-Key": "second"})  # fmt: skip
    status, refused = call(api, event)[:2]
    assert (status, refused["error"]["code"]) == (409, "invoice_void"), refused


def test_no_key_and_a_one_off_cannot_be_recomputed(world: World, api: Any) -> None:
    old = issue(world, [("a", 1000, "1")])
    assert void(api, old, key=None)[1]["error"]["code"] == "idempotency_key_required"
    status, refused = void(api, old, regenerate="recompute")
    assert (status, refused["error"]["code"]) == (409, "invoice_not_recomputable")


def test_killed_before_finalizing_the_replacement_the_retry_finishes_once(
    world: World, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.billing import corrections

    old = issue(world, [("a", 1000, "1")])
    real = corrections.issue_now

    def killed(*args: Any) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(corrections, "issue_now", killed)
    with pytest.raises(SystemExit):
        void(api, old)
    monkeypatch.setattr(corrections, "issue_now", real)
    status, result = void(api, old)
    assert status == 200 and result["replacement"]["status"] == "finalized"
    assert len([i for i in world.ctx.invoices.of_customer("acme") if i.status != "void"]) == 1
    _books(world)


def test_recompute_rates_the_window_again_and_late_events_follow_the_replacement(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing.void import void_invoice
    from neruba.models.billing import InvoiceVoid

    # GIVEN day 0 billed with 12 calls and finalized, then its usage corrected to 15
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)
    schedule(real, START + day(1, 1))
    work(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    real.usage("acme", START + day(0, 4), 15)

    # WHEN it is voided and recomputed
    result = void_invoice(real.ctx, first["id"], InvoiceVoid(reason="usage fixed", regenerate="recompute"),
                          "key:t", "v1", now=START + day(1, 4))  # fmt: skip
    assert result["replacement"]["subtotal_minor"] == first["subtotal_minor"] + 300

    # THEN later late events of day 0 are billed against the replacement, once
    real.usage("acme", START + day(0, 4), 17)
    schedule(real, START + day(2, 1))
    work(real, START + day(2, 1), monkeypatch)
    second = [i for i in real.invoices("acme") if i["period_start"] > first["period_start"]][-1]
    (adjustment,) = [line for line in second["lines"] if line["kind"] == "adjustment"]
    assert adjustment["references"]["invoice_id"] == result["replacement"]["id"]
    assert adjustment["amount_minor"] == 200
    with pytest.raises(ConflictError):
        void_invoice(real.ctx, result["replacement"]["id"], InvoiceVoid(reason="again"), "key:t", "v2")


def _interleave(monkeypatch: pytest.MonkeyPatch, module: Any, second: Any) -> list[Any]:
    """Run ``second`` whole when the first request commits, then let the first commit."""
    real = module.commit
    done: list[Any] = []
    started: list[bool] = []

    def interleaved(unit: Any) -> None:
        if not started:
            started.append(True)
            try:
                done.append(second())
            except ConflictError as exc:
                done.append(exc)
        real(unit)

    monkeypatch.setattr(module, "commit", interleaved)
    return done


def test_two_voids_at_once_issue_one_replacement(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from neruba.logic.billing import void as module
    from neruba.models.billing import InvoiceVoid

    old = issue(world, [("a", 1000, "1")])
    body = InvoiceVoid(reason="duplicate request")
    done = _interleave(monkeypatch, module, lambda: module.void_invoice(world.ctx, old, body, "key:b", "k2"))
    with pytest.raises(ConflictError) as lost:
        module.void_invoice(world.ctx, old, body, "key:a", "k1")
    assert lost.value.code == "invoice_conflict"
    assert done[0]["invoice"]["status"] == "void"
    assert len([i for i in world.ctx.invoices.of_customer("acme") if i.status != "void"]) == 1
    _books(world)


def test_a_credit_note_racing_a_void_one_of_them_loses_whole(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.billing import void as module
    from neruba.logic.billing.credit_notes import create_credit_note
    from neruba.models.billing import CreditNoteCreate, InvoiceVoid

    old = issue(world, [("a", 1000, "1")])
    note = CreditNoteCreate(reason="part", lines=[{"line_id": "a", "amount_minor": 100}])  # type: ignore[list-item]
    done = _interleave(monkeypatch, module, lambda: create_credit_note(world.ctx, old, note, "key:b", "c1"))
    with pytest.raises(ConflictError):
        module.void_invoice(world.ctx, old, InvoiceVoid(reason="wrong"), "key:a", "v1")
    assert done[0]["amount_minor"] == 100
    stored = world.ctx.invoices.get(old)
    assert stored is not None and stored.status == "finalized"
    assert outbox("invoice.voided") == []
    _books(world)


def test_the_adjustments_refusal_says_whether_the_differences_are_pending_or_billed(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.logic.billing.void import void_invoice
    from neruba.models.billing import InvoiceVoid, RerunRequest

    # GIVEN day 0 billed and finalized, its usage then corrected and the invoice rerun
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)
    schedule(real, START + day(1, 1))
    work(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    real.usage("acme", START + day(0, 4), 15)
    rerun_invoice(real.ctx, first["id"], RerunRequest(reason="late"), "key:t", "r1", now=START + day(1, 4))

    def refusal(key: str) -> str:
        with pytest.raises(ConflictError) as refused:
            void_invoice(real.ctx, first["id"], InvoiceVoid(reason="wrong"), "key:t", key)
        assert refused.value.code == "invoice_has_adjustments"
        return str(refused.value)

    # WHEN voided while the differences are pending: THEN the message says they are pending, not billed
    pending = refusal("v1")
    assert "pending" in pending and "billed on" not in pending

    # WHEN the next window carried them: THEN the message names the invoice that billed them
    schedule(real, START + day(2, 1))
    work(real, START + day(2, 1), monkeypatch)
    second = [i for i in real.invoices("acme") if i["period_start"] > first["period_start"]][-1]
    billed = refusal("v2")
    assert f"billed on invoice {second['id']}" in billed and "pending" not in billed


def test_same_lines_keeps_the_lines_when_the_usage_changed_and_the_look_back_bills_the_difference(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing.void import void_invoice
    from neruba.models.billing import InvoiceVoid

    # GIVEN day 0 billed with 12 calls and finalized, then its usage corrected to 15
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)
    schedule(real, START + day(1, 1))
    work(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    real.usage("acme", START + day(0, 4), 15)

    # WHEN it is voided and regenerated with the same lines
    result = void_invoice(real.ctx, first["id"], InvoiceVoid(reason="wrong address"), "key:t", "v1",
                          now=START + day(1, 4))  # fmt: skip

    # THEN the replacement is finalized with the voided invoice's lines, not rated again when finalized
    replacement = result["replacement"]
    assert replacement["status"] == "finalized"
    assert [(x["line_id"], x["quantity"], x["amount_minor"]) for x in replacement["lines"]] == [
        (x["line_id"], x["quantity"], x["amount_minor"]) for x in first["lines"]
    ]
    assert replacement["total_minor"] == first["total_minor"]
    # and the late calls are billed once, by the next window's look-back, against the replacement
    schedule(real, START + day(2, 1))
    work(real, START + day(2, 1), monkeypatch)
    second = [i for i in real.invoices("acme") if i["period_start"] > first["period_start"]][-1]
    (adjustment,) = [line for line in second["lines"] if line["kind"] == "adjustment"]
    assert adjustment["references"]["invoice_id"] == replacement["id"]
    assert adjustment["amount_minor"] == 300
