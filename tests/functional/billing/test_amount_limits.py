"""The one line limit (``domain.pricing.MAX_LINE_MINOR``) applied wherever an amount is produced: an
invoice whose line, tax, subtotal or total would pass it is never written (the billing job fails, retried
and then reported as ``billing_run.failed``; a threshold check fails to its queue's DLQ), and a credit note
asking for more than it is refused with 400 ``amount_too_large`` (docs/billing.md, "Amounts over the line
limit")."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.domain.pricing import MAX_LINE_MINOR
from tests.functional.billing.conftest import START, World, ledger
from tests.functional.billing.credit_note_support import issue
from tests.functional.billing.helpers import day, schedule, work, worker
from tests.functional.webhooks.sources import outbox
from tests.support.api import api_event, call
from tests.support.queues import receive_batch, run_batch

VAT = {"display_name": "VAT", "percentage": "20", "inclusive": False, "country": None, "plan_code": "basic",
       "reason": "VAT"}  # fmt: skip
AT_LIMIT_CALLS = MAX_LINE_MINOR // 10  # 0.10 a call: a usage line of exactly the limit (billable)


@pytest.fixture
def api(world: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


def _post(api: Any, path: str, body: dict[str, Any], key: str, **params: str) -> tuple[int, Any]:
    event = api_event("POST", path, body=body, path_parameters=params, headers={"Idempotency-Key": key})
    status, answer = call(api, event)[:2]
    return status, answer


def test_a_window_whose_tax_takes_its_total_over_the_limit_is_not_invoiced_and_is_reported(
    world: World, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.billing_worker import app

    # GIVEN a 20% exclusive tax and a day of usage billing exactly the line limit (the line is billable)
    assert _post(api, "/admin/tax-rates", VAT, "t-1")[0] == 201
    world.subscribe("acme")
    world.usage("acme", START + day(0, 2), AT_LIMIT_CALLS)
    schedule(world, START + day(0, 1))
    work(world, START + day(0, 1), monkeypatch)
    before = ledger().balances("acme")
    # WHEN day 0 is billed, every receive of its job up to the last
    now = START + day(1, 1)
    schedule(world, now)
    handler = worker(world, now, monkeypatch)
    for _receive in range(app.MAX_RECEIVES):
        messages = receive_batch(world.billing_queue, 10)
        assert messages and run_batch(handler, world.billing_queue, messages)
    # THEN no usage invoice was written and nothing was posted (the tax would take the total past the limit)
    assert [i for i in world.invoices("acme") if i["kind"] == "usage"] == []
    assert ledger().balances("acme") == before
    # AND the operator sees the failure, naming the rule
    (failed,) = outbox("billing_run.failed")
    assert failed["data"]["error"].startswith("AmountTooLargeError: The invoice's total_minor would be")


def test_a_window_at_the_limit_without_tax_is_invoiced(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the same usage and no tax WHEN billed THEN the line and the total are exactly the limit
    world.subscribe("acme")
    world.usage("acme", START + day(0, 2), AT_LIMIT_CALLS)
    for d in range(2):
        schedule(world, START + day(d, 1))
        work(world, START + day(d, 1), monkeypatch)
    (usage,) = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert usage["total_minor"] == MAX_LINE_MINOR and outbox("billing_run.failed") == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"lines": [{"line_id": "a", "amount_minor": MAX_LINE_MINOR + 1}]}, "lines.0.amount_minor"),
        ({"credit_amount_minor": 10**30}, "credit_amount_minor"),
        ({"refund_amount_minor": MAX_LINE_MINOR + 1}, "refund_amount_minor"),
        ({"out_of_band_amount_minor": MAX_LINE_MINOR + 1}, "out_of_band_amount_minor"),
    ],
)
def test_a_credit_note_amount_over_the_limit_is_refused_and_writes_nothing(
    world: World, api: Any, body: dict[str, Any], param: str
) -> None:
    inv = issue(world, [("a", 1000, "10")])
    before = ledger().balances("acme")
    status, answer = _post(
        api, f"/admin/invoices/{inv}/credit-notes", {"reason": "over", **body}, "cn-1", invoice_id=inv
    )
    assert (status, answer["error"]["code"], answer["error"].get("param")) == (400, "amount_too_large", param)
    assert str(MAX_LINE_MINOR) in answer["error"]["message"]
    assert ledger().balances("acme") == before and outbox("credit_note.created") == []


def test_a_threshold_invoice_whose_total_would_pass_the_limit_is_not_written(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.billing_api.app import lambda_handler
    from neruba.logic.billing.document import AmountTooLargeError
    from neruba.logic.billing.threshold_invoices import evaluate_customer
    from tests.functional.billing.conftest import BASIC, make_world
    from tests.functional.billing.helpers import billing_state

    # GIVEN acme invoicing early at 500, a 20% exclusive tax, its period open, and usage billing the limit
    thr = make_world(BASIC, {"acme": {"invoice_threshold_minor": 500}})
    assert _post(lambda_handler, "/admin/tax-rates", VAT, "t-1")[0] == 201
    sub = thr.subscribe("acme")
    schedule(thr, START)
    work(thr, START, monkeypatch)
    thr.usage("acme", START + day(0, 1), AT_LIMIT_CALLS)
    before = ledger().balances("acme")
    # WHEN the threshold check runs THEN it fails (its message goes back to the queue, then to the DLQ)
    with pytest.raises(AmountTooLargeError, match="total_minor"):
        evaluate_customer(thr.ctx, "acme", START + day(0, 2))
    # AND nothing was written: no threshold invoice, no claim on the billing state, no posting
    assert [i for i in thr.invoices("acme") if i["kind"] == "threshold"] == []
    assert billing_state(thr, sub["id"]).thresholds_issued == 0
    assert ledger().balances("acme") == before


def test_a_draft_whose_re_rating_would_pass_the_limit_is_finalized_as_created_and_the_run_goes_on(
    world: World, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a 20% tax and day 0 billed with half the limit's usage (total 0.6 of the limit), a draft
    assert _post(api, "/admin/tax-rates", VAT, "t-1")[0] == 201
    world.subscribe("acme")
    world.usage("acme", START + day(0, 2), AT_LIMIT_CALLS // 2)
    for d in range(2):
        schedule(world, START + day(d, 1))
        work(world, START + day(d, 1), monkeypatch)
    (draft,) = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert draft["status"] == "draft" and draft["total_minor"] == MAX_LINE_MINOR // 2 * 12 // 10
    # WHEN late usage in its grace period would take its re-rated total past the limit, and the
    # scheduler finalizes it
    world.usage("acme", START + day(0, 3), AT_LIMIT_CALLS // 2)
    run = schedule(world, START + day(1, 1) + world.ctx.grace + day(0, 1))
    # THEN the run completes and the draft is finalized as it was created (the late usage is left to the
    # late-event look-back, which reports its own failure if it still passes the limit)
    assert run is not None
    (invoice,) = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert (invoice["status"], invoice["total_minor"]) == ("finalized", draft["total_minor"])
