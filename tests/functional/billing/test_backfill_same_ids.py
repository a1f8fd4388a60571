"""A replace backfill re-exporting corrected events under the ids of stored ones (one of them voided):
the corrected content must be counted, once (docs/billing.md, "Replacing the events of a range")."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.backfill_support import act, events, live_events, open_backfill, read, scope
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day


@pytest.mark.xfail(
    strict=True,
    reason="not fixed yet: a held event whose id matches a stored voided (or replaced) event is not counted",
)
def test_corrected_events_under_stored_ids_are_counted(world: World, monkeypatch: Any) -> None:
    from neruba.logic.ingest.voids import VoidRequest, void_event
    from neruba.timefmt import parse_ts

    # GIVEN two calls of day 2 stored live, the first voided by an operator
    world.subscribe("acme")
    live_events(world, ["c7-d2-1", "c7-d2-2"], START + day(2, 3), "live-c7")
    request = VoidRequest(
        "acme",
        "c7-d2-1",
        "wrong export",
        "OPS-7",
    )
    void_event(request, "key:op", "v-c7", "req-v", START + day(2, 4))

    # WHEN a replace over the whole day holds corrected copies under the same ids (another hour)
    body = scope(mode="replace", start=(START + day(2)).isoformat(), end=(START + day(3)).isoformat())
    _, bf = open_backfill(body)
    corrected = [
        {"transaction_id": t, "timestamp": (START + day(2, 9)).isoformat()} for t in ("c7-d2-1", "c7-d2-2")
    ]
    events(bf["id"], corrected)

    # THEN the preview and the commit count both corrected events, and the events hold the new content
    _, preview = read(f"/admin/backfills/{bf['id']}/preview", backfill_id=bf["id"])
    assert preview["events_counted"] == 2
    done = act(bf["id"], "commit")[1]["committed"]
    assert (done["events_counted"], done["events_not_counted"]) == (2, 0)
    for tx in ("c7-d2-1", "c7-d2-2"):
        event = world.ctx.usage.get_event("acme", tx)
        assert event is not None and event.status == "accepted"
        assert parse_ts(event.timestamp) == START + day(2, 9)
