"""One scheduler at a time: lease, skipped_locked, takeover of an expired lease, fencing.

Two schedulers in threads at the same instant:
``test_real_faults.test_two_schedulers_in_threads_one_bills_one_skipped``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from neruba.dal.billing import BillingRun
from neruba.dal.locks import LockLostError
from neruba.logic.billing.scheduler import LOCK_NAME
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, queued, schedule, work


def test_lease_rules_with_a_fake_clock(world: World) -> None:
    # GIVEN a lease taken at t0 for five minutes
    t0 = START
    first = world.locks.acquire("x", "a", timedelta(minutes=5), t0)
    assert first is not None

    # THEN nobody else gets it while it is live, even a second before it ends
    assert world.locks.acquire("x", "b", timedelta(minutes=5), t0 + timedelta(minutes=4, seconds=59)) is None
    # AND renewing keeps it; after the renewed end it can be taken over with a larger token
    renewed = world.locks.renew(first, timedelta(minutes=5), t0 + timedelta(minutes=4))
    assert world.locks.acquire("x", "b", timedelta(minutes=5), t0 + timedelta(minutes=8)) is None
    second = world.locks.acquire("x", "b", timedelta(minutes=5), t0 + timedelta(minutes=9, seconds=1))
    assert second is not None and second.token == first.token + 1
    # AND the old holder can neither renew nor pass a fence
    with pytest.raises(LockLostError):
        world.locks.renew(renewed, timedelta(minutes=5), t0 + timedelta(minutes=9, seconds=2))
    from neruba.dal.billing import TransactionCancelledError
    from neruba.dal.transaction import Transaction

    with pytest.raises(TransactionCancelledError):
        Transaction([world.locks.fence(renewed)]).commit()
    Transaction([world.locks.fence(second)]).commit()
    # AND a released lease is free at once; the token keeps growing
    world.locks.release(second)
    third = world.locks.acquire("x", "c", timedelta(minutes=5), t0 + timedelta(minutes=9, seconds=3))
    assert third is not None and third.token == second.token + 1


def test_two_schedulers_started_together_bill_once(world: World, monkeypatch: Any) -> None:
    # GIVEN a due subscription, and a second scheduler that starts while the first holds the lease
    world.subscribe("acme")
    now = START + day(1, 1)
    second: list[BillingRun] = []
    original = world.ctx.billing.due_states

    def interleaved(at: Any, shard: int) -> Any:
        if not second:
            second.append(schedule(world, now))  # started together: the first is mid-run
        return original(at, shard)

    monkeypatch.setattr(world.ctx.billing, "due_states", interleaved)

    # WHEN both run
    first = schedule(world, now)

    # THEN one run billed and the other recorded skipped_locked
    assert first.status == "completed"
    assert second[0].status == "skipped_locked"
    assert second[0].lock_holder == first.id
    runs, _ = world.ctx.billing.runs(10, None)
    assert sorted(r.status for r in runs) == ["completed", "skipped_locked"]
    # AND each window was enqueued once, and billed once
    assert [j["seq"] for j in queued(world.billing_queue)] == [0, 1]
    work(world, now, monkeypatch)
    assert len(world.invoices("acme")) == 2


def test_a_scheduler_whose_lease_expired_cannot_commit(world: World, monkeypatch: Any) -> None:
    # GIVEN a draft past its grace and a due window, and scheduler A that stalls mid-run (its clock stops)
    world.subscribe("acme")
    world.usage("acme", START + day(0, 1), 4)
    first_day = START + day(1, 1)
    schedule(world, first_day)
    work(world, first_day, monkeypatch)  # two drafts: opening and day 0
    now = START + day(2, 2)
    stalled_until = now + timedelta(minutes=30)  # beyond A's five-minute lease
    b_runs: list[BillingRun] = []
    original = world.ctx.billing.due_states
    started: list[bool] = []

    def pause_then_b_takes_over(at: Any, shard: int) -> Any:
        if not started:
            started.append(True)
            b_runs.append(schedule(world, stalled_until))
        return original(at, shard)

    monkeypatch.setattr(world.ctx.billing, "due_states", pause_then_b_takes_over)

    # WHEN A resumes after B took the expired lease over and finished
    a = schedule(world, now)

    # THEN A's writes were rejected by the fence: it stopped with lock_lost and committed nothing
    assert a.status == "lock_lost"
    assert b_runs[0].status == "completed" and b_runs[0].lock_token == a.lock_token + 1
    stored = world.ctx.billing.run(a.id)
    assert (stored.status, stored.enqueued, stored.finalized) == ("lock_lost", 0, 0)
    # AND the drafts were numbered once, by B, without gaps
    numbers = sorted(i["number"] for i in world.invoices("acme") if i["number"])
    assert numbers == ["INV-000001", "INV-000002"]
    assert world.locks.current(LOCK_NAME)["token"] == b_runs[0].lock_token


def test_a_fenced_write_fails_when_a_newer_token_exists(world: World) -> None:
    # GIVEN a lease that was taken over
    from neruba.dal.billing import TransactionCancelledError
    from neruba.logic.billing.finalize import fenced

    old = world.locks.acquire(LOCK_NAME, "a", timedelta(minutes=5), START)
    assert old is not None
    assert world.locks.acquire(LOCK_NAME, "b", timedelta(minutes=5), START + timedelta(minutes=6))
    run = {"id": "run_x", "started_at": "2026-03-01T00:00:00.000000Z", "status": "running"}

    # WHEN the old holder writes its run record under its fence
    with pytest.raises(LockLostError):
        fenced([world.ctx.billing.run_put_item(run)], lambda: [world.locks.fence(old)])

    # THEN nothing was written
    assert world.ctx.billing.run("run_x") is None
    assert TransactionCancelledError


def test_a_long_run_renews_its_lease(world: World, monkeypatch: Any) -> None:
    # GIVEN due subscriptions and a run whose every step takes two minutes
    for name in ("acme", "globex"):
        world.subscribe(name)
    now = START + day(1, 1)
    clock = {"at": now}

    def slow_clock() -> Any:
        clock["at"] += timedelta(minutes=2)
        return clock["at"]

    attempts: list[Any] = []
    original = world.ctx.billing.due_states

    def another_scheduler_tries(at: Any, shard: int) -> Any:
        attempts.append(world.locks.acquire(LOCK_NAME, "other", timedelta(minutes=5), clock["at"]))
        return original(at, shard)

    monkeypatch.setattr(world.ctx.billing, "due_states", another_scheduler_tries)

    # WHEN it runs far longer than its five-minute lease
    run = schedule(world, now, clock=slow_clock)

    # THEN no other scheduler could take the lock at any point, and the run completed
    assert clock["at"] - now > timedelta(minutes=10)  # twice the lease
    assert attempts and all(a is None for a in attempts)
    assert (run.status, run.enqueued) == ("completed", 4)
    assert world.locks.current(LOCK_NAME)["token"] == run.lock_token


def test_a_run_scoped_to_one_customer_finalizes_that_customer_s_drafts_only(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN two customers, each with a draft of day 0 whose grace has passed
    world.subscribe("acme")
    world.subscribe("globex")
    schedule(world, START + day(1, 1))
    work(world, START + day(1, 1), monkeypatch)
    drafts = {c: [i.status for i in world.ctx.invoices.of_customer(c)] for c in ("acme", "globex")}
    assert drafts["acme"] == drafts["globex"] and set(drafts["acme"]) == {"draft"}, drafts

    # WHEN a billing run scoped to acme runs after the grace
    run = schedule(world, START + day(2, 0), customer_id="acme")

    # THEN it finalizes acme's draft only; globex's waits for its own (or an unscoped) run
    assert run.document["finalized"] == len(drafts["acme"])
    statuses = {c: {i.status for i in world.ctx.invoices.of_customer(c)} for c in ("acme", "globex")}
    assert statuses == {"acme": {"finalized"}, "globex": {"draft"}}
