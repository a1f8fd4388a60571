"""One-off charges through the billing API: invoiced at once (numbered, posted, queued for Stripe sync,
``invoice.created`` and ``invoice.finalized`` in the outbox) or carried once by the next window invoice;
listed and voided; idempotent and audited; refused with a code when the input breaks a rule; and exactly
once when the worker dies before the transaction that picks the charge up."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.settings import get_settings
from tests.functional.billing.conftest import START, World, assert_books_agree, invoice_postings
from tests.functional.billing.helpers import Killed, day, queued, schedule, work, worker
from tests.functional.webhooks.sources import outbox
from tests.support.api import api_event, call
from tests.support.queues import receive_batch, run_batch

PATH = "/admin/customers/{customer_id}/one-off-charges"
FEE = {"description": "Setup fee", "amount_minor": 25000, "currency": "USD", "reason": "onboarding"}


@pytest.fixture
def api(world: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


def _create(api: Any, body: dict[str, Any], key: str | None = "k-1", customer: str = "acme") -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    event = api_event(
        "POST",
        PATH.format(customer_id=customer),
        body=body,
        path_parameters={"customer_id": customer},
        headers=headers,
    )
    return call(api, event)[:2]


def _list(api: Any, customer: str = "acme") -> Any:
    path = PATH.format(customer_id=customer)
    return call(api, api_event("GET", path, path_parameters={"customer_id": customer}))[:2]


def _void(api: Any, charge_id: str, key: str = "v-1") -> Any:
    path = PATH.format(customer_id="acme") + f"/{charge_id}/void"
    event = api_event(
        "POST",
        path,
        body={"reason": "waived", "ticket": "T-9"},
        path_parameters={"customer_id": "acme", "charge_id": charge_id},
        headers={"Idempotency-Key": key},
    )
    return call(api, event)[:2]


def _audits(action: str) -> list[dict[str, Any]]:
    from neruba.dal.audit import AuditRepository

    records, _ = AuditRepository(get_settings().ops_table).list("acme", 100)
    return [r for r in records if r["action"] == action]


def test_invoice_now_issues_a_numbered_posted_synced_invoice_once(world: World, api: Any) -> None:
    # WHEN a setup fee is invoiced now, then the same request is sent again
    body = {**FEE, "mode": "invoice_now", "metadata": {"order": "o-1"}, "ticket": "T-1"}
    status, charge = _create(api, body)
    again = _create(api, body)

    # THEN one charge, invoiced on a finalized, numbered invoice of kind one_off with one one_off line
    assert status == 201, charge
    assert again == (201, charge)
    assert charge["status"] == "invoiced" and charge["amount_minor"] == 25000
    invoices = world.invoices("acme")
    assert [i["id"] for i in invoices] == [charge["invoice_id"]]
    invoice = invoices[0]
    assert (invoice["kind"], invoice["status"], invoice["total_minor"]) == ("one_off", "finalized", 25000)
    assert invoice["number"] and invoice["credits_applied_minor"] == 0
    assert [(line["kind"], line["amount_minor"], line["description"]) for line in invoice["lines"]] == [
        ("one_off", 25000, "Setup fee")
    ]
    # posted once, queued once for Stripe sync, audited once, both webhook events once
    assert len(invoice_postings("acme")) == 1
    assert_books_agree(world, "acme")
    assert [m["invoice_id"] for m in queued(world.sync_queue)] == [invoice["id"]]
    assert len(_audits("one_off_charge.create")) == 1
    assert [e["data"]["id"] for e in outbox("invoice.created")] == [invoice["id"]]
    assert [e["data"]["id"] for e in outbox("invoice.finalized")] == [invoice["id"]]


def test_the_same_key_with_another_body_is_a_conflict(world: World, api: Any) -> None:
    _create(api, {**FEE, "mode": "invoice_now"})
    status, body = _create(api, {**FEE, "mode": "invoice_now", "amount_minor": 1})
    assert (status, body["error"]["code"]) == (409, "idempotency_conflict")
    assert len(world.invoices("acme")) == 1


def test_quantity_times_unit_price_is_rounded_once_half_up(world: World, api: Any) -> None:
    # 3 hours at 33.335 = 100.005 -> 10001 cents (half-up)
    body = {**FEE, "mode": "invoice_now", "quantity": "3", "unit_price": "33.335"}
    body.pop("amount_minor")
    status, charge = _create(api, body)
    assert status == 201 and charge["amount_minor"] == 10001
    assert (charge["quantity"], charge["unit_price"]) == ("3", "33.335")


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ({}, None, (400, "idempotency_key_required")),
        ({"currency": "EUR"}, "k", (400, "currency_mismatch")),
        ({"amount_minor": 0}, "k", (400, "amount_not_positive")),
        ({"amount_minor": -5}, "k", (400, "amount_not_positive")),
        ({"amount_minor": 10**20}, "k", (400, "amount_too_large")),
        ({"quantity": "2", "unit_price": "1"}, "k", (400, "one_off_amount_required")),
        ({"amount_minor": None}, "k", (400, "one_off_amount_required")),
        ({"description": "x" * 501}, "k", (400, "description_too_long")),
        ({"description": "   "}, "k", (400, "description_required")),
        ({"mode": "next_invoice"}, "k", (400, "no_active_subscription")),
    ],
)
def test_bad_charges_are_refused_with_a_code_and_write_nothing(
    world: World, api: Any, change: dict[str, Any], key: str | None, expected: tuple[int, str]
) -> None:
    body = {**FEE, "mode": "invoice_now", **change}
    status, answer = _create(api, {k: v for k, v in body.items() if v is not None}, key=key)
    assert (status, answer["error"]["code"]) == expected
    assert world.invoices("acme") == [] and _list(api)[1]["data"] == []


@pytest.mark.parametrize("currency", ["usd", "Usd", "USD"])
def test_the_currency_is_taken_in_any_case_and_stored_upper_case(
    world: World, api: Any, currency: str
) -> None:
    status, charge = _create(api, {**FEE, "mode": "invoice_now", "currency": currency})
    assert (status, charge["currency"]) == (201, "USD"), charge
    [invoice] = world.invoices("acme")
    assert invoice["currency"] == "USD" and invoice["total_minor"] == 25000


@pytest.mark.parametrize("currency", ["XYZ", "us1"])
def test_an_unknown_currency_is_refused_as_every_currency_field_refuses_it(
    world: World, api: Any, currency: str
) -> None:
    status, answer = _create(api, {**FEE, "mode": "invoice_now", "currency": currency})
    [detail] = answer["error"]["details"]
    assert (status, answer["error"]["code"], detail["param"]) == (422, "validation_error", "currency")
    assert world.invoices("acme") == [] and _list(api)[1]["data"] == []


def test_an_unknown_customer_is_404(world: World, api: Any) -> None:
    status, answer = _create(api, {**FEE, "mode": "invoice_now"}, customer="nobody")
    assert (status, answer["error"]["code"]) == (404, "customer_not_found")
    status, answer = _list(api, customer="nobody")
    assert (status, answer["error"]["code"]) == (404, "customer_not_found")


def _bill_day_zero(world: World, monkeypatch: Any) -> None:
    world.usage("acme", START + day(0, 2), 3)
    schedule(world, START + day(1, 1))
    work(world, START + day(1, 1), monkeypatch)


def test_next_invoice_is_carried_once_by_the_next_window_invoice(
    world: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN acme subscribed, its opening billed, and a pending charge
    world.subscribe("acme")
    schedule(world, START)
    work(world, START, monkeypatch)
    status, charge = _create(api, {**FEE, "mode": "next_invoice"})
    assert status == 201 and charge["status"] == "pending" and charge["invoice_id"] is None

    # WHEN day 0 is billed, then billed again (a redelivered job), then day 1
    _bill_day_zero(world, monkeypatch)
    _bill_day_zero(world, monkeypatch)
    schedule(world, START + day(2, 1))
    work(world, START + day(2, 1), monkeypatch)
    assert len([i for i in world.invoices("acme") if i["kind"] == "usage"]) == 2

    # THEN the usage invoice carries the charge as its own line, once; later invoices do not
    carrying = [i for i in world.invoices("acme") if any(ln["kind"] == "one_off" for ln in i["lines"])]
    assert len(carrying) == 1 and carrying[0]["kind"] == "usage"
    line = next(ln for ln in carrying[0]["lines"] if ln["kind"] == "one_off")
    assert line["amount_minor"] == 25000 and carrying[0]["subtotal_minor"] == 25000 + 30
    [listed] = _list(api)[1]["data"]
    assert (listed["status"], listed["invoice_id"]) == ("invoiced", carrying[0]["id"])
    assert_books_agree(world, "acme")

    # explain shows it with its charge and reason
    from functions.billing_api.app import lambda_handler

    path = f"/v1/invoices/{carrying[0]['id']}/explain"
    status, explained, _ = call(
        lambda_handler, api_event("GET", path, path_parameters={"invoice_id": carrying[0]["id"]})
    )
    [shown] = [ln for ln in explained["lines"] if ln["kind"] == "one_off"]
    assert shown["one_off"]["one_off_charge_id"] == charge["id"] and shown["amount_minor"] == 25000
    assert (shown["one_off"]["reason"], shown["references"]) == ("onboarding", None)

    # a void after invoicing is refused, pointing to a credit note
    status, answer = _void(api, charge["id"])
    assert (status, answer["error"]["code"]) == (409, "one_off_charge_invoiced")
    assert "credit note" in answer["error"]["message"]


def test_a_worker_killed_before_its_commit_neither_loses_nor_doubles_the_charge(
    world: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN a pending charge and a worker that dies at the commit of day 0's transaction
    from neruba.dal import transaction
    from neruba.logic.billing import worker as billing_worker

    world.subscribe("acme")
    schedule(world, START)
    work(world, START, monkeypatch)
    _, charge = _create(api, {**FEE, "mode": "next_invoice"})
    world.usage("acme", START + day(0, 2), 3)
    schedule(world, START + day(1, 1))
    killed = [0]

    def dying(unit: Any) -> None:
        if any("OOC#" in str(a) for a in unit):  # the transaction that picks the charge up
            killed[0] += 1
            raise Killed
        transaction.commit(unit)

    monkeypatch.setattr(billing_worker, "commit", dying)
    handler = worker(world, START + day(1, 1), monkeypatch)
    assert run_batch(handler, world.billing_queue, receive_batch(world.billing_queue, 10))  # failed

    # THEN nothing of it was written: the charge is still pending, no usage invoice
    assert killed == [1]
    assert [c["status"] for c in _list(api)[1]["data"]] == ["pending"]
    assert [i["kind"] for i in world.invoices("acme")] == ["opening"]

    # WHEN the job is delivered again to a healthy worker (twice)
    monkeypatch.setattr(billing_worker, "commit", transaction.commit)
    schedule(world, START + day(1, 3))
    work(world, START + day(1, 3), monkeypatch)
    work(world, START + day(1, 3), monkeypatch)

    # THEN exactly one invoice carries it
    lines = [ln for i in world.invoices("acme") for ln in i["lines"] if ln["kind"] == "one_off"]
    assert [ln["source"]["one_off_charge_id"] for ln in lines] == [charge["id"]]
    [carrying] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert [(c["status"], c["invoice_id"]) for c in _list(api)[1]["data"]] == [("invoiced", carrying["id"])]
    assert_books_agree(world, "acme")


def test_void_a_pending_charge_then_no_invoice_carries_it(world: World, api: Any, monkeypatch: Any) -> None:
    world.subscribe("acme")
    _, charge = _create(api, {**FEE, "mode": "next_invoice"})

    status, voided = _void(api, charge["id"])
    again = _void(api, charge["id"])
    other_key = _void(api, charge["id"], key="v-2")

    assert status == 200 and voided["status"] == "void" and again == (200, voided)
    assert (other_key[0], other_key[1]["error"]["code"]) == (409, "one_off_charge_void")
    assert len(_audits("one_off_charge.void")) == 1
    schedule(world, START)
    work(world, START, monkeypatch)
    _bill_day_zero(world, monkeypatch)
    assert not [ln for i in world.invoices("acme") for ln in i["lines"] if ln["kind"] == "one_off"]
    status, missing = _void(api, "ooc_" + "0" * 24, key="v-3")
    assert (status, missing["error"]["code"]) == (404, "one_off_charge_not_found")


def test_a_later_rating_of_the_carrying_invoice_leaves_the_charge_alone(
    world: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN day 0's invoice carried a charge and was finalized
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.models.billing import RerunRequest

    world.subscribe("acme")
    schedule(world, START)
    work(world, START, monkeypatch)
    _create(api, {**FEE, "mode": "next_invoice"})
    _bill_day_zero(world, monkeypatch)
    schedule(world, START + day(1, 3))  # past the grace: finalized
    [usage] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert usage["status"] == "finalized" and usage["subtotal_minor"] == 25030

    # WHEN it is rerun, and day 1 is billed (re-rating day 0 for late events)
    rerun = rerun_invoice(world.ctx, usage["id"], RerunRequest(reason="check"), "test", now=START + day(1, 4))
    schedule(world, START + day(2, 1))
    work(world, START + day(2, 1), monkeypatch)

    # THEN nothing takes the charge back
    assert rerun["action"] == "unchanged"
    day_one = [i for i in world.invoices("acme") if i["kind"] == "usage" and i["id"] != usage["id"]]
    assert [ln["kind"] for i in day_one for ln in i["lines"] if ln["kind"] == "adjustment"] == []
    assert_books_agree(world, "acme")


def test_a_one_off_invoice_has_nothing_to_rerun(world: World, api: Any) -> None:
    from neruba.errors import InvalidRequestError
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.models.billing import RerunRequest

    _, charge = _create(api, {**FEE, "mode": "invoice_now"})
    with pytest.raises(InvalidRequestError) as refused:
        rerun_invoice(world.ctx, charge["invoice_id"], RerunRequest(reason="check"), "test")
    assert refused.value.code == "invoice_not_rated" and "one-off" in str(refused.value)


def _void_invoice(api: Any, invoice_id: str, regenerate: str) -> Any:
    event = api_event(
        "POST",
        f"/admin/invoices/{invoice_id}/void",
        body={"reason": "wrong po number", "regenerate": regenerate},
        path_parameters={"invoice_id": invoice_id},
        headers={"Idempotency-Key": f"void-{invoice_id}"},
    )
    return call(api, event)[:2]


@pytest.mark.parametrize(
    ("mode", "regenerate"),
    [("invoice_now", "same_lines"), ("next_invoice", "same_lines"), ("next_invoice", "recompute")],
)
def test_a_charge_follows_its_invoice_to_the_replacement_when_it_is_voided(
    world: World, api: Any, monkeypatch: Any, mode: str, regenerate: str
) -> None:
    # GIVEN a charge invoiced: on its own invoice, or carried by day 0's usage invoice
    world.subscribe("acme")
    schedule(world, START)
    work(world, START, monkeypatch)
    status, charge = _create(api, {**FEE, "mode": mode})
    assert status == 201, charge
    if mode == "next_invoice":
        _bill_day_zero(world, monkeypatch)
        schedule(world, START + day(1, 3))  # its grace period over: finalized
    [listed] = _list(api)[1]["data"]
    carrying = str(listed["invoice_id"])

    # WHEN that invoice is voided and regenerated
    status, voided = _void_invoice(api, carrying, regenerate)
    assert status == 200, voided
    replacement = voided["replacement"]
    assert [ln["line_id"] for ln in replacement["lines"] if ln["kind"] == "one_off"] == [
        f"one_off:{charge['id']}"
    ]

    # THEN the charge names the replacement (the invoice that bills it now), and so does the refusal of
    # its void, which points to a credit note against that invoice
    [listed] = _list(api)[1]["data"]
    assert (listed["status"], listed["invoice_id"]) == ("invoiced", replacement["id"])
    status, answer = _void(api, charge["id"])
    assert (status, answer["error"]["code"]) == (409, "one_off_charge_invoiced")
    assert replacement["id"] in answer["error"]["message"] and carrying not in answer["error"]["message"]
    # AND the books owe the charge once, by the replacement
    books = world.ctx.ledger.balances("acme")["USD"]
    assert books["receivable"] == replacement["total_minor"] and world.ctx.ledger.reconcile("acme") == []
