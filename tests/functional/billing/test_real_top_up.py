"""Auto top-up with the REAL pricing engine, ledger and worker: a window that takes credit under the
customer's threshold creates one top-up invoice and one receivable-funded purchased grant, idempotently
by the top-up request id, and the invoice is finalized and synced like every other."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from neruba.logic.ledger.credits import create_grant
from tests.functional.billing.conftest import START, World, assert_books_agree, ledger, subscribe_real
from tests.functional.billing.helpers import Killed, day, queued, schedule, work, worker
from tests.support.queues import receive_batch, run_batch


@pytest.fixture
def top_up_world(real: World) -> World:
    """acme: a rule (under 1000 available, top up 5000), a purchased grant of 1500, a subscription."""
    from neruba.dal.top_ups import TopUpRepository
    from neruba.domain.credits import AutoTopUpRule

    rules = TopUpRepository(ledger().table_name)
    boto3.client("dynamodb").transact_write_items(
        TransactItems=[rules.rule_item(AutoTopUpRule("acme", "USD", 1000, 5000))]
    )
    create_grant(
        ledger(),
        customer_id="acme",
        kind="purchased",
        amount_minor=1500,
        currency="USD",
        idempotency_key="prepaid",
        actor="test",
        at=START - day(1),
    )
    subscribe_real(real, "acme")
    return real


def _top_ups(world: World) -> list[dict[str, Any]]:
    return [i for i in world.invoices("acme") if i["kind"] == "topup"]


def _purchased() -> list[Any]:
    repo = ledger()
    found, _ = repo.postings("acme", 100)
    mine = (p for p in found if p.source == "grant" and (p.metadata or {}).get("top_up_request_id"))
    return sorted(mine, key=lambda p: p.at)


def _bill(world: World, at: Any, monkeypatch: Any) -> list[dict[str, Any]]:
    """Schedule and work; returns the job bodies the worker processed (to replay them)."""
    schedule(world, at)
    jobs = queued(world.billing_queue)
    work(world, at, monkeypatch)
    return jobs


def _replay(world: World, jobs: list[dict[str, Any]], at: Any, monkeypatch: Any) -> None:
    """Deliver the same job messages again (an SQS redelivery) and work them."""
    import json

    sqs = boto3.client("sqs")
    for body in jobs:
        sqs.send_message(QueueUrl=world.billing_queue, MessageBody=json.dumps(body))
    work(world, at, monkeypatch)


def test_a_window_under_the_threshold_creates_one_top_up(top_up_world: World, monkeypatch: Any) -> None:
    # GIVEN 8 calls (800) on day 0: credit 1500 -> 700, under the threshold of 1000
    from neruba.logic.ledger.reads import balance

    world = top_up_world
    world.usage("acme", START + day(0, 4), 8)

    # WHEN day 0 is billed, then the same jobs are delivered again
    jobs = _bill(world, START + day(1, 1), monkeypatch)
    _replay(world, jobs, START + day(1, 1), monkeypatch)

    # THEN the window used 800 of credit and one top-up invoice of 5000 exists (a draft, one line of
    # kind "topup")
    usage = next(i for i in world.invoices("acme") if i["kind"] == "usage")
    assert (usage["subtotal_minor"], usage["credits_applied_minor"], usage["total_minor"]) == (800, 800, 0)
    (top_up,) = _top_ups(world)
    assert (top_up["status"], top_up["subtotal_minor"], top_up["total_minor"]) == ("draft", 5000, 5000)
    assert [(line["kind"], line["amount_minor"]) for line in top_up["lines"]] == [("topup", 5000)]
    # AND one purchased grant of 5000 funded by receivable, named by the invoice
    (posting,) = _purchased()
    grant = ledger().grant(top_up["grant_id"])
    assert (grant.kind, grant.amount_minor, grant.remaining_minor) == ("purchased", 5000, 5000)
    assert posting.metadata["funding"] == "receivable"
    assert posting.metadata["invoice_id"] == top_up["id"]
    assert [(e.account, e.debit_minor, e.credit_minor) for e in posting.entries] == [
        ("receivable", 5000, 0),
        ("prepaid_credit", 0, 5000),
    ]
    # AND the books agree: amount due is the top-up, credit available 700 + 5000
    assert_books_agree(world, "acme")
    view = balance("acme")
    assert (view["amount_due_minor"], view["credit_available_minor"]) == (5000, 5700)


def test_next_windows_top_up_again_only_after_a_new_crossing(top_up_world: World, monkeypatch: Any) -> None:
    # GIVEN day 0 billed (800 -> 700 left, topped up to 5700)
    world = top_up_world
    world.usage("acme", START + day(0, 4), 8)
    _bill(world, START + day(1, 1), monkeypatch)
    assert len(_top_ups(world)) == 1

    # WHEN day 1 uses 2000 (3700 left, still over the threshold)
    world.usage("acme", START + day(1, 4), 20)
    _bill(world, START + day(2, 1), monkeypatch)

    # THEN no second top-up
    assert len(_top_ups(world)) == 1

    # WHEN day 2 uses 3000 (700 left: a new crossing)
    world.usage("acme", START + day(2, 4), 30)
    _bill(world, START + day(3, 1), monkeypatch)

    # THEN a second top-up, for a new request, with its own grant
    first, second = _top_ups(world)
    assert first["top_up_request_id"] != second["top_up_request_id"]
    assert [p.total_minor for p in _purchased()] == [5000, 5000]
    assert ledger().grant(second["grant_id"]).remaining_minor == 5000
    assert_books_agree(world, "acme")


def test_a_failed_top_up_is_retried_from_its_request(top_up_world: World, monkeypatch: Any) -> None:
    # GIVEN the worker killed right after day 0's transaction, before its top-up is written
    from neruba.logic.billing import top_up as billing_top_up

    world = top_up_world
    world.usage("acme", START + day(0, 4), 8)
    real_create = billing_top_up.create_top_up

    def killed(*args: Any, **kwargs: Any) -> str:
        raise Killed

    monkeypatch.setattr(billing_top_up, "create_top_up", killed)
    schedule(world, START + day(1, 1))
    jobs = queued(world.billing_queue)
    handler = worker(world, START + day(1, 1), monkeypatch)
    assert run_batch(handler, world.billing_queue, receive_batch(world.billing_queue, 10))

    # THEN the window is billed, no top-up yet
    assert [i["kind"] for i in world.invoices("acme")] == ["opening", "usage"]
    assert _purchased() == []

    # WHEN SQS delivers the job again while the top-up fails (an ordinary error), and the next window
    # uses 300 more (400 left) while it still fails
    def failing(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("throttled")

    monkeypatch.setattr(billing_top_up, "create_top_up", failing)
    work(world, START + day(1, 1), monkeypatch)
    world.usage("acme", START + day(1, 4), 3)
    _bill(world, START + day(2, 1), monkeypatch)

    # THEN every window is billed anyway (the top-up is a follow-up), the jobs are done, still no top-up
    assert [i["kind"] for i in world.invoices("acme")] == ["opening", "usage", "usage"]
    assert queued(world.billing_queue) == []
    assert _purchased() == []
    assert_books_agree(world, "acme")

    # WHEN the top-up can be written again and the first job is delivered once more
    monkeypatch.setattr(billing_top_up, "create_top_up", real_create)
    _replay(world, jobs, START + day(2, 2), monkeypatch)
    _replay(world, jobs, START + day(2, 2), monkeypatch)

    # THEN exactly one top-up: the first crossing's request, not a new one
    (top_up,) = _top_ups(world)
    (posting,) = _purchased()
    assert posting.total_minor == 5000 and top_up["total_minor"] == 5000
    view_credit = sum(g.remaining_minor for g in ledger().grants("acme", "USD", START + day(2, 2)))
    assert view_credit == 400 + 5000
    assert_books_agree(world, "acme")


def test_the_top_up_is_finalized_with_the_next_number_and_synced(
    top_up_world: World, monkeypatch: Any
) -> None:
    # GIVEN day 0 billed with a top-up
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.models.billing import RerunRequest

    world = top_up_world
    world.usage("acme", START + day(0, 4), 8)
    _bill(world, START + day(1, 1), monkeypatch)

    # WHEN the scheduler runs after the grace period
    schedule(world, START + day(1, 3))

    # THEN the top-up is numbered right after the window's invoices, and sent to Stripe sync
    numbers = [(i["kind"], i["status"], i["number"]) for i in world.invoices("acme")]
    assert numbers == [
        ("opening", "finalized", "INV-000001"),
        ("usage", "finalized", "INV-000002"),
        ("topup", "finalized", "INV-000003"),
    ]
    (top_up,) = _top_ups(world)
    assert {"invoice_id": top_up["id"]} in queued(world.sync_queue)
    assert world.ctx.invoices.sequence_value() == 3
    # AND a finalized top-up has no usage to recompute
    from neruba.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError) as raised:
        rerun_invoice(world.ctx, top_up["id"], RerunRequest(reason="check"), "key:ops", "rr-1")
    assert raised.value.code == "invoice_not_rated"
    assert_books_agree(world, "acme")


@pytest.mark.parametrize("repair", ["function", "sweep"])
def test_complete_top_ups_writes_a_request_left_behind(
    top_up_world: World, monkeypatch: Any, repair: str
) -> None:
    # GIVEN a top-up that failed, then credit granted back over the threshold by an operator (the next
    # check re-arms the rule, so it would never return that request again)
    from neruba.logic.billing import top_up as billing_top_up
    from neruba.logic.billing.top_up import complete_top_ups

    world = top_up_world
    world.usage("acme", START + day(0, 4), 8)

    def failing(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("throttled")

    real_create = billing_top_up.create_top_up
    monkeypatch.setattr(billing_top_up, "create_top_up", failing)
    _bill(world, START + day(1, 1), monkeypatch)
    monkeypatch.setattr(billing_top_up, "create_top_up", real_create)
    create_grant(
        ledger(),
        customer_id="acme",
        kind="promotional",
        amount_minor=2000,
        currency="USD",
        idempotency_key="goodwill",
        actor="test",
        at=START + day(1, 2),
    )
    assert billing_top_up.auto_top_up(world.ctx, ledger(), "acme", "USD", START + day(1, 2)) is None
    assert _top_ups(world) == []

    # WHEN the repair runs (twice): directly, or as part of the billing sweep check
    if repair == "function":
        first = complete_top_ups(world.ctx, ledger(), "acme", START + day(1, 3))
        again = complete_top_ups(world.ctx, ledger(), "acme", START + day(1, 3))
    else:
        from neruba.logic.sweeps import billing as sweep_billing
        from neruba.logic.sweeps.runner import SweepContext
        from neruba.settings import get_settings

        at = START + day(1, 3)
        sweep = SweepContext(start=at, end=at, now=at, settings=get_settings(), billing=lambda: world.ctx)
        runs = [sweep_billing.billing_check(sweep) for _ in range(2)]
        first, again = (
            [r["invoice_id"] for r in run.repairs if r["kind"] == "top_up_written"] for run in runs
        )

    # THEN the left-behind request has its invoice and grant, once
    (top_up,) = _top_ups(world)
    assert (first, again) == ([top_up["id"]], [])
    assert [p.total_minor for p in _purchased()] == [5000]
    assert_books_agree(world, "acme")
