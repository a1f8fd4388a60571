"""The counts of ``POST /admin/backfills/{id}/events``: one per status, each equal to the number of
events answered with that status."""

from __future__ import annotations

from tests.functional.billing.backfill_support import calls, events, open_backfill, scope
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day


def test_the_counts_are_one_per_status_and_agree_with_the_events(world: World) -> None:
    _, bf = open_backfill(scope())
    sent = calls("k", START + day(0, 5), 3)
    events(bf["id"], sent[:2])

    # WHEN one new event, one repeat, one other body under a held id and one refused event come in
    late = {"transaction_id": "late", "timestamp": (START + day(9)).isoformat()}
    status, result = events(bf["id"], [sent[2], sent[0], {**sent[1], "properties": {"x": "1"}}, late])

    # THEN each count is the number of events with that status
    assert status == 200, result
    assert [e["status"] for e in result["events"]] == ["held", "duplicate", "conflict", "rejected"]
    counts = {name: result[name] for name in ("held", "duplicate", "conflict", "rejected")}
    assert counts == {"held": 1, "duplicate": 1, "conflict": 1, "rejected": 1}
