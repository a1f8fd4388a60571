"""Held events under the transaction id of a stored event (docs/billing.md, "Held events under a stored
transaction id"): a replace supersedes a stored event with other content (wherever its time), any backfill
counts a held event as the new content of a voided one, both as an amend's corrected copy linked to the
backfill; a revert gives the originals back and voids the copies; every step exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import (
    PRICE,
    act,
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
    """acme's day 0 (3 calls, s0-*) and day 1 (4 calls, s1-*) counted live, billed and finalized."""
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


def _event(world: World, tx: str) -> Any:
    event = world.ctx.usage.get_event("acme", tx)
    assert event is not None, tx
    return event


def _copy_of(world: World, tx: str) -> Any:
    from neruba import jsonutil

    record = jsonutil.loads(_event(world, tx).void_json or "{}")
    assert record.get("amended_by"), tx
    return _event(world, str(record["amended_by"]))


def _void(transaction_id: str) -> None:
    from neruba.logic.ingest.voids import VoidRequest, void_event

    request = VoidRequest("acme", transaction_id, "wrong export", "OPS-7")
    void_event(request, "key:op", f"v-{transaction_id}", "req-v", START + day(2, 4))


def _open(mode: str, first: int, last: int, key: str) -> str:
    body = scope(mode=mode, start=(START + day(first)).isoformat(), end=(START + day(last + 1)).isoformat())
    status, bf = open_backfill(body, key=key)
    assert status == 201, bf
    return str(bf["id"])


def _at(d: int, h: int) -> str:
    return (START + day(d, h)).isoformat()


def _reexport(key: str = "bf-re") -> str:
    """A replace of day 0 re-exported from the warehouse: s0-0 unchanged, s0-1 at another hour, s1-0
    (stored on day 1) moved into day 0, one new event; s0-2 left out."""
    backfill = _open("replace", 0, 0, key)
    held = [
        {"transaction_id": "s0-0", "timestamp": _at(0, 2)},
        {"transaction_id": "s0-1", "timestamp": _at(0, 6)},
        {"transaction_id": "s1-0", "timestamp": _at(0, 7)},
        {"transaction_id": "r0-0", "timestamp": _at(0, 8)},
    ]
    status, answer = events(backfill, held)
    assert (status, answer["held"], answer["rejected"]) == (200, 4, 0), answer
    return backfill


def test_a_replace_under_the_same_ids_supersedes_the_stored_events(
    world: World, stored: None, monkeypatch: Any
) -> None:
    backfill = _reexport()

    # THEN the preview shows day 0 with s0-0, both corrected copies and r0-0, day 1 without s1-0
    status, preview = read(f"/admin/backfills/{backfill}/preview", backfill_id=backfill)
    assert status == 200, preview
    rows = {r["period_start"][:10]: r for r in preview["invoices"]}
    day0, day1 = rows[START.date().isoformat()], rows[(START + day(1)).date().isoformat()]
    assert (day0["before_minor"], day0["after_minor"]) == (3 * PRICE, 4 * PRICE)
    assert (day1["before_minor"], day1["after_minor"]) == (4 * PRICE, 3 * PRICE)
    assert (preview["events_counted"], preview["events_superseded"], preview["events_replaced"]) == (3, 2, 1)

    status, done = act(backfill, "commit")

    assert (status, done["status"]) == (200, "committed"), done
    committed = done["committed"]
    assert (committed["events_counted"], committed["events_not_counted"]) == (3, 1)
    assert (committed["events_superseded"], committed["events_replaced"]) == (2, 1)
    assert _event(world, "s0-0").status == "accepted"  # the same content: it stands
    assert _event(world, "s0-2").status == "voided"  # replaced
    for tx, at in (("s0-1", _at(0, 6)), ("s1-0", _at(0, 7))):
        assert _event(world, tx).status == "voided"
        copy = _copy_of(world, tx)
        assert (copy.status, copy.amends, copy.timestamp[:19]) == ("accepted", tx, at[:19])
        assert (copy.copy_id or "").startswith(f"{backfill}:")
    assert (_rated(world, 0), _rated(world, 1)) == (4 * PRICE, 3 * PRICE)

    # the events answer shows the original voided (naming its copy) and the copy amending it
    from neruba.logic.ingest.reads import event_document

    original = event_document(_event(world, "s0-1"))
    copies = [_copy_of(world, tx) for tx in ("s0-1", "s1-0")]
    assert original["status"] == "voided" and original["void"]["kind"] == "amend"
    assert original["void"]["amended_by"] == copies[0].transaction_id
    assert event_document(copies[0])["amends"] == "s0-1"

    # the next window carries both days' differences; explain names the backfill on each
    schedule(world, START + day(3, 3))
    work(world, START + day(3, 3), monkeypatch)
    totals = usage_totals(world)
    assert (totals[ts(START)], totals[ts(START + day(1))]) == (4 * PRICE, 3 * PRICE)
    [carrying] = [i for i in world.invoices("acme") if any(ln["kind"] == "adjustment" for ln in i["lines"])]
    _, explained = read(f"/v1/invoices/{carrying['id']}/explain", invoice_id=carrying["id"])
    shown = [ln for ln in explained["lines"] if ln["kind"] == "adjustment"]
    assert sorted(ln["amount_minor"] for ln in shown) == [-PRICE, PRICE]
    assert {ln["backfill"]["backfill_id"] for ln in shown} == {backfill}
    assert_books_agree(world, "acme")

    # WHEN it is reverted: the originals come back, the copies and r0-0 are voided
    status, reverted = act(backfill, "revert", key="rv")
    assert (status, reverted["status"]) == (200, "reverted"), reverted
    assert reverted["reverted"]["events_restored"] == 3  # s0-2, s0-1, s1-0
    statuses = [_event(world, t).status for t in ("s0-0", "s0-1", "s0-2", "s1-0", "r0-0")]
    assert statuses == ["accepted"] * 4 + ["voided"]
    assert [_event(world, c.transaction_id).status for c in copies] == ["voided", "voided"]
    assert (_rated(world, 0), _rated(world, 1)) == (3 * PRICE, 4 * PRICE)
    assert_books_agree(world, "acme")

    # a live re-send of a corrected id stays a duplicate
    assert live_events(world, ["s0-1"], START + day(0, 2), "again") == {"duplicate": 1}


def test_a_voided_id_is_counted_as_new_content_in_add_mode(world: World) -> None:
    world.subscribe("acme")
    live_events(world, ["c8-1", "c8-2"], START + day(2, 3), "live-c8")
    _void("c8-1")
    assert _rated(world, 2) == PRICE
    backfill = _open("add", 0, 3, "bf-c8")
    same = [{"transaction_id": t, "timestamp": _at(2, 3)} for t in ("c8-1", "c8-2")]
    _, answer = events(backfill, same)
    assert [e["status"] for e in answer["events"]] == ["held", "held"]

    _, preview = read(f"/admin/backfills/{backfill}/preview", backfill_id=backfill)
    assert preview["events_counted"] == 1

    done = act(backfill, "commit")[1]

    assert (done["committed"]["events_counted"], done["committed"]["events_not_counted"]) == (1, 1)
    original = _event(world, "c8-1")
    assert original.status == "voided"
    copy = _copy_of(world, "c8-1")
    assert (copy.status, copy.amends) == ("accepted", "c8-1")
    assert _rated(world, 2) == 2 * PRICE

    # the revert voids the copy; the original was voided before the backfill and stays so
    reverted = act(backfill, "revert", key="rv")[1]
    assert reverted["status"] == "reverted" and reverted["reverted"]["events_restored"] == 0
    assert (_event(world, "c8-1").status, _copy_of(world, "c8-1").status) == ("voided", "voided")
    assert _rated(world, 2) == PRICE


def test_an_add_backfill_keeps_a_live_event_with_other_content_and_names_it(world: World) -> None:
    # GIVEN c5 and c6 counted live on day 2, and an add backfill holding c5 at another hour, c6 as it
    # was stored, and a new event
    world.subscribe("acme")
    live_events(world, ["c5", "c6"], START + day(2, 3), "live-c5")
    backfill = _open("add", 0, 3, "bf-c5")
    held = [
        {"transaction_id": "c5", "timestamp": _at(2, 9)},
        {"transaction_id": "c6", "timestamp": _at(2, 3)},
        {"transaction_id": "n1", "timestamp": _at(1, 4)},
    ]
    events(backfill, held)

    # WHEN it is previewed, then committed
    shown = read(f"/admin/backfills/{backfill}/preview", backfill_id=backfill)[1]
    done = act(backfill, "commit")[1]

    # THEN the live c5 stands (an add counts on top of what is stored: as a live conflict) and c6 is the
    # same event; only n1 is counted, and both answers name c5 as held with other content than stored
    conflict = [{"customer_id": "acme", "transaction_id": "c5"}]
    assert (shown["events_counted"], shown["events_conflicting"], shown["conflicting"]) == (1, 1, conflict)
    committed = done["committed"]
    assert (committed["events_counted"], committed["events_not_counted"]) == (1, 2)
    assert (committed["events_conflicting"], committed["conflicting"]) == (1, conflict)
    assert _event(world, "c5").status == "accepted" and _rated(world, 2) == 2 * PRICE


def test_a_stored_event_of_another_meter_is_refused(world: World) -> None:
    from neruba.models.catalog import Meter

    world.ctx.plans.create_meter(Meter(code="storage", name="Storage", aggregation="count"))
    world.subscribe("acme")
    live_events(world, ["m1"], START + day(2, 3), "live-m1")
    body = scope(mode="replace", meter_codes=["storage"], start=_at(2, 0), end=_at(3, 0))
    _, opened = open_backfill(body, key="bf-m")
    held = [{"transaction_id": "m1", "code": "storage", "timestamp": _at(2, 5)}]
    _, answer = events(opened["id"], held)
    assert (answer["held"], answer["rejected"]) == (0, 1)
    error = answer["events"][0]["error"]
    assert (error["code"], error["param"]) == ("event_id_stored_under_other_meter", "events.0.transaction_id")


def test_a_live_event_of_another_meter_after_the_hold_refuses_the_commit(world: World) -> None:
    from neruba.models.catalog import Meter

    world.ctx.plans.create_meter(Meter(code="storage", name="Storage", aggregation="count"))
    world.subscribe("acme")
    body = scope(mode="replace", meter_codes=["storage"], start=_at(2, 0), end=_at(3, 0))
    _, opened = open_backfill(body, key="bf-m2")
    events(opened["id"], [{"transaction_id": "m2", "code": "storage", "timestamp": _at(2, 5)}])
    live_events(world, ["m2"], START + day(2, 3), "live-m2")
    for status, answer in (
        read(f"/admin/backfills/{opened['id']}/preview", backfill_id=opened["id"]),
        act(opened["id"], "commit", key="cm"),
    ):
        assert status == 409 and answer["error"]["code"] == "backfill_event_ids_taken"
        assert answer["error"]["details"][0]["code"] == "event_id_stored_under_other_meter"
    assert read(f"/admin/backfills/{opened['id']}", backfill_id=opened["id"])[1]["status"] == "open"


def test_killed_between_the_void_of_the_original_and_the_count_of_its_copy(
    world: World, stored: None, monkeypatch: Any
) -> None:
    from neruba.logic.ingest import voids

    backfill = _reexport("bf-kill")
    finish = voids.finish

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(voids, "finish", dying)
    with pytest.raises(Killed):
        act(backfill, "commit")
    monkeypatch.setattr(voids, "finish", finish)
    # the first amend's transaction stands: an original voided, its copy stored but not counted yet
    assert read(f"/admin/backfills/{backfill}", backfill_id=backfill)[1]["status"] == "committing"

    done = act(backfill, "commit", key="c-2")[1]
    again = act(backfill, "commit", key="c-3")[1]

    assert done["status"] == "committed" and again == done
    assert (done["committed"]["events_counted"], done["committed"]["events_superseded"]) == (3, 2)
    assert (_rated(world, 0), _rated(world, 1)) == (4 * PRICE, 3 * PRICE)
    from neruba import bootstrap

    assert bootstrap.voids().open_voids() == []
    assert_books_agree(world, "acme")


def test_a_commit_out_of_time_goes_on_one_correction_per_run(
    world: World, stored: None, monkeypatch: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from neruba.logic.billing import backfill_commit
    from neruba.logic.billing.backfill_budget import Budget, DeadlineReachedError

    backfill = _reexport("bf-slow")
    monkeypatch.setattr(backfill_commit, "INLINE_EVENTS", 0)  # left to the worker's runs below
    assert act(backfill, "commit")[1]["status"] == "committing"
    runs = 0
    while True:
        runs += 1
        past = datetime.now(UTC) - timedelta(seconds=1)
        try:
            backfill_commit.run_steps(world.ctx, backfill, "op", None, START + day(3), Budget(past))
            break
        except DeadlineReachedError:
            assert runs < 30
    # two corrections, a void, a batch and the reruns, at least one new unit per run
    assert runs >= 5
    assert read(f"/admin/backfills/{backfill}", backfill_id=backfill)[1]["committed"]["events_counted"] == 3
    assert (_rated(world, 0), _rated(world, 1)) == (4 * PRICE, 3 * PRICE)
    assert_books_agree(world, "acme")


def test_the_same_held_id_in_two_backfills(world: World, stored: None) -> None:
    # GIVEN replace A moving s0-1 to hour 6, committed; then replace B moving it to hour 8
    first = _open("replace", 0, 0, "bf-a")
    events(first, [{"transaction_id": "s0-1", "timestamp": _at(0, 6)}])
    assert act(first, "commit", key="ca")[1]["status"] == "committed"
    second = _open("replace", 0, 0, "bf-b")
    events(second, [{"transaction_id": "s0-1", "timestamp": _at(0, 8)}])

    done = act(second, "commit", key="cb")[1]

    # THEN B supersedes A's copy: one live version of s0-1, at hour 8
    assert (done["committed"]["events_counted"], done["committed"]["events_superseded"]) == (1, 1)
    copy_a = _copy_of(world, "s0-1")
    assert copy_a.status == "voided"
    copy_b = _copy_of(world, copy_a.transaction_id)
    assert (copy_b.status, copy_b.timestamp[11:13]) == ("accepted", "08")
    assert _rated(world, 0) == PRICE

    # A's revert waits for B's; in reverse order everything comes back
    assert act(first, "revert", key="ra")[1]["error"]["code"] == "backfill_superseded"
    assert act(second, "revert", key="rb")[1]["status"] == "reverted"
    assert (_event(world, copy_a.transaction_id).status, _event(world, copy_b.transaction_id).status) == (
        "accepted",
        "voided",
    )
    assert _rated(world, 0) == PRICE
    assert act(first, "revert", key="ra2")[1]["status"] == "reverted"
    assert [_event(world, f"s0-{i}").status for i in range(3)] == ["accepted"] * 3
    assert _rated(world, 0) == 3 * PRICE
    assert_books_agree(world, "acme")


def test_a_revert_killed_midway_and_sent_again(world: World, stored: None) -> None:
    from neruba.logic.billing import backfill_revert

    backfill = _reexport("bf-rk")
    assert act(backfill, "commit")[1]["status"] == "committed"
    copies = [_copy_of(world, tx) for tx in ("s0-1", "s1-0")]
    void_events = backfill_revert.void_events

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    # killed after the originals are restored, before the copies are voided
    backfill_revert.void_events = dying  # type: ignore[assignment]
    try:
        with pytest.raises(Killed):
            act(backfill, "revert", key="rv")
    finally:
        backfill_revert.void_events = void_events  # type: ignore[assignment]
    assert _event(world, "s0-1").status == "accepted"

    done = act(backfill, "revert", key="rv-2")[1]
    assert done["status"] == "reverted"
    assert done["reverted"]["events_restored"] == 3
    assert [_event(world, c.transaction_id).status for c in copies] == ["voided", "voided"]
    assert [_event(world, t).status for t in ("s0-1", "s1-0", "s0-2", "r0-0")] == ["accepted"] * 3 + [
        "voided"
    ]
    assert (_rated(world, 0), _rated(world, 1)) == (3 * PRICE, 4 * PRICE)
    assert_books_agree(world, "acme")


def test_a_replace_revert_waits_for_a_later_backfill_that_corrected_an_event_it_gives_back(
    world: World, stored: None
) -> None:
    # GIVEN replace A of day 0 (its three stored events voided), then add B sending s0-1 again as it was
    first = _open("replace", 0, 0, "bf-ra")
    events(first, [{"transaction_id": "r0-0", "timestamp": _at(0, 8)}])
    assert act(first, "commit", key="ca")[1]["committed"]["events_replaced"] == 3
    second = _open("add", 0, 0, "bf-rb")
    events(second, [{"transaction_id": "s0-1", "timestamp": _at(0, 2)}])
    assert act(second, "commit", key="cb")[1]["committed"]["events_counted"] == 1
    assert _rated(world, 0) == 2 * PRICE  # r0-0 and s0-1's new content

    # THEN A's revert (which would give s0-1 back beside B's copy) waits for B's
    status, refused = act(first, "revert", key="ra")
    assert (status, refused["error"]["code"]) == (409, "backfill_superseded")
    assert refused["error"]["details"] == [{"backfill_id": second}]
    assert act(second, "revert", key="rb")[1]["status"] == "reverted"
    assert _rated(world, 0) == PRICE
    assert act(first, "revert", key="ra2")[1]["status"] == "reverted"
    assert [_event(world, f"s0-{i}").status for i in range(3)] == ["accepted"] * 3
    assert _rated(world, 0) == 3 * PRICE
    assert_books_agree(world, "acme")


def test_a_revert_out_of_time_goes_on_one_restore_or_void_per_run(
    world: World, stored: None, monkeypatch: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from neruba.logic.billing import backfill_commit, backfill_revert
    from neruba.logic.billing.backfill_budget import Budget, DeadlineReachedError

    backfill = _reexport("bf-slow-revert")
    assert act(backfill, "commit")[1]["status"] == "committed"
    copies = [_copy_of(world, tx) for tx in ("s0-1", "s1-0")]
    monkeypatch.setattr(backfill_commit, "INLINE_EVENTS", 0)  # left to the worker's runs below
    assert act(backfill, "revert", key="rv")[1]["status"] == "reverting"
    runs = 0
    while True:
        runs += 1
        past = datetime.now(UTC) - timedelta(seconds=1)
        try:
            backfill_revert.run_steps(world.ctx, backfill, "op", None, START + day(3), Budget(past))
            break
        except DeadlineReachedError:
            assert runs < 30
    # three restores (s0-2 replaced, s0-1 and s1-0 superseded), three voids, the reruns
    assert runs >= 7
    done = read(f"/admin/backfills/{backfill}", backfill_id=backfill)[1]
    assert (done["reverted"]["events_restored"], done["reverted"]["events_voided"]) == (3, 3)
    assert [_event(world, c.transaction_id).status for c in copies] == ["voided", "voided"]
    assert (_rated(world, 0), _rated(world, 1)) == (3 * PRICE, 4 * PRICE)
    assert_books_agree(world, "acme")
