"""``mode: replace``: at commit the stored accepted events of the range (the backfill's customers and
meters) are voided through the event-void mechanism and the held events counted; the preview shows
the window before and after; killed between the steps, it resumes without voiding its own events;
refused at open for ranges not on whole hours. The world is dated months back: every range here is far
past the void horizon (ingest's maximum event age, 35 days), which a backfill's own voids do not need."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import (
    PRICE,
    act,
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


@pytest.fixture
def stored(world: World, monkeypatch: Any) -> None:
    """acme's day 0 (3 calls, ids s0-*) and day 1 (4 calls, s1-*) counted live, billed and finalized."""
    world.subscribe("acme")
    live_events(world, [f"s0-{i}" for i in range(3)], START + day(0, 2), "live-0")
    live_events(world, [f"s1-{i}" for i in range(4)], START + day(1, 2), "live-1")
    for d in range(3):
        schedule(world, START + day(d, 3))
        work(world, START + day(d, 3), monkeypatch)
    schedule(world, START + day(2, 5))


def _rated(world: World, n: int) -> int:
    terms = world.ctx.subscription(world.subscriptions[0]["id"]).timeline
    return world.ctx.rate_window(terms, START + day(n), START + day(n + 1)).subtotal_minor


def _day_totals(world: World, monkeypatch: Any) -> dict[str, int]:
    at = START + day(3, 3)
    schedule(world, at)
    work(world, at, monkeypatch)
    totals = usage_totals(world)
    return {key: totals[key] for key in (ts(START), ts(START + day(1)))}


def _replace_day0(held: list[dict[str, Any]]) -> str:
    status, bf = open_backfill(scope(mode="replace", end=(START + day(1)).isoformat()))
    assert status == 201, bf
    assert events(bf["id"], held)[1]["rejected"] == 0
    return str(bf["id"])


def _status(world: World, tx: str) -> str:
    event = world.ctx.usage.get_event("acme", tx)
    assert event is not None
    return event.status


def test_replace_voids_the_range_and_counts_the_held_events(
    world: World, stored: None, monkeypatch: Any
) -> None:
    assert _rated(world, 0) == 3 * PRICE
    backfill = _replace_day0(calls("r0", START + day(0, 6), 5))

    _, preview = read(f"/admin/backfills/{backfill}/preview", backfill_id=backfill)
    [row] = preview["invoices"]
    assert (row["before_minor"], row["after_minor"], row["difference_minor"]) == (30, 50, 20)
    assert preview["events_replaced"] == 3

    status, done = act(backfill, "commit")

    assert status == 200 and done["status"] == "committed"
    assert done["committed"]["events_counted"] == 5 and done["committed"]["events_replaced"] == 3
    assert [_status(world, f"s0-{i}") for i in range(3)] == ["voided"] * 3
    assert _status(world, "s1-0") == "accepted"  # outside the range
    assert _rated(world, 0) == 5 * PRICE and _rated(world, 1) == 4 * PRICE
    assert _day_totals(world, monkeypatch) == {ts(START): 5 * PRICE, ts(START + day(1)): 4 * PRICE}
    assert_books_agree(world, "acme")


def test_a_held_event_already_stored_stands_and_is_not_voided(
    world: World, stored: None, monkeypatch: Any
) -> None:
    held = [{"transaction_id": "s0-0", "timestamp": (START + day(0, 2)).isoformat()}]
    backfill = _replace_day0(held + calls("r0", START + day(0, 6), 1))

    done = act(backfill, "commit")[1]

    assert (done["committed"]["events_counted"], done["committed"]["events_replaced"]) == (1, 2)
    assert _status(world, "s0-0") == "accepted"
    assert _rated(world, 0) == 2 * PRICE
    assert _day_totals(world, monkeypatch)[ts(START)] == 2 * PRICE
    assert_books_agree(world, "acme")


@pytest.mark.parametrize("step", ["count_events", "correct_invoices"])
def test_killed_after_the_voids_then_committed_again(
    world: World, stored: None, monkeypatch: Any, step: str
) -> None:
    from neruba.logic.billing import backfill_commit

    backfill = _replace_day0(calls("r0", START + day(0, 6), 5))

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(backfill_commit, step, dying)
    with pytest.raises(Killed):
        act(backfill, "commit")
    monkeypatch.undo()

    done = act(backfill, "commit", key="c-2")[1]

    assert done["status"] == "committed"
    assert [_status(world, f"r0-{i}") for i in range(5)] == ["accepted"] * 5  # its own: never voided
    assert _rated(world, 0) == 5 * PRICE
    assert _day_totals(world, monkeypatch)[ts(START)] == 5 * PRICE
    assert_books_agree(world, "acme")


def test_replace_is_refused_at_open_where_it_cannot_void(world: World, monkeypatch: Any) -> None:
    # the world's range is months old: past the default void horizon (35 days), and opened
    status, opened = open_backfill(scope(mode="replace"), key="bf-old")
    assert (status, opened["mode"]) == (201, "replace")
    # a range not on whole hours: an hour's cell would hold events kept and events replaced
    status, answer = open_backfill(
        scope(mode="replace", start=(START + day(0, 1)).replace(minute=30).isoformat())
    )
    assert (status, answer["error"]["code"], answer["error"]["param"]) == (
        400,
        "backfill_replace_whole_hours",
        "start",
    )


def test_a_replace_over_many_stored_events_is_left_to_the_billing_worker(
    world: World, stored: None, monkeypatch: Any
) -> None:
    from neruba.logic.billing import backfill_commit, backfill_replace
    from neruba.logic.ingest import voids

    # GIVEN a commit of more than 3 events is left to the worker, and a replace holding 1 event over a
    # range with 3 stored ones (4 events to count or void)
    monkeypatch.setattr(backfill_commit, "INLINE_EVENTS", 3)
    backfill = _replace_day0(calls("r0", START + day(0, 6), 1))
    voided: list[str] = []
    void = voids.void_event

    def voiding(request: Any, *args: Any, **kwargs: Any) -> Any:
        voided.append(request.transaction_id)
        return void(request, *args, **kwargs)

    monkeypatch.setattr(backfill_replace, "void_event", voiding)

    status, done = act(backfill, "commit")

    # THEN the request voids nothing: the worker does it
    assert (status, done["status"]) == (200, "committing")
    assert voided == [] and _rated(world, 0) == 3 * PRICE
    monkeypatch.setattr(backfill_replace, "void_event", void)
    work(world, START + day(2, 6), monkeypatch)
    assert read(f"/admin/backfills/{backfill}", backfill_id=backfill)[1]["status"] == "committed"
    assert [_status(world, f"s0-{i}") for i in range(3)] == ["voided"] * 3
    assert _rated(world, 0) == 1 * PRICE
    assert_books_agree(world, "acme")
