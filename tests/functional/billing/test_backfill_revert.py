"""Reverting a committed backfill: its counted events voided through the event-void mechanism, its
invoices corrected by the same reruns as the commit (other keys); killed between steps, sent twice, two at
once, resumed by the worker and the billing sweep; the same for a backfill whose events are far older than
the void horizon (ingest's maximum event age), which the revert's own keyed reruns correct."""

from __future__ import annotations

from datetime import datetime, timedelta
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

NOW = START + day(2, 4)  # the revert's time: the backfill's events are within the void horizon
OLD = START + day(300)  # a revert 300 days later: its events far past the void horizon (35 days)
ORIGINAL = {ts(START): 3 * PRICE, ts(START + day(1)): 4 * PRICE}


def _revert(backfill_id: str, key: str | None = None, now: datetime = NOW) -> dict[str, Any]:
    from neruba.logic.billing.backfill_revert import revert_backfill
    from neruba.models.backfills import BackfillAction

    body = BackfillAction(reason="imported twice", ticket="FIN-9")
    key = key or f"r-{backfill_id}"  # a key names one request: one backfill's revert
    return revert_backfill(bootstrap_billing(), backfill_id, body, "key:op", key, "req-1", now)


def bootstrap_billing() -> Any:
    from neruba import bootstrap

    return bootstrap.billing()


def _rated(world: World, n: int) -> int:
    terms = world.ctx.subscription(world.subscriptions[0]["id"]).timeline
    return world.ctx.rate_window(terms, START + day(n), START + day(n + 1)).subtotal_minor


def _adjustments(world: World) -> list[int]:
    return sorted(a.line["amount_minor"] for a in world.ctx.billing.adjustments(world.subscriptions[0]["id"]))


def _day_totals(world: World, monkeypatch: Any) -> dict[str, int]:
    at = START + day(3, 3)
    schedule(world, at)
    work(world, at, monkeypatch)
    totals = usage_totals(world)
    return {key: totals[key] for key in (ts(START), ts(START + day(1)))}


@pytest.fixture(params=["recent", "old"])
def when(request: Any) -> datetime:
    """The revert's time: within the void horizon of the backfill's events, or 300 days later."""
    return NOW if request.param == "recent" else OLD


@pytest.fixture
def committed(world: World, monkeypatch: Any) -> str:
    """Days 0 and 1 billed and finalized (3 and 4 calls); a committed backfill that added 5 calls on day
    0 and 2 on day 1 (adjustments of 50 and 20 pending)."""
    billed_days(world, monkeypatch, [3, 4])
    _, bf = open_backfill(scope())
    events(bf["id"], calls("d0", START + day(0, 5), 5) + calls("d1", START + day(1, 7), 2))
    assert act(bf["id"], "commit")[1]["status"] == "committed"
    assert _rated(world, 0) == 8 * PRICE and _adjustments(world) == [20, 50]
    return str(bf["id"])


def test_a_revert_takes_back_exactly_what_the_commit_added(
    world: World, committed: str, monkeypatch: Any, when: datetime
) -> None:
    from neruba import bootstrap

    done = _revert(committed, now=when)

    assert done["status"] == "reverted"
    assert done["reverted"]["events_voided"] == 7
    assert [i["amount_minor"] for i in done["reverted"]["invoices"]] == [-50, -20]
    assert done["revert"]["reason"] == "imported twice" and done["revert"]["ticket"] == "FIN-9"
    assert _rated(world, 0) == 3 * PRICE and _rated(world, 1) == 4 * PRICE
    assert _adjustments(world) == [-50, -20, 20, 50]
    event = bootstrap.usage().get_event("acme", "d0-0")
    assert event is not None and event.status == "voided"
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")
    from neruba.dal.audit import AuditRepository
    from neruba.settings import get_settings

    records, _ = AuditRepository(get_settings().ops_table).list("acme", 200)
    actions = [r["action"] for r in records]
    assert actions.count("backfill.revert") == 1 and actions.count("event.void") == 7


def test_events_the_commit_did_not_count_are_not_voided(world: World, monkeypatch: Any) -> None:
    from neruba import bootstrap

    # GIVEN a held call also sent live before the commit: the live copy counted, the backfill's not
    billed_days(world, monkeypatch, [3, 4])
    _, bf = open_backfill(scope())
    events(bf["id"], calls("d0", START + day(0, 5), 5))
    assert live_events(world, ["d0-0"], START + day(0, 5), "live-1") == {"accepted": 1}
    assert act(bf["id"], "commit")[1]["committed"]["events_counted"] == 4

    done = _revert(bf["id"])

    assert done["reverted"]["events_voided"] == 4
    event = bootstrap.usage().get_event("acme", "d0-0")
    assert event is not None and event.status == "accepted"
    assert _rated(world, 0) == 4 * PRICE
    assert _day_totals(world, monkeypatch) == {**ORIGINAL, ts(START): 4 * PRICE}
    assert_books_agree(world, "acme")


def test_a_revert_sent_twice_or_with_another_key_does_it_once(
    world: World, committed: str, monkeypatch: Any, when: datetime
) -> None:
    first = _revert(committed, now=when)
    second = _revert(committed, now=when)
    third = _revert(committed, key="r-other", now=when)

    assert first == second == third
    assert _adjustments(world) == [-50, -20, 20, 50]
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


@pytest.mark.parametrize("step", ["void_events", "correct_invoices"])
def test_killed_between_steps_then_reverted_again(
    world: World, committed: str, monkeypatch: Any, step: str, when: datetime
) -> None:
    from neruba.logic.billing import backfill_revert

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(backfill_revert, step, dying)
    with pytest.raises(Killed):
        _revert(committed, now=when)
    assert read(f"/admin/backfills/{committed}", backfill_id=committed)[1]["status"] == "reverting"
    monkeypatch.undo()

    done = _revert(committed, key="r-2", now=when)

    assert done["status"] == "reverted"
    assert _adjustments(world) == [-50, -20, 20, 50]
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_killed_inside_the_voids_then_reverted_again(
    world: World, committed: str, monkeypatch: Any, when: datetime
) -> None:
    from neruba.logic.billing import backfill_revert
    from neruba.logic.ingest import voids

    real = voids.void_event
    seen = [0]

    def dying(*args: Any, **kwargs: Any) -> Any:
        seen[0] += 1
        if seen[0] == 4:  # three voided, the fourth killed before its transaction
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(backfill_revert, "void_event", dying)
    with pytest.raises(Killed):
        _revert(committed, now=when)
    assert _rated(world, 0) == 5 * PRICE
    monkeypatch.undo()

    assert _revert(committed, key="r-2", now=when)["reverted"]["events_voided"] == 7
    assert _rated(world, 0) == 3 * PRICE
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_two_reverts_at_once_void_and_correct_once(
    world: World, committed: str, monkeypatch: Any, when: datetime
) -> None:
    from neruba.logic.billing import backfill_revert

    # GIVEN revert A stopped after voiding (still running, about to correct)
    paused: list[Any] = []

    def pause(*args: Any, **kwargs: Any) -> Any:
        paused.append(args)
        raise Killed

    monkeypatch.setattr(backfill_revert, "correct_invoices", pause)
    with pytest.raises(Killed):
        _revert(committed, key="a", now=when)
    monkeypatch.undo()
    # WHEN revert B runs to its end, then A goes on with its own steps
    assert _revert(committed, key="b", now=when)["status"] == "reverted"
    backfill_revert.run_steps(bootstrap_billing(), committed, "key:op", None, when)

    assert _adjustments(world) == [-50, -20, 20, 50]
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_a_revert_killed_after_it_started_is_resumed_by_the_sweep_and_the_worker(
    world: World, committed: str, monkeypatch: Any, when: datetime
) -> None:
    from neruba import bootstrap
    from neruba.logic.billing import backfill_revert
    from neruba.logic.sweeps.backfills import stuck_backfills
    from neruba.logic.sweeps.billing import COOLDOWN
    from neruba.logic.sweeps.runner import CheckResult, SweepContext
    from neruba.settings import get_settings
    from tests.functional.billing.helpers import queued

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(backfill_revert, "void_events", dying)
    with pytest.raises(Killed):
        _revert(committed, now=when)
    monkeypatch.undo()
    assert queued(world.billing_queue) == []

    def sweep(at: datetime) -> Any:
        ctx = SweepContext(at - timedelta(hours=1), at, at, get_settings(), lambda: world.ctx)
        result = CheckResult("billing", details={"in_flight": []})
        stuck_backfills(ctx, world.ctx, bootstrap.ops(), result, result.details, COOLDOWN)
        return result

    assert sweep(when + timedelta(minutes=5)).repairs == []
    late = sweep(when + timedelta(minutes=20))
    assert late.repairs == [{"kind": "backfill_revert_resent", "backfill_id": committed}]
    assert queued(world.billing_queue) == [{"backfill": committed}]

    work(world, when + timedelta(minutes=21), monkeypatch)

    assert read(f"/admin/backfills/{committed}", backfill_id=committed)[1]["status"] == "reverted"
    assert _adjustments(world) == [-50, -20, 20, 50]
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_a_large_revert_is_finished_by_the_billing_worker(
    world: World, committed: str, monkeypatch: Any, when: datetime
) -> None:
    from neruba.logic.billing import backfill_commit

    monkeypatch.setattr(backfill_commit, "INLINE_EVENTS", 3)
    assert _revert(committed, now=when)["status"] == "reverting"
    work(world, when + timedelta(minutes=1), monkeypatch)
    assert read(f"/admin/backfills/{committed}", backfill_id=committed)[1]["status"] == "reverted"
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_the_route_refuses_what_it_cannot_revert(world: World, committed: str, monkeypatch: Any) -> None:
    # a backfill not committed
    _, other = open_backfill(scope(), key="bf-2")
    status, answer = act(other["id"], "revert", key="r-1")
    assert (status, answer["error"]["code"]) == (409, "backfill_not_committed")
    # no Idempotency-Key
    from tests.functional.billing.backfill_support import handler
    from tests.support.api import api_event, call

    path = f"/admin/backfills/{committed}/revert"
    event = api_event(
        "POST", path, body={"reason": "imported twice"}, path_parameters={"backfill_id": committed}
    )
    status, answer, _ = call(handler(), event)
    assert (status, answer["error"]["code"]) == (400, "idempotency_key_required")
    assert read(f"/admin/backfills/{committed}", backfill_id=committed)[1]["status"] == "committed"
    assert _rated(world, 0) == 8 * PRICE and _adjustments(world) == [20, 50]


def test_the_route_reverts_a_backfill_older_than_the_void_horizon(
    world: World, committed: str, monkeypatch: Any
) -> None:
    from neruba import bootstrap

    # the world is dated months back: the events are far past ingest's maximum event age (35 days)
    status, done = act(committed, "revert", key="r-1")

    assert (status, done["status"]) == (200, "reverted")
    assert [i["amount_minor"] for i in done["reverted"]["invoices"]] == [-50, -20]
    assert _adjustments(world) == [-50, -20, 20, 50]
    event = bootstrap.usage().get_event("acme", "d0-0")
    assert event is not None and event.status == "voided"
    status, answer = act(committed, "revert", key="r-2")
    assert (status, answer["status"]) == (200, "reverted")
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def _voided(transaction_ids: list[str]) -> int:
    from neruba import bootstrap

    stored = bootstrap.usage().get_events(("acme", t) for t in transaction_ids)
    return sum(1 for event in stored.values() if event.status == "voided")


def _void_audits() -> list[str]:
    from neruba.dal.audit import AuditRepository
    from neruba.settings import get_settings

    records, _ = AuditRepository(get_settings().ops_table).list("acme", 200)
    return sorted(str(r["target"]) for r in records if r["action"] == "event.void")


def test_a_revert_past_its_deadline_goes_on_over_several_invocations_and_finishes_once(
    world: World, committed: str, monkeypatch: Any, when: datetime
) -> None:
    from neruba.logic.billing import backfill_commit, backfill_revert
    from tests.functional.billing.helpers import worker
    from tests.support.lambda_context import FakeContext
    from tests.support.queues import receive_batch, run_batch

    ours = [f"d0-{i}" for i in range(5)] + [f"d1-{i}" for i in range(2)]
    # GIVEN a revert handed to the worker, whose every invocation is already near its end (5 s left, less
    # than the reserve a backfill's run keeps): each invocation does one unit of work and stops
    monkeypatch.setattr(backfill_commit, "INLINE_EVENTS", 3)
    assert _revert(committed, now=when)["status"] == "reverting"
    monkeypatch.setattr(FakeContext, "get_remaining_time_in_millis", lambda self: 5_000)
    handler = worker(world, when + timedelta(minutes=1), monkeypatch)
    # AND the process is killed once, right after the third void's transaction
    real, seen = backfill_revert.void_event, [0]

    def dying(*args: Any, **kwargs: Any) -> Any:
        answer = real(*args, **kwargs)
        seen[0] += 1
        if seen[0] == 3:
            raise Killed
        return answer

    monkeypatch.setattr(backfill_revert, "void_event", dying)
    # WHEN the billing queue is fed to the worker until it is empty
    progress: list[int] = []
    for _ in range(40):
        messages = receive_batch(world.billing_queue, 10)
        if not messages:
            break
        assert [m["Body"] for m in messages] == [backfill_commit.message(committed)]
        assert all(int(m["Attributes"]["ApproximateReceiveCount"]) <= 2 for m in messages)  # far from the DLQ
        run_batch(handler, world.billing_queue, messages)
        progress.append(_voided(ours))

    # THEN it took one invocation per void (and more for the invoices), each voiding at most one event
    assert read(f"/admin/backfills/{committed}", backfill_id=committed)[1]["status"] == "reverted"
    assert len(progress) >= 7 + 2
    assert max(b - a for a, b in zip([0, *progress], progress, strict=False)) == 1
    # AND every event is voided once, every invoice corrected once
    assert _void_audits() == sorted(ours)
    shown = read(f"/admin/backfills/{committed}", backfill_id=committed)[1]
    assert shown["reverted"]["events_voided"] == 7
    assert [i["amount_minor"] for i in shown["reverted"]["invoices"]] == [-50, -20]
    assert _adjustments(world) == [-50, -20, 20, 50]
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_the_route_hands_a_revert_to_the_worker_once_its_time_budget_is_spent(
    world: World, committed: str, monkeypatch: Any
) -> None:
    from neruba.logic.billing import backfill_commit
    from tests.functional.billing.helpers import queued

    # GIVEN a request's time budget already spent when the revert starts (a small revert: 7 events)
    monkeypatch.setattr(backfill_commit, "INLINE_SECONDS", 0)
    status, answer = act(committed, "revert", key="r-1")
    # THEN it did one unit of work, answered reverting and left the rest to the worker
    assert (status, answer["status"]) == (200, "reverting")
    assert _voided([f"d0-{i}" for i in range(5)] + [f"d1-{i}" for i in range(2)]) == 1
    assert queued(world.billing_queue) == [{"backfill": committed}]
    work(world, NOW, monkeypatch)
    assert read(f"/admin/backfills/{committed}", backfill_id=committed)[1]["status"] == "reverted"
    assert _adjustments(world) == [-50, -20, 20, 50]
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_the_route_hands_a_medium_revert_to_the_worker(world: World, monkeypatch: Any) -> None:
    from tests.functional.billing.helpers import queued

    # GIVEN a committed backfill of 60 events (3 on day 0 and 4 on day 1 billed before)
    billed_days(world, monkeypatch, [3, 4])
    _, bf = open_backfill(scope())
    events(bf["id"], calls("m0", START + day(0, 5), 40) + calls("m1", START + day(1, 7), 20))
    status, answer = act(bf["id"], "commit")
    assert (status, answer["status"]) == (200, "committing")  # 60 events: more than a request runs
    work(world, NOW, monkeypatch)
    assert read(f"/admin/backfills/{bf['id']}", backfill_id=bf["id"])[1]["status"] == "committed"
    # WHEN it is reverted through the route
    status, answer = act(bf["id"], "revert", key="r-1")
    # THEN the request answers reverting at once and the worker voids and corrects
    assert (status, answer["status"]) == (200, "reverting")
    assert queued(world.billing_queue) == [{"backfill": bf["id"]}]
    work(world, NOW, monkeypatch)
    shown = read(f"/admin/backfills/{bf['id']}", backfill_id=bf["id"])[1]
    assert shown["status"] == "reverted" and shown["reverted"]["events_voided"] == 60
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_events_voided_counts_only_what_the_revert_voided(
    world: World, committed: str, monkeypatch: Any
) -> None:
    from neruba.dal.audit import AuditRepository
    from neruba.logic.ingest.voids import VoidRequest, void_event
    from neruba.settings import get_settings

    # GIVEN two of the seven counted events voided by an operator after the commit
    for n, tx in enumerate(["d0-0", "d0-1"]):
        void_event(VoidRequest("acme", tx, "sent by mistake", "OPS-1"), "key:op", f"v-{n}", "req-v", NOW)

    done = _revert(committed)

    # THEN the revert says it voided five and found two void already; the audit holds its five voids
    assert (done["reverted"]["events_voided"], done["reverted"]["events_already_voided"]) == (5, 2)
    records, _ = AuditRepository(get_settings().ops_table).list("acme", 200)
    ours = [r for r in records if r["action"] == "event.void" and "revert of backfill" in str(r["reason"])]
    assert len(ours) == 5
    assert _rated(world, 0) == 3 * PRICE


def test_interleaved_runs_count_the_reverts_own_voids_whoever_won_each(
    world: World, committed: str, monkeypatch: Any
) -> None:
    from neruba import bootstrap
    from neruba.dal.audit import AuditRepository
    from neruba.logic import idempotency
    from neruba.logic.billing import backfill_revert
    from neruba.logic.billing.backfills import get_backfill
    from neruba.logic.ingest.voids import VoidRequest, void_event
    from neruba.settings import get_settings

    # GIVEN one operator void, and a second run of the revert that voids each event just after this run
    # looked for its void's key and found none (so this run then finds the event voided)
    void_event(VoidRequest("acme", "d0-4", "sent by mistake", "OPS-1"), "key:op", "v-op", "req-v", NOW)
    ctx = bootstrap.billing()
    real, raced = idempotency.replay, set()

    def racing(billing: Any, scope: str, key: str | None, request: str) -> Any:
        answer = real(billing, scope, key, request)
        if answer is None and key and key.startswith("backfill-revert:" + committed) and key not in raced:
            raced.add(key)
            found = get_backfill(ctx, committed)
            held = backfill_revert.backfills(ctx).held_events(committed)
            for event in backfill_revert.taken_back(ctx, committed, held):
                digest = idempotency.digest([event.customer_id, event.transaction_id], 32)
                if key.endswith(":" + digest):
                    backfill_revert.void_events(
                        ctx, committed, [event], found.document["revert"], "key:op", "req-2", NOW
                    )
        return answer

    monkeypatch.setattr(idempotency, "replay", racing)
    done = _revert(committed)
    monkeypatch.undo()

    # THEN every void the revert made counts as its own, whichever run made it; only the operator's is
    # counted as void already, and each event was voided once
    assert done["status"] == "reverted"
    assert len(raced) >= 6
    assert (done["reverted"]["events_voided"], done["reverted"]["events_already_voided"]) == (6, 1)
    records, _ = AuditRepository(get_settings().ops_table).list("acme", 200)
    ours = [r for r in records if r["action"] == "event.void" and "revert of backfill" in str(r["reason"])]
    assert len(ours) == 6
    assert _rated(world, 0) == 3 * PRICE and _rated(world, 1) == 4 * PRICE
    assert_books_agree(world, "acme")
