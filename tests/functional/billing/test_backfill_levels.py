"""A backfill on a level meter (seats reported as changes on a ``weighted_sum`` meter): a seat added in
the middle of a finalized day is billed on that day by the time it was held, and on the next finalized
day, whose opening level it raises, in full (docs/billing.md, "Backfills")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.functional.billing.backfill_support import act, open_backfill, read
from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_prorated_meters import _seats
from tests.functional.billing.test_prorated_meters import seats as seat_plan

seats = seat_plan  # the fixture, under the name the test asks for

SEAT_DAY = 2400  # the "team" plan: 24.00 per seat-day


def test_a_seat_added_by_a_backfill_bills_both_days_once(
    real: World, seats: dict[str, Any], monkeypatch: Any
) -> None:
    # GIVEN 2 seats from day 0; days 0 and 1 billed and finalized
    _seats(START, 2)
    for d in range(3):
        schedule(real, START + day(d, 3))
        work(real, START + day(d, 3), monkeypatch)
    schedule(real, START + day(2, 5))
    usage = [i for i in real.invoices("acme") if i["kind"] == "usage"]
    assert [(i["status"], i["subtotal_minor"]) for i in usage] == [("finalized", 2 * SEAT_DAY)] * 2
    # WHEN a backfill adds a third seat at 12:00 on day 0
    body = {
        "customer_ids": ["acme"],
        "meter_codes": ["seat_changes"],
        "start": START.isoformat(),
        "end": (START + day(2)).isoformat(),
        "reason": "seat sync missed",
    }
    _, bf = open_backfill(body)
    event = {"transaction_id": "seat-3", "customer_id": "acme", "code": "seat_changes"}
    event |= {"timestamp": (START + timedelta(hours=12)).isoformat(), "properties": {"d": 1}}
    from functions.billing_api.app import lambda_handler
    from tests.support.api import api_event, call

    path = f"/admin/backfills/{bf['id']}/events"
    call(
        lambda_handler,
        api_event("POST", path, body={"events": [event]}, path_parameters={"backfill_id": bf["id"]}),
    )
    _, preview = read(f"/admin/backfills/{bf['id']}/preview", backfill_id=bf["id"])
    status, done = act(bf["id"], "commit")

    # THEN the preview shows day 0 (half a seat-day more: the preview does not move the level day 1
    # opens at); the commit bills day 0 by the 12 hours held and day 1, which now opens at 3 seats, in full
    assert [r["difference_minor"] for r in preview["invoices"]][:1] == [SEAT_DAY // 2]
    assert status == 200 and done["status"] == "committed"
    assert [i["amount_minor"] for i in done["committed"]["invoices"]] == [SEAT_DAY // 2, SEAT_DAY]
    subscription = usage[0]["subscription_id"]
    assert sorted(a.line["amount_minor"] for a in real.ctx.billing.adjustments(subscription)) == [
        SEAT_DAY // 2,
        SEAT_DAY,
    ]
    # AND the next window (its late look-back re-rates days 0 and 1) finds nothing more to bill
    schedule(real, START + day(3, 3))
    work(real, START + day(3, 3), monkeypatch)
    assert sorted(a.line["amount_minor"] for a in real.ctx.billing.adjustments(subscription)) == [
        SEAT_DAY // 2,
        SEAT_DAY,
    ]
    assert_books_agree(real, "acme")
