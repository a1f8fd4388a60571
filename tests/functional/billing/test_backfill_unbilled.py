"""Backfill events at a time no subscription of their customer covers: counted, billed by no invoice,
and reported by the preview and the commit (``events_unbilled``, per customer and reason)."""

from __future__ import annotations

from typing import Any

from neruba.timefmt import iso_z
from tests.functional.billing.backfill_support import act, calls, events, open_backfill, read, scope
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day


def test_events_outside_every_subscription_are_reported_before_and_after_the_commit(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN acme's only subscription ended after day 0; a backfill with 2 calls on day 0, 3 on day 2
    world.subscribe("acme", ended_at=(START + day(1)).isoformat())
    _, bf = open_backfill(scope())
    events(bf["id"], calls("in", START + day(0, 5), 2) + calls("out", START + day(2, 7), 3))
    expected = [
        {
            "customer_id": "acme",
            "reason": "no_subscription",
            "events": 3,
            "first_timestamp": iso_z(START + day(2, 7)),
            "last_timestamp": iso_z(START + day(2, 7)),
        }
    ]

    # WHEN it is previewed, THEN the 3 calls no invoice bills are named
    _, preview = read(f"/admin/backfills/{bf['id']}/preview", backfill_id=bf["id"])
    assert (preview["events_counted"], preview["events_unbilled"]) == (5, 3)
    assert preview["unbilled"] == expected

    # WHEN it is committed, THEN its record says the same
    status, done = act(bf["id"], "commit")
    assert status == 200, done
    committed = done["committed"]
    assert (committed["events_counted"], committed["events_unbilled"]) == (5, 3)
    assert committed["unbilled"] == expected


def test_events_of_the_hours_a_subscription_starts_and_ends_in_are_billed_not_reported(
    world: World, monkeypatch: Any
) -> None:
    from datetime import timedelta

    from tests.functional.billing.helpers import schedule, work

    # GIVEN acme subscribed from day 0, 00:30 to day 1, 00:30 (its one daily window billed), and a
    # backfill with a call at 00:10 on day 0 (before the start, in its first hour) and at 00:50 on day 1
    # (after the end, in its last hour): usage is kept per hour, so those hours are the subscription's
    begin, end = START + timedelta(minutes=30), START + day(1) + timedelta(minutes=30)
    world.subscribe("acme", begin, ended_at=end.isoformat())
    schedule(world, START + day(1, 3))
    work(world, START + day(1, 3), monkeypatch)
    _, bf = open_backfill(scope(start=START.isoformat()))
    early, late = START + timedelta(minutes=10), START + day(1) + timedelta(minutes=50)
    events(bf["id"], calls("early", early, 1) + calls("late", late, 1))

    # WHEN it is previewed and committed
    _, preview = read(f"/admin/backfills/{bf['id']}/preview", backfill_id=bf["id"])
    status, done = act(bf["id"], "commit")

    # THEN nothing is reported unbilled, and the window rating those hours is named as corrected, by 2 calls
    assert status == 200, done
    assert (preview["events_unbilled"], done["committed"]["events_unbilled"]) == (0, 0)
    [row] = preview["invoices"]
    assert row["subtotal_difference_minor"] == 20 and len(done["committed"]["invoices"]) == 1
    # AND the commit's record attributes both calls to the backfill (what they changed on that invoice)
    [corrected] = done["committed"]["invoices"]
    assert corrected["amount_minor"] == 20, corrected
