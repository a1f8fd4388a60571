"""Due windows are found through the sparse index and billed in order, however late the scheduler runs.

Three missed days caught up in order: ``test_real_billing.test_three_missed_periods_catch_up_in_order``."""

from __future__ import annotations

from typing import Any

from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import billing_state, day, queued, schedule, work


def test_a_later_job_bills_the_earlier_windows_first(world: World, monkeypatch: Any) -> None:
    # GIVEN three due windows whose jobs arrive out of order (the last one first)
    sub = world.subscribe("acme")
    world.usage("acme", START + day(0, 1), 2)
    world.usage("acme", START + day(1, 1), 4)
    now = START + day(2, 1)
    schedule(world, now)
    from tests.functional.billing.helpers import worker
    from tests.support.queues import receive_batch, run_batch

    messages = receive_batch(world.billing_queue, 10)
    last = max(messages, key=lambda m: m["Body"].count('"seq":2'))

    # WHEN only the job of the last window runs
    failed = run_batch(worker(world, now, monkeypatch), world.billing_queue, [last])

    # THEN it billed windows 0, 1 and 2 in order, and the remaining jobs are no-ops
    assert failed == set()
    assert [i["seq"] for i in world.invoices("acme")] == [0, 1, 2]
    work(world, now, monkeypatch)
    assert len(world.invoices("acme")) == 3
    assert billing_state(world, sub["id"]).next_seq == 3


def test_the_scheduler_reads_only_due_states(world: World, monkeypatch: Any) -> None:
    # GIVEN one subscription billed up to date and one that is due
    world.subscribe("acme")
    now = START + day(0, 1)
    schedule(world, now)
    work(world, now, monkeypatch)
    world.subscribe("globex", start=START + day(0, 2))
    later = START + day(0, 3)

    # WHEN the scheduler runs
    run = schedule(world, later, backfill=True)

    # THEN only globex's opening was found (acme's next window is not due before day 1)
    assert (run.windows_found, run.enqueued) == (1, 1)
    assert [j["customer_id"] for j in queued(world.billing_queue)] == ["globex"]


def test_a_canceled_subscription_stops_after_its_last_window(world: World, monkeypatch: Any) -> None:
    # GIVEN a subscription that ended in the middle of day 1
    sub = world.subscribe("acme", ended_at=(START + day(1, 12)).isoformat(), status="canceled")
    world.usage("acme", START + day(1, 2), 3)
    world.usage("acme", START + day(1, 13), 100)  # after the end: not billed
    now = START + day(4)

    # WHEN everything due is billed
    schedule(world, now)
    work(world, now, monkeypatch)

    # THEN the last usage window is clipped at the end and billing stopped (the basic plan has no fee: the
    # opening invoice is empty)
    invoices = world.invoices("acme")
    assert [(i["seq"], i["subtotal_minor"]) for i in invoices] == [(0, 0), (1, 0), (2, 30)]
    assert invoices[-1]["period_end"] == "2026-03-02T12:00:00.000000Z"
    schedule(world, now + day(1))
    work(world, now + day(1), monkeypatch)
    assert billing_state(world, sub["id"]).status == "ended"
    assert len(world.invoices("acme")) == 3
