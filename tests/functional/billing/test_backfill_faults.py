"""A backfill's commit under faults: killed between its steps or inside one, sent twice, two at once,
its events also arriving live (a redelivery). Each ends with every event counted once and every
difference billed once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import (
    PRICE,
    act,
    billed_days,
    calls,
    events,
    live_events,
    open_backfill,
    read,
    scope,
    usage_totals,
)
from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import Killed, day, schedule, work


def _day_totals(world: World, monkeypatch: Any) -> dict[str, int]:
    """Bill the next window (it carries the pending adjustments) and read what each day was billed."""
    at = START + day(3, 3)
    schedule(world, at)
    work(world, at, monkeypatch)
    totals = usage_totals(world)
    return {key: totals[key] for key in (ts(START), ts(START + day(1)))}


def _adjustments(world: World) -> list[Any]:
    return world.ctx.billing.adjustments(world.subscriptions[0]["id"])


def _rated(world: World, n: int) -> int:
    terms = world.ctx.subscription(world.subscriptions[0]["id"]).timeline
    return world.ctx.rate_window(terms, START + day(n), START + day(n + 1)).subtotal_minor


@pytest.fixture
def held(world: World, monkeypatch: Any) -> str:
    """Days 0 and 1 billed and finalized (3 and 4 calls); a backfill holding 5 calls of day 0 and 2 of
    day 1."""
    billed_days(world, monkeypatch, [3, 4])
    _, bf = open_backfill(scope())
    events(bf["id"], calls("d0", START + day(0, 5), 5) + calls("d1", START + day(1, 7), 2))
    return str(bf["id"])


EXPECTED = {ts(START): 8 * PRICE, ts(START + day(1)): 6 * PRICE}


def test_killed_after_it_started_then_committed_again(world: World, held: str, monkeypatch: Any) -> None:
    from neruba.logic.billing import backfill_commit

    def dying(*args: Any) -> None:
        raise Killed

    monkeypatch.setattr(backfill_commit, "count_events", dying)
    with pytest.raises(Killed):
        act(held, "commit")
    # committing, nothing counted yet; no more events are taken
    assert read(f"/admin/backfills/{held}", backfill_id=held)[1]["status"] == "committing"
    assert _rated(world, 0) == 3 * PRICE
    assert events(held, calls("x", START + day(0, 1), 1))[0] == 409

    monkeypatch.undo()
    billed_days_again = act(held, "commit", key="c-2")
    assert billed_days_again[1]["status"] == "committed"
    assert _day_totals(world, monkeypatch) == EXPECTED
    assert_books_agree(world, "acme")


def test_killed_inside_the_counting_then_committed_again(world: World, monkeypatch: Any) -> None:
    from neruba.logic.billing import backfill_commit

    # GIVEN 150 held calls on day 0: two ingest batches of the commit, run by the request here
    monkeypatch.setattr(backfill_commit, "INLINE_EVENTS", 1000)
    monkeypatch.setattr(backfill_commit, "INLINE_SECONDS", 600)
    billed_days(world, monkeypatch, [3, 4])
    _, bf = open_backfill(scope())
    held = bf["id"]
    for part in range(3):
        sent = [
            {"transaction_id": f"b{part}-{i}", "timestamp": (START + day(0, 1 + i % 20)).isoformat()}
            for i in range(50)
        ]
        assert events(held, sent)[1]["held"] == 50
    usage = world.ctx.usage
    real = usage.count_group
    seen = [0]

    def dying(*args: Any, **kwargs: Any) -> Any:
        seen[0] += 1
        if seen[0] == 2:  # the first batch counted, the second killed before its write
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(usage, "count_group", dying)
    with pytest.raises(Killed):
        act(held, "commit")
    assert _rated(world, 0) == (3 + 100) * PRICE  # the first batch only

    monkeypatch.setattr(usage, "count_group", real)
    # (the commit is sent again once the killed attempt's hold has passed: within it, its counting waits,
    # docs/architecture.md "Outcome counters under a kill")
    from neruba.logic.ingest import worker

    monkeypatch.setattr(worker, "HOLD", timedelta(0))
    status, done = act(held, "commit", key="c-2")
    again = act(held, "commit", key="c-2")

    assert status == 200 and done["committed"]["events_counted"] == 150
    assert again == (200, done)
    assert _rated(world, 0) == (3 + 150) * PRICE
    [adjustment] = _adjustments(world)
    assert adjustment.line["amount_minor"] == 150 * PRICE
    assert_books_agree(world, "acme")


def test_killed_between_counting_and_correcting(world: World, held: str, monkeypatch: Any) -> None:
    from neruba.logic.billing import backfill_commit

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(backfill_commit, "correct_invoices", dying)
    with pytest.raises(Killed):
        act(held, "commit")
    assert _rated(world, 0) == 8 * PRICE and _adjustments(world) == []

    monkeypatch.undo()
    assert act(held, "commit", key="c-9")[1]["status"] == "committed"
    assert sorted(a.line["amount_minor"] for a in _adjustments(world)) == [20, 50]
    assert _day_totals(world, monkeypatch) == EXPECTED
    assert_books_agree(world, "acme")


def test_killed_between_two_invoice_corrections(world: World, held: str, monkeypatch: Any) -> None:
    from neruba.dal import transaction
    from neruba.logic.billing import admin

    reruns = [0]

    def dying(unit: Any) -> None:
        reruns[0] += 1
        if reruns[0] == 2:  # the first invoice corrected, the second's transaction never sent
            raise Killed
        transaction.commit(unit)

    monkeypatch.setattr(admin, "commit", dying)
    with pytest.raises(Killed):
        act(held, "commit")
    assert [a.line["amount_minor"] for a in _adjustments(world)] == [50]

    monkeypatch.setattr(admin, "commit", transaction.commit)
    status, done = act(held, "commit")
    assert status == 200 and [i["amount_minor"] for i in done["committed"]["invoices"]] == [50, 20]
    assert sorted(a.line["amount_minor"] for a in _adjustments(world)) == [20, 50]
    assert _day_totals(world, monkeypatch) == EXPECTED
    assert_books_agree(world, "acme")


def test_two_commits_at_once_count_and_correct_once(world: World, held: str, monkeypatch: Any) -> None:
    from neruba.logic.billing import backfill_commit
    from neruba.models.backfills import BackfillAction

    # GIVEN commit A stopped after counting (it is still running, about to correct)
    paused: list[Any] = []

    def pause(*args: Any, **kwargs: Any) -> Any:
        paused.append(args)
        raise Killed

    monkeypatch.setattr(backfill_commit, "correct_invoices", pause)
    with pytest.raises(Killed):
        act(held, "commit", key="a")
    monkeypatch.undo()
    # WHEN commit B runs to its end, and then A goes on with its own steps
    assert act(held, "commit", key="b")[1]["status"] == "committed"
    ctx, backfill_id, events_, actor, request_id, now = paused[0]
    backfill_commit.count_events(ctx, backfill_id, events_, now)
    corrected = backfill_commit.correct_invoices(ctx, backfill_id, events_, actor, request_id, now)
    backfill_commit.finish(ctx, backfill_id, events_, corrected, now)
    # AND both start at once: the second finds it committing and does not audit again
    backfill_commit.start(ctx, backfill_id, BackfillAction(reason="again"), actor, "z", None, now)

    # THEN counted once, corrected once
    assert _rated(world, 0) == 8 * PRICE and _rated(world, 1) == 6 * PRICE
    assert sorted(a.line["amount_minor"] for a in _adjustments(world)) == [20, 50]
    assert _day_totals(world, monkeypatch) == EXPECTED
    assert_books_agree(world, "acme")


def test_events_also_sent_live_are_counted_once(world: World, held: str, monkeypatch: Any) -> None:
    # GIVEN one held call was also sent live before the commit (and counted then)
    at = START + day(0, 5)
    assert live_events(world, ["d0-0"], at, "live-1") == {"accepted": 1}
    _, preview = read(f"/admin/backfills/{held}/preview", backfill_id=held)
    assert (preview["events_held"], preview["events_counted"]) == (7, 6)

    # WHEN the backfill is committed, and afterwards the client sends two of them live again
    status, done = act(held, "commit")
    outcomes = live_events(world, ["d0-1", "d0-2"], at, "live-2")

    # THEN each call counts once
    assert status == 200
    assert (done["committed"]["events_counted"], done["committed"]["events_not_counted"]) == (6, 1)
    assert outcomes == {"duplicate": 2}
    assert _rated(world, 0) == 8 * PRICE
    assert _day_totals(world, monkeypatch) == EXPECTED
    assert_books_agree(world, "acme")


def test_a_large_backfill_is_finished_by_the_billing_worker(
    world: World, held: str, monkeypatch: Any
) -> None:
    import boto3

    from neruba.logic.billing import backfill_commit
    from tests.functional.billing.helpers import worker
    from tests.support.queues import receive_batch, run_batch

    # GIVEN backfills of more than 3 events are left to the worker
    monkeypatch.setattr(backfill_commit, "INLINE_EVENTS", 3)
    # WHEN it is committed
    status, answer = act(held, "commit")
    # THEN the answer says committing, nothing is counted yet, and the billing queue holds its message
    assert (status, answer["status"]) == (200, "committing")
    assert _rated(world, 0) == 3 * PRICE
    at = START + day(2, 4)
    handler = worker(world, at, monkeypatch)
    # WHEN the worker is killed inside the counting of its first delivery
    usage = world.ctx.usage
    real = usage.count_group

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(usage, "count_group", dying)
    messages = receive_batch(world.billing_queue, 10)
    assert [m["Body"] for m in messages] == [backfill_commit.message(held)]
    assert run_batch(handler, world.billing_queue, messages)  # failed: delivered again
    assert read(f"/admin/backfills/{held}", backfill_id=held)[1]["status"] == "committing"
    # AND the redelivery reaches a healthy worker, then the message comes once more (a duplicate)
    monkeypatch.setattr(usage, "count_group", real)
    assert run_batch(handler, world.billing_queue, receive_batch(world.billing_queue, 10)) == set()
    boto3.client("sqs").send_message(QueueUrl=world.billing_queue, MessageBody=backfill_commit.message(held))
    assert run_batch(handler, world.billing_queue, receive_batch(world.billing_queue, 10)) == set()

    # THEN it is committed once, audited as the operator who sent the commit
    shown = read(f"/admin/backfills/{held}", backfill_id=held)[1]
    assert shown["status"] == "committed" and shown["committed"]["events_counted"] == 7
    assert sorted(a.line["amount_minor"] for a in _adjustments(world)) == [20, 50]
    from neruba.dal.audit import AuditRepository
    from neruba.settings import get_settings

    records, _ = AuditRepository(get_settings().ops_table).list("acme", 100)
    actors = {r["action"]: r["actor"] for r in records}
    assert actors["invoice.rerun"] == actors["backfill.commit"] != "system"
    assert _day_totals(world, monkeypatch) == EXPECTED
    assert_books_agree(world, "acme")


def test_a_commit_left_incomplete_is_handed_to_the_worker(world: World, held: str, monkeypatch: Any) -> None:
    from neruba.errors import ConflictError
    from neruba.logic.billing import admin, backfill_commit
    from tests.functional.billing.helpers import queued

    # GIVEN an invoice that keeps changing under the commit's rerun
    real = admin.rerun_invoice

    def changing(*args: Any, **kwargs: Any) -> Any:
        raise ConflictError("The invoice changed meanwhile; try again.", code="invoice_conflict")

    monkeypatch.setattr(admin, "rerun_invoice", changing)
    status, answer = act(held, "commit")
    # THEN the events are counted, the backfill is committing and the worker has its message
    assert (status, answer["status"]) == (200, "committing")
    assert _rated(world, 0) == 8 * PRICE
    assert queued(world.billing_queue) == [{"backfill": held}]
    # WHEN the worker takes it once the invoice is quiet
    monkeypatch.setattr(admin, "rerun_invoice", real)
    work(world, START + day(2, 4), monkeypatch)
    assert read(f"/admin/backfills/{held}", backfill_id=held)[1]["status"] == "committed"
    assert backfill_commit.INLINE_EVENTS == 50
    assert _day_totals(world, monkeypatch) == EXPECTED


def _spread(world: World, monkeypatch: Any) -> str:
    """Days 0 and 1 billed; a backfill of 2 calls on each of days 0 to 19 (sparse days: the ingest
    counting writes them as pending items, ``dal/pending.py``)."""
    billed_days(world, monkeypatch, [3, 4])
    _, bf = open_backfill(scope(end=(START + day(20)).isoformat()))
    sent = [
        {"transaction_id": f"s{d}-{i}", "timestamp": (START + day(d, 6 + i)).isoformat()}
        for d in range(20)
        for i in range(2)
    ]
    assert events(bf["id"], sent)[1]["held"] == 40
    return str(bf["id"])


def test_a_backfill_over_many_days_counts_each_day_once(world: World, monkeypatch: Any) -> None:
    held = _spread(world, monkeypatch)
    status, done = act(held, "commit")
    again = act(held, "commit", key="c-2")
    assert status == 200 and done["committed"]["events_counted"] == 40
    assert again == (200, done)
    assert [_rated(world, d) for d in range(20)] == [5 * PRICE, 6 * PRICE] + [2 * PRICE] * 18
    assert sorted(a.line["amount_minor"] for a in _adjustments(world)) == [20, 20]


def test_killed_while_writing_pending_days_then_finished_by_the_worker(
    world: World, monkeypatch: Any
) -> None:
    from neruba.logic.ingest import worker as ingest_worker

    held = _spread(world, monkeypatch)
    pending = world.ctx.usage.pending
    real = pending.put

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(pending, "put", dying)
    with pytest.raises(Killed):
        act(held, "commit")
    monkeypatch.setattr(pending, "put", real)
    # a commit right after finds the first attempt's events still held by it: left for later
    status, answer = act(held, "commit", key="c-2")
    assert (status, answer["status"]) == (200, "committing")
    assert _rated(world, 5) == 0
    # WHEN the hold has passed and the worker takes the message
    monkeypatch.setattr(ingest_worker, "HOLD", ingest_worker.HOLD * 0)
    work(world, START + day(2, 4), monkeypatch)
    # THEN every day counted once
    assert read(f"/admin/backfills/{held}", backfill_id=held)[1]["committed"]["events_counted"] == 40
    assert [_rated(world, d) for d in range(20)] == [5 * PRICE, 6 * PRICE] + [2 * PRICE] * 18
    assert sorted(a.line["amount_minor"] for a in _adjustments(world)) == [20, 20]


def test_a_commit_killed_before_its_message_is_resumed_by_the_sweep(
    world: World, held: str, monkeypatch: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from neruba import bootstrap
    from neruba.logic.billing import backfill_commit
    from neruba.logic.sweeps.backfills import stuck_backfills
    from neruba.logic.sweeps.billing import COOLDOWN
    from neruba.logic.sweeps.runner import CheckResult, SweepContext
    from neruba.settings import get_settings
    from tests.functional.billing.helpers import queued

    # GIVEN a commit killed right after it started: committing, no message anywhere
    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(backfill_commit, "count_events", dying)
    with pytest.raises(Killed):
        act(held, "commit")
    monkeypatch.undo()
    assert queued(world.billing_queue) == []

    def sweep(at: datetime) -> Any:
        """The billing sweep check's part for backfills, at ``at``."""
        ctx = SweepContext(at - timedelta(hours=1), at, at, get_settings(), lambda: world.ctx)
        result = CheckResult("billing", details={"in_flight": []})
        stuck_backfills(ctx, world.ctx, bootstrap.ops(), result, result.details, COOLDOWN)
        return result

    # WHEN the billing sweep runs within 15 minutes, then later, then again within its cool-down
    now = datetime.now(UTC)
    early = sweep(now + timedelta(minutes=5))
    late = sweep(now + timedelta(minutes=20))
    again = sweep(now + timedelta(minutes=25))

    # THEN the first leaves it (its commit may still run), the second sends its message once
    assert (early.found, early.repairs) == (0, [])
    assert late.repairs == [{"kind": "backfill_commit_resent", "backfill_id": held}]
    assert again.repairs == [] and again.details["in_flight"] == [
        {"kind": "backfill_commit", "backfill_id": held}
    ]
    assert queued(world.billing_queue) == [{"backfill": held}]
    # AND the worker finishes the commit
    work(world, START + day(2, 4), monkeypatch)
    assert read(f"/admin/backfills/{held}", backfill_id=held)[1]["status"] == "committed"
    assert _day_totals(world, monkeypatch) == EXPECTED
    assert_books_agree(world, "acme")


def test_two_commits_in_two_threads_count_and_correct_once(
    world: World, held: str, monkeypatch: Any, atomic_requests: None
) -> None:
    import threading

    from neruba.logic.billing.backfill_commit import commit_backfill
    from neruba.models.backfills import BackfillAction

    # GIVEN two operators committing the same backfill at the same moment (DynamoDB requests applied
    # whole, one at a time, the threads interleaving between them)
    barrier = threading.Barrier(2)
    answers: list[Any] = []
    errors: list[BaseException] = []

    def commit(key: str) -> None:
        barrier.wait()
        try:
            answers.append(commit_backfill(world.ctx, held, BackfillAction(reason="both"), "key:k", key))
        except BaseException as exc:  # a conflict is an acceptable answer; a double count is not
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(key,)) for key in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # WHEN whatever is left is finished (a commit that found a step still held answered committing)
    status, shown = act(held, "commit", key="c")
    assert status == 200 and shown["status"] == "committed", (answers, errors)

    # THEN every event counted once, every difference billed once
    assert all(getattr(e, "code", None) == "invoice_conflict" for e in errors), errors
    assert _rated(world, 0) == 8 * PRICE and _rated(world, 1) == 6 * PRICE
    assert sorted(a.line["amount_minor"] for a in _adjustments(world)) == [20, 50]
    assert _day_totals(world, monkeypatch) == EXPECTED
    assert_books_agree(world, "acme")
