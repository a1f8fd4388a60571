"""Credit notes against finalized invoices, over HTTP-shaped events: whole or by line (amount or quantity),
never more than what is still creditable after earlier credit notes, refunds and disputes; numbered
CN-; posted, audited, idempotent; the ``credit_note.created`` event; visible on the invoice and their own
routes; exactly once when the process dies before its one transaction or when two requests race."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.errors import ConflictError
from neruba.settings import get_settings
from tests.functional.billing.conftest import World, ledger
from tests.functional.billing.credit_note_support import issue, pay, refund
from tests.functional.webhooks.sources import outbox
from tests.support.api import api_event, call

REASON = {"reason": "overbilled", "ticket": "T-7"}


@pytest.fixture
def api(world: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


def credit(api: Any, invoice_id: str, body: dict[str, Any], key: str | None = "cn-1") -> tuple[int, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    path = f"/admin/invoices/{invoice_id}/credit-notes"
    event = api_event("POST", path, body={**REASON, **body}, path_parameters={"invoice_id": invoice_id},
                      headers=headers)  # fmt: skip
    status, answer = call(api, event)[:2]
    return status, answer


def get(api: Any, path: str, **params: str) -> Any:
    status, answer = call(api, api_event("GET", path, path_parameters=params))[:2]
    assert status == 200, answer
    return answer


def invoice(api: Any, invoice_id: str) -> Any:
    return get(api, f"/v1/invoices/{invoice_id}", invoice_id=invoice_id)


def balances() -> dict[str, int]:
    return dict(ledger().balances("acme").get("USD", {}))


def assert_consistent(world: World) -> None:
    """The ledger reconciles and the receivable check finds every invoice's share as it says."""
    from neruba.logic.sweeps.receivable import invoice_owed, receivable_by_invoice

    assert ledger().reconcile("acme") == []
    postings, _ = ledger().postings("acme", 1000)
    owed, _ = receivable_by_invoice(postings)
    for inv in world.ctx.invoices.of_customer("acme"):
        assert owed.get(inv.id, 0) == invoice_owed(inv), inv.id
        assert int(inv.document.get("credited_minor") or 0) <= inv.total_minor


def test_whole_unpaid_invoice_is_credited_once_numbered_posted_audited(world: World, api: Any) -> None:
    inv = issue(world, [("a", 1000, "10"), ("b", 500, "1")])
    status, note = credit(api, inv, {})
    again = credit(api, inv, {})

    assert status == 201, note
    assert again == (201, note)
    assert (note["number"], note["amount_minor"], note["pre_payment_amount_minor"]) == (
        "CN-000001",
        1500,
        1500,
    )
    assert [(line["line_id"], line["amount_minor"], line["quantity"]) for line in note["lines"]] == [
        ("a", 1000, "10"),
        ("b", 500, "1"),
    ]
    shown = invoice(api, inv)
    assert (shown["status"], shown["amount_remaining_minor"], shown["credited_minor"]) == ("paid", 0, 1500)
    assert [c["number"] for c in shown["credit_notes"]] == ["CN-000001"]
    assert balances()["receivable"] == 0 and balances()["revenue"] == 0
    assert [e["data"]["id"] for e in outbox("credit_note.created")] == [note["id"]]
    assert get(api, f"/v1/credit-notes/{note['id']}", credit_note_id=note["id"]) == note
    listed = get(api, f"/v1/invoices/{inv}/credit-notes", invoice_id=inv)
    assert [n["id"] for n in listed["data"]] == [note["id"]]
    lines = get(api, f"/v1/invoices/{inv}/explain", invoice_id=inv)["lines"]
    assert [line["credited"] for line in lines] == [
        {"amount_minor": 1000, "quantity": "10"},
        {"amount_minor": 500, "quantity": "1"},
    ]
    explained = get(api, f"/v1/credit-notes/{note['id']}/explain", credit_note_id=note["id"])
    assert [line["original"]["line_id"] for line in explained["lines"]] == ["a", "b"]
    assert sorted(
        (e["account"], e["debit_minor"], e["credit_minor"]) for e in explained["posting"]["entries"]
    ) == [
        ("receivable", 0, 1500),
        ("revenue", 1500, 0),
    ]
    from neruba.dal.audit import AuditRepository

    records, _ = AuditRepository(get_settings().ops_table).list("acme", 100)
    assert [(r["reason"], r["ticket"]) for r in records if r["action"] == "credit_note.create"] == [
        ("overbilled", "T-7")
    ]
    assert_consistent(world)


def test_by_quantity_rounds_cumulatively_and_the_last_units_take_what_is_left(world: World, api: Any) -> None:
    inv = issue(world, [("a", 1000, "3")])
    amounts = [
        credit(api, inv, {"lines": [{"line_id": "a", "quantity": "1"}]}, key=f"q{n}")[1] for n in range(3)
    ]
    assert [n["amount_minor"] for n in amounts] == [333, 334, 333]
    assert [n["number"] for n in amounts] == ["CN-000001", "CN-000002", "CN-000003"]
    status, refused = credit(api, inv, {"lines": [{"line_id": "a", "quantity": "1"}]}, key="q4")
    assert (status, refused["error"]["code"]) == (409, "credit_note_exceeds_creditable")
    assert_consistent(world)


def test_by_quantity_takes_the_cumulative_amount_so_every_unit_is_credited(world: World, api: Any) -> None:
    # 15 minor units over 10 units: one unit is 1.5; each note takes round(15 x units after / 10) less what
    # was credited before, so the notes alternate 2, 1 and the tenth unit takes the last minor unit
    inv = issue(world, [("a", 15, "10")])
    amounts = []
    for n in range(10):
        status, note = credit(api, inv, {"lines": [{"line_id": "a", "quantity": "1"}]}, key=f"u{n}")
        assert status == 201, note
        amounts.append(note["amount_minor"])
    assert amounts == [2, 1, 2, 1, 2, 1, 2, 1, 2, 1]
    status, refused = credit(api, inv, {"lines": [{"line_id": "a", "quantity": "1"}]}, key="u10")
    assert (status, refused["error"]["code"]) == (409, "credit_note_exceeds_creditable")
    assert invoice(api, inv)["credited_minor"] == 15
    assert_consistent(world)


def test_by_quantity_beside_by_amount_counts_what_the_amounts_took(world: World, api: Any) -> None:
    inv = issue(world, [("a", 15, "10")])
    assert credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 5}]}, key="m0")[0] == 201
    # one unit is worth round(1.5) = 2, less the 5 already credited: nothing left to take for it
    status, refused = credit(api, inv, {"lines": [{"line_id": "a", "quantity": "1"}]}, key="m1")
    assert (status, refused["error"]["code"], refused["error"]["param"]) == (
        400,
        "amount_not_positive",
        "lines.0.quantity",
    )
    # four units: round(6) - 5 = 1; five more: round(13.5) - 6 = 8; the last unit takes the 1 left
    taken = [
        credit(api, inv, {"lines": [{"line_id": "a", "quantity": q}]}, key=f"m{q}")[1]["amount_minor"]
        for q in ("4", "5", "1")
    ]
    assert taken == [1, 8, 1]
    assert invoice(api, inv)["credited_minor"] == 15
    assert_consistent(world)


def test_a_line_never_gives_more_than_it_has_left(world: World, api: Any) -> None:
    inv = issue(world, [("a", 1000, "10"), ("b", 500, "1")])
    assert credit(api, inv, {"lines": [{"line_id": "b", "amount_minor": 300}]}, key="k1")[0] == 201
    status, refused = credit(api, inv, {"lines": [{"line_id": "b", "amount_minor": 201}]}, key="k2")
    assert (status, refused["error"]["code"]) == (409, "credit_note_exceeds_creditable")
    status, _ = credit(api, inv, {"lines": [{"line_id": "b", "amount_minor": 200}]}, key="k3")
    assert status == 201 and invoice(api, inv)["amount_remaining_minor"] == 1000
    # the whole invoice now means what is left of it
    status, rest = credit(api, inv, {}, key="k4")
    assert (status, rest["amount_minor"]) == (201, 1000)
    assert credit(api, inv, {}, key="k5")[1]["error"]["code"] == "credit_note_exceeds_creditable"
    assert_consistent(world)


def test_a_paid_invoice_credits_to_the_customer_balance_and_refunds_then_stop(world: World, api: Any) -> None:
    inv = issue(world, [("a", 1000, "1")])
    pay(world, inv, 1000)
    status, note = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 400}]}, key="k1")
    assert status == 201, note
    assert (note["pre_payment_amount_minor"], note["credit_amount_minor"]) == (0, 400)
    assert balances()["receivable"] == -400  # a balance in the customer's favour
    # the neighbour: a refund may no longer give back the 400 credited as balance
    with pytest.raises(ConflictError) as refused:
        refund(inv, 700)
    assert getattr(refused.value, "code", None) == "refund_exceeds_refundable"
    refund(inv, 600)
    status, none_left = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 1}]}, key="k2")
    assert (status, none_left["error"]["code"]) == (409, "credit_note_exceeds_creditable")
    assert_consistent(world)


def _refund_http(body: dict[str, Any], key: str) -> tuple[int, Any]:
    from functions.ledger_api.app import lambda_handler

    event = api_event("POST", "/admin/customers/acme/refunds", body={"reason": "paid out", **body},
                      path_parameters={"customer_id": "acme"}, headers={"Idempotency-Key": key})  # fmt: skip
    status, answer = call(lambda_handler, event)[:2]
    return status, answer


def test_a_credit_balance_is_paid_out_by_a_refund_from_it_exactly_once(world: World, api: Any) -> None:
    from neruba.dal.audit import AuditRepository

    inv = issue(world, [("a", 1000, "1")])
    pay(world, inv, 1000, payment_id="ch_9")
    assert credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 400}]}, key="k1")[0] == 201
    # a plain refund still cannot take the credited 400 (it is the customer's balance) and says how to
    status, refused = _refund_http({"amount_minor": 700, "invoice_id": inv}, "p0")
    assert (status, refused["error"]["code"]) == (409, "refund_exceeds_refundable")
    assert "credit_balance" in refused["error"]["message"]
    # paying the balance out: cash leaves, the balance in the customer's favour falls by as much
    body = {"amount_minor": 300, "invoice_id": inv, "credit_balance": True}
    status, paid_out = _refund_http(body, "p1")
    assert status == 201, paid_out
    assert (paid_out["amount_minor"], paid_out["payment_id"], paid_out["credit_balance"]) == (
        300,
        "ch_9",
        True,
    )
    assert _refund_http(body, "p1") == (201, paid_out)  # the same key: the same refund, once
    status, other = _refund_http({**body, "amount_minor": 50}, "p1")
    assert (status, other["error"]["code"]) == (409, "idempotency_conflict")
    assert (balances()["receivable"], balances()["cash"]) == (-100, 700)
    stored = world.ctx.invoices.get(inv)
    assert stored is not None and stored.document["credited_balance_minor"] == 100
    # never more than the balance left
    status, too_much = _refund_http({**body, "amount_minor": 101}, "p2")
    assert (status, too_much["error"]["code"], too_much["error"]["param"]) == (
        409,
        "refund_exceeds_refundable",
        "amount_minor",
    )
    assert _refund_http({"amount_minor": 100, "payment_id": "ch_9", "credit_balance": True}, "p3")[0] == 201
    assert (balances()["receivable"], balances()["cash"]) == (0, 600)
    # the 600 still refundable of the payment is refunded as before, and then nothing is left
    assert _refund_http({"amount_minor": 600, "invoice_id": inv}, "p4")[0] == 201
    assert _refund_http({"amount_minor": 1, "invoice_id": inv, "credit_balance": True}, "p5")[0] == 409
    assert balances()["cash"] == 0
    records, _ = AuditRepository(get_settings().ops_table).list("acme", 100)
    assert [r["action"] for r in records].count("refund") == 3
    assert_consistent(world)


def test_two_payouts_from_the_same_read_cannot_both_take_the_balance(world: World, api: Any) -> None:
    from neruba import bootstrap
    from neruba.dal.ledger import LedgerConflictError
    from neruba.logic.ledger.admin import Stores, _balance_items
    from neruba.logic.ledger.postings import record_balance_payout

    inv = issue(world, [("a", 1000, "1")])
    pay(world, inv, 1000, payment_id="ch_9")
    assert credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 400}]}, key="k1")[0] == 201
    # GIVEN two payouts of 300 that both read the payment and the invoice (400 of balance) first
    ledger_repo = bootstrap.ledger()
    read = ledger_repo.payments.get("acme", "ch_9")
    assert read is not None and read.credited_minor == 400
    stores = Stores(
        ledger_repo, bootstrap.audit(), bootstrap.catalog().get_customer, bootstrap.invoices().get
    )
    items = [_balance_items(stores, read, 300) for _ in range(2)]

    def write(n: int) -> None:
        record_balance_payout(ledger_repo, customer_id="acme", currency="USD", amount_minor=300,
                              refund_id=f"re_{n}", idempotency_key=f"race:{n}", actor="t", payment=read,
                              extra_items=items[n])  # fmt: skip

    # WHEN both write, THEN the second is refused by its conditions and nothing of it is stored
    write(0)
    with pytest.raises(LedgerConflictError):
        write(1)
    assert (balances()["receivable"], balances()["cash"]) == (-100, 700)
    stored = world.ctx.invoices.get(inv)
    assert stored is not None and stored.document["credited_balance_minor"] == 100
    after = ledger_repo.payments.get("acme", "ch_9")
    assert after is not None and (after.credited_minor, after.refunded_minor) == (100, 300)
    assert_consistent(world)


def test_a_refund_naming_neither_payment_nor_invoice_names_the_field(world: World, api: Any) -> None:
    status, refused = _refund_http({"amount_minor": 1}, "p0")
    assert status == 422, refused
    assert [d["param"] for d in refused["error"]["details"]] == ["payment_id"]


def test_a_refund_first_leaves_only_the_rest_creditable(world: World, api: Any) -> None:
    inv = issue(world, [("a", 1000, "1")])
    pay(world, inv, 1000)
    refund(inv, 700)
    status, too_much = credit(api, inv, {}, key="k0")
    assert (status, too_much["amount_minor"]) == (201, 300)  # the whole invoice: what is left of it
    assert_consistent(world)


def test_the_paid_part_can_be_refunded_or_returned_out_of_band(world: World, api: Any) -> None:
    inv = issue(world, [("a", 1000, "1")])
    pay(world, inv, 600)  # partly paid: 400 still due
    body = {"refund_amount_minor": 300, "out_of_band_amount_minor": 100, "credit_amount_minor": 100}
    status, mismatch = credit(api, inv, body, key="k1")
    assert (status, mismatch["error"]["code"]) == (400, "credit_note_split_mismatch")
    status, note = credit(api, inv, {"refund_amount_minor": 300, "out_of_band_amount_minor": 300}, key="k2")
    assert status == 201, note
    assert (note["pre_payment_amount_minor"], note["refund_amount_minor"]) == (400, 300)
    assert balances()["cash"] == 0 and balances()["receivable"] == 0
    assert invoice(api, inv)["status"] == "paid"
    assert_consistent(world)


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ({}, None, (400, "idempotency_key_required")),
        ({"lines": [{"line_id": "zz", "amount_minor": 1}]}, "k", (400, "invoice_line_not_found")),
        (
            {"lines": [{"line_id": "a", "amount_minor": 1, "quantity": "1"}]},
            "k",
            (400, "credit_note_line_amount_required"),
        ),
        ({"lines": [{"line_id": "a"}]}, "k", (400, "credit_note_line_amount_required")),
        ({"lines": [{"line_id": "a", "amount_minor": 0}]}, "k", (400, "amount_not_positive")),
        ({"lines": [{"line_id": "n", "amount_minor": 1}]}, "k", (400, "line_not_creditable")),
        ({"lines": []}, "k", (400, "credit_note_lines_required")),
        (
            {"lines": [{"line_id": "b", "amount_minor": 1}, {"line_id": "b", "amount_minor": 1}]},
            "k",
            (400, "credit_note_line_repeated"),
        ),
        ({"lines": [{"line_id": "a", "amount_minor": 1001}]}, "k", (409, "credit_note_exceeds_creditable")),
        ({"refund_amount_minor": 5}, "k", (400, "credit_note_split_mismatch")),
    ],
)
def test_refused_requests_write_nothing(
    world: World, api: Any, body: dict[str, Any], key: str | None, expected: tuple[int, str]
) -> None:
    inv = issue(world, [("a", 1000, "10"), ("b", 500, "1"), ("n", -200, "1")])
    before = balances()
    status, answer = credit(api, inv, body, key=key)
    assert (status, answer["error"]["code"]) == expected
    assert balances() == before and "credit_notes" not in invoice(api, inv)
    assert outbox("credit_note.created") == []


def test_unknown_draft_and_key_reuse(world: World, api: Any) -> None:
    status, missing = credit(api, "in_" + "0" * 24, {})
    assert (status, missing["error"]["code"]) == (404, "invoice_not_found")
    inv = issue(world, [("a", 1000, "1")])
    credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 10}]}, key="same")
    status, conflict = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 11}]}, key="same")
    assert (status, conflict["error"]["code"]) == (409, "idempotency_conflict")


def test_a_draft_is_not_credited(world: World, api: Any) -> None:
    from neruba.dal.transaction import Transaction, commit
    from neruba.logic.billing.document import invoice_document
    from tests.functional.billing.credit_note_support import NOW

    doc = invoice_document(
        invoice_id="in_" + "1" * 24, customer_id="acme", subscription_id=None, currency="USD", kind="one_off",
        seq=0, details={}, period=("t", "t"), lines=[], applications=[], created_at="t", finalize_at="t",
    )  # fmt: skip
    commit(Transaction([world.ctx.invoices.put_item(doc, NOW)]))
    status, refused = credit(api, doc["id"], {})
    assert (status, refused["error"]["code"]) == (409, "invoice_not_finalized")


# ---------------------------------------------------------------- faults


def test_killed_before_the_transaction_writes_nothing_and_the_retry_issues_one(
    world: World, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.billing import credit_notes

    inv = issue(world, [("a", 1000, "1")])
    before = balances()
    real = credit_notes.commit

    def killed(unit: Any) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(credit_notes, "commit", killed)
    with pytest.raises(SystemExit):
        credit_notes.create_credit_note(world.ctx, inv, _body({}), "key:t", "k1")
    assert balances() == before and "credit_notes" not in invoice(api, inv)
    assert credit_notes.repository(world.ctx).sequence_value() == 0
    monkeypatch.setattr(credit_notes, "commit", real)
    status, note = credit(api, inv, {}, key="k1")
    assert (status, note["number"]) == (201, "CN-000001")
    assert len(outbox("credit_note.created")) == 1
    assert_consistent(world)


def _body(extra: dict[str, Any]) -> Any:
    from neruba.models.billing import CreditNoteCreate

    return CreditNoteCreate.model_validate({**REASON, **extra})


def _race(monkeypatch: pytest.MonkeyPatch, world: World, inv: str, first: Any, second: Any) -> list[Any]:
    """``first`` reads, then ``second`` runs whole and commits, then ``first`` commits (and is cancelled)."""
    from neruba.logic.billing import credit_notes

    real = credit_notes.commit
    results: list[Any] = []
    fired = []

    def interleaved(unit: Any) -> None:
        if not fired:
            fired.append(True)
            try:
                results.append(credit_notes.create_credit_note(world.ctx, inv, second[0], "key:b", second[1]))
            except Exception as exc:  # the second request's answer
                results.append(exc)
        real(unit)

    monkeypatch.setattr(credit_notes, "commit", interleaved)
    try:
        results.insert(0, credit_notes.create_credit_note(world.ctx, inv, first[0], "key:a", first[1]))
    except Exception as exc:
        results.insert(0, exc)
    return results


def test_two_keys_racing_for_the_last_creditable_amount_never_over_credit(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = issue(world, [("a", 1000, "1")])
    body = _body({"lines": [{"line_id": "a", "amount_minor": 700}]})
    first, second = _race(monkeypatch, world, inv, (body, "k1"), (body, "k2"))
    assert second["amount_minor"] == 700
    assert getattr(first, "code", None) == "credit_note_exceeds_creditable"
    stored = world.ctx.invoices.get(inv)
    assert stored is not None and stored.document["credited_minor"] == 700
    assert len(outbox("credit_note.created")) == 1
    assert_consistent(world)


def test_the_same_key_twice_at_once_issues_one(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = issue(world, [("a", 1000, "1")])
    body = _body({"lines": [{"line_id": "a", "amount_minor": 700}]})
    first, second = _race(monkeypatch, world, inv, (body, "k1"), (body, "k1"))
    assert first == second and first["number"] == "CN-000001"
    assert len(outbox("credit_note.created")) == 1
    assert_consistent(world)


def test_a_refund_racing_a_credit_note_for_the_paid_amount_never_takes_back_more(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.billing import credit_notes

    inv = issue(world, [("a", 1000, "1")])
    pay(world, inv, 1000)
    real = credit_notes.commit
    fired = []

    def refund_first(unit: Any) -> None:
        if not fired:
            fired.append(refund(inv, 800))
        real(unit)

    monkeypatch.setattr(credit_notes, "commit", refund_first)
    body = _body({"lines": [{"line_id": "a", "amount_minor": 500}]})
    with pytest.raises(ConflictError) as refused:
        credit_notes.create_credit_note(world.ctx, inv, body, "key:a", "k1")
    assert getattr(refused.value, "code", None) == "credit_note_exceeds_creditable"
    assert_consistent(world)


def test_killed_before_the_sync_message_the_billing_sweep_sends_it_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from neruba import bootstrap
    from neruba.dal import queue
    from neruba.logic.billing import credit_notes
    from neruba.logic.sweeps.runner import run_sweep
    from tests.functional.billing.helpers import queued

    inv = issue(world, [("a", 1000, "1")])
    real = queue.send_batch

    def killed(*args: Any, **kwargs: Any) -> list[str]:
        raise SystemExit("killed after the commit")

    monkeypatch.setattr(queue, "send_batch", killed)
    with pytest.raises(SystemExit):
        credit_notes.create_credit_note(world.ctx, inv, _body({}), "key:t", "k1")
    monkeypatch.setattr(queue, "send_batch", real)
    note = outbox("credit_note.created")[0]["data"]
    assert [m for m in queued(world.sync_queue) if "credit_note_id" in m] == []

    def sweep(at: datetime) -> dict[str, Any]:
        report = run_sweep(bootstrap.ops(), ["billing"], at - timedelta(hours=1), at, trigger="test",
                           actor="t", billing=lambda: world.ctx, now=at)  # fmt: skip
        (check,) = report["checks"]
        return dict(check)

    later = datetime.now(UTC) + timedelta(minutes=20)
    first, second = sweep(later), sweep(later + timedelta(minutes=5))
    assert [(r["kind"], r["credit_note_id"]) for r in first["repairs"] if "credit_note_id" in r] == [
        ("credit_note_sync_sent", note["id"])
    ]
    assert [r for r in second["repairs"] if "credit_note_id" in r] == []
    assert [m["credit_note_id"] for m in queued(world.sync_queue) if "credit_note_id" in m] == [note["id"]]


def test_a_top_up_invoice_is_not_credited(world: World, api: Any) -> None:
    from neruba.dal.transaction import Transaction, commit
    from neruba.logic.billing.corrections import issue_now
    from neruba.logic.billing.document import invoice_document
    from tests.functional.billing.credit_note_support import NOW

    line = {"line_id": "topup", "kind": "topup", "quantity": "1", "amount_minor": 500}
    doc = invoice_document(
        invoice_id="in_" + "2" * 24, customer_id="acme", subscription_id=None, currency="USD", kind="topup",
        seq=0, details={}, period=("t", "t"), lines=[line], applications=[], created_at="t", finalize_at="t",
    )  # fmt: skip
    commit(Transaction([world.ctx.invoices.put_item(doc, NOW)]))
    issue_now(world.ctx, doc["id"], NOW)
    status, refused = credit(api, doc["id"], {})
    assert (status, refused["error"]["code"]) == (409, "invoice_not_creditable")


def test_a_dispute_after_a_credit_note_holds_only_what_is_left(world: World, api: Any) -> None:
    from neruba import bootstrap
    from neruba.logic.ledger.admin import Operator, Stores, open_dispute
    from neruba.models.ledger import DisputeCreate

    inv = issue(world, [("a", 1000, "1")])
    pay(world, inv, 1000)
    assert credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 800}]}, key="k1")[0] == 201
    stores = Stores(
        bootstrap.ledger(), bootstrap.audit(), bootstrap.catalog().get_customer, bootstrap.invoices().get
    )

    def dispute(amount: int, key: str) -> Any:
        body = DisputeCreate(amount_minor=amount, invoice_id=inv, reason="chargeback")
        return open_dispute(stores, Operator("key:t", None, key), "acme", body)

    with pytest.raises(ConflictError) as refused:
        dispute(300, "d1")
    assert refused.value.code == "dispute_exceeds_refundable"
    dispute(200, "d2")
    status, none_left = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 1}]}, key="k2")
    assert (status, none_left["error"]["code"]) == (409, "credit_note_exceeds_creditable")
    assert_consistent(world)


def test_a_taxed_invoice_is_voided_with_its_tax_and_the_replacement_taxed_again(
    world: World, api: Any
) -> None:
    from neruba.logic.billing.void import void_invoice
    from neruba.models.billing import InvoiceVoid
    from tests.functional.billing.credit_note_support import rate

    rates = [rate("txr_vat", "20"), rate("txr_inc", "10", inclusive=True)]
    inv = issue(world, [("a", 1100, "1")], name="taxed", rates=rates)
    # 1100 contains 100 (10% inclusive), 20% of the 1000 net is 200 on top
    assert (invoice(api, inv)["tax_included_minor"], invoice(api, inv)["tax_minor"]) == (100, 200)
    assert balances()["tax_payable"] == -300
    done = void_invoice(world.ctx, inv, InvoiceVoid(reason="wrong"), "key:t", "v1")
    replacement = done["replacement"]
    assert (replacement["total_minor"], replacement["tax_minor"], replacement["tax_included_minor"]) == (
        1300,
        200,
        100,
    )
    assert replacement["lines"][0]["tax"] == invoice(api, inv)["lines"][0]["tax"]
    assert (balances()["tax_payable"], balances()["receivable"], balances()["revenue"]) == (-300, 1300, -1000)
    assert_consistent(world)
