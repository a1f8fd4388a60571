"""Held events under the transaction id of a stored event the commit could not count over (voided, or
with other content in a replace) are refused explicitly, never silently "not counted" (docs/billing.md,
"Held events under a stored transaction id")."""

from __future__ import annotations

from typing import Any

from tests.functional.billing.backfill_support import act, events, live_events, open_backfill, read, scope
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day


def _void(transaction_id: str) -> None:
    from neruba.logic.ingest.voids import VoidRequest, void_event

    request = VoidRequest("acme", transaction_id, "wrong export", "OPS-7")
    void_event(request, "key:op", f"v-{transaction_id}", "req-v", START + day(2, 4))


def _day2_replace(key: str) -> dict[str, Any]:
    body = scope(mode="replace", start=(START + day(2)).isoformat(), end=(START + day(3)).isoformat())
    status, bf = open_backfill(body, key=key)
    assert status == 201
    return dict(bf)


def test_corrected_events_under_stored_ids_are_refused_when_sent(world: World) -> None:
    # GIVEN two calls of day 2 stored live, the first voided by an operator
    world.subscribe("acme")
    live_events(world, ["c7-d2-1", "c7-d2-2"], START + day(2, 3), "live-c7")
    _void("c7-d2-1")

    # WHEN a replace over the whole day is sent corrected copies under the same ids (another hour)
    bf = _day2_replace("bf-c7")
    corrected = [
        {"transaction_id": t, "timestamp": (START + day(2, 9)).isoformat()} for t in ("c7-d2-1", "c7-d2-2")
    ]
    status, answer = events(bf["id"], corrected)

    # THEN both are refused with a code naming why, counted as rejected, and nothing is held
    assert status == 200
    assert (answer["held"], answer["rejected"]) == (0, 2)
    codes = [(e["status"], e["error"]["code"], e["error"]["param"]) for e in answer["events"]]
    assert codes == [
        ("rejected", "event_id_taken_by_voided_event", "events.0.transaction_id"),
        ("rejected", "event_id_stored_with_other_content", "events.1.transaction_id"),
    ]
    assert read(f"/admin/backfills/{bf['id']}", backfill_id=bf["id"])[1]["events_held"] == 0


def test_a_voided_id_is_refused_in_add_mode_too_and_a_same_content_copy_is_held(world: World) -> None:
    world.subscribe("acme")
    live_events(world, ["c8-1", "c8-2"], START + day(2, 3), "live-c8")
    _void("c8-1")
    _, bf = open_backfill(scope(), key="bf-c8")
    same = [{"transaction_id": t, "timestamp": (START + day(2, 3)).isoformat()} for t in ("c8-1", "c8-2")]
    _, answer = events(bf["id"], same)
    assert [e["status"] for e in answer["events"]] == ["rejected", "held"]
    assert answer["events"][0]["error"]["code"] == "event_id_taken_by_voided_event"


def test_a_held_event_voided_by_another_replace_refuses_preview_and_commit(world: World) -> None:
    # GIVEN live c2B; replace A holds c2A, replace B holds c2B (the same content as the live one)
    world.subscribe("acme")
    live_events(world, ["c2B"], START + day(2, 3), "live-c2")
    a, b = _day2_replace("bf-a"), _day2_replace("bf-b")
    assert (
        events(a["id"], [{"transaction_id": "c2A", "timestamp": (START + day(2, 5)).isoformat()}])[1]["held"]
        == 1
    )
    assert (
        events(b["id"], [{"transaction_id": "c2B", "timestamp": (START + day(2, 3)).isoformat()}])[1]["held"]
        == 1
    )

    # WHEN A's commit voids live c2B (A does not hold it)
    status, done = act(a["id"], "commit", key="ca")
    assert status == 200 and done["committed"]["events_replaced"] == 1

    # THEN B's preview and commit refuse with 409 naming c2B; B stays open, nothing written
    for status, answer in (
        read(f"/admin/backfills/{b['id']}/preview", backfill_id=b["id"]),
        act(b["id"], "commit", key="cb"),
    ):
        assert status == 409
        assert answer["error"]["code"] == "backfill_event_ids_taken"
        assert answer["error"]["details"] == [
            {"customer_id": "acme", "transaction_id": "c2B", "code": "event_id_taken_by_voided_event"}
        ]
    assert read(f"/admin/backfills/{b['id']}", backfill_id=b["id"])[1]["status"] == "open"
    stored = world.ctx.usage.get_event("acme", "c2B")
    assert stored is not None and stored.status == "voided"
    assert not (stored.copy_id or "").startswith(b["id"])


def test_a_live_copy_with_other_content_after_the_hold_refuses_the_commit(world: World) -> None:
    world.subscribe("acme")
    bf = _day2_replace("bf-c9")
    events(bf["id"], [{"transaction_id": "c9", "timestamp": (START + day(2, 5)).isoformat()}])
    live_events(world, ["c9"], START + day(2, 3), "live-c9")
    status, answer = act(bf["id"], "commit", key="c9")
    assert status == 409 and answer["error"]["details"][0]["code"] == "event_id_stored_with_other_content"
    assert read(f"/admin/backfills/{bf['id']}", backfill_id=bf["id"])[1]["status"] == "open"
