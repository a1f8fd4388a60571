"""Plans billed by the day, the week and the quarter, end to end: plans and subscriptions through the admin
API handler, previews through the read API handler, invoices from the real scheduler and billing worker
(real pricing engine, real ledger, production periods of ``domain.periods``) on moto.

Expected amounts are computed here by hand from the timestamps the API returned (see
``test_lifecycle_money``), never by calling the pricing code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from neruba.dal.dynamo import to_item
from neruba.settings import get_settings
from tests.functional.billing import test_lifecycle_money as money
from tests.functional.billing.conftest import World, assert_books_agree
from tests.functional.billing.helpers import billing_state, schedule, stored_invoice, work
from tests.functional.billing.test_lifecycle_money import (
    HOUR,
    Api,
    amounts,
    bill,
    cancel_now,
    invoices_of,
    prorated,
    subscribe,
    ts,
    usage,
)

admin, reader, billing = money.admin, money.reader, money.billing  # the same stack as those tests
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


def publish(admin: Api, code: str, interval: str, **body: Any) -> dict[str, Any]:
    plan = {"code": code, "name": code.title(), "currency": "USD", "interval": interval, "charges": []}
    status, created = admin("POST", "/v1/plans", {**plan, **body})
    assert status == 201, created
    return created


def spans(invoices: list[dict[str, Any]]) -> list[tuple[str, datetime, datetime]]:
    return [(i["kind"], ts(i["period_start"]), ts(i["period_end"])) for i in invoices]


def test_plan_intervals_are_validated_naming_the_allowed_values(admin: Api, reader: Api) -> None:
    # WHEN a plan asks for an interval that does not exist
    status, body = admin(
        "POST", "/v1/plans", {"code": "odd", "name": "Odd", "currency": "USD", "interval": "fortnight"}
    )
    # THEN it is refused with the field, and the message lists the five allowed intervals
    assert status == 422, body
    assert body["error"]["code"] == "validation_error"
    (detail,) = body["error"]["details"]
    assert (detail["param"], detail["code"]) == ("interval", "literal_error")
    assert detail["message"] == "'interval' must be one of 'day', 'week', 'month', 'quarter' or 'year'."
    assert reader("/v1/plans/odd", plan_code="odd")[0] == 404  # nothing was written

    # AND each of the five is accepted and read back as given
    for interval in ("day", "week", "month", "quarter", "year"):
        publish(admin, f"p-{interval}", interval)
        status, plan = reader(f"/v1/plans/p-{interval}", plan_code=f"p-{interval}")
        assert (status, plan["interval"]) == (200, interval)


def test_a_daily_plan_is_billed_day_by_day(admin: Api, reader: Api, billing: World, monkeypatch: Any) -> None:
    # GIVEN a daily plan: 1.00 in advance, 1.00 per call; subscribed three days ago at hh:00 UTC
    publish(
        admin,
        "daily",
        "day",
        fixed_fee={"amount": "1.00", "timing": "advance"},
        charges=[{"meter_code": "api_calls", "model": "per_unit", "unit_price": "1.00"}],
    )
    start = (datetime.now(UTC) - 3 * DAY).replace(minute=0, second=0, microsecond=0)
    sub = subscribe(admin, start, plan="daily")
    assert sub["interval"] == "day"
    for n, calls in enumerate((5, 7, 9)):  # one hour of usage inside each of the first three days
        usage("acme", start + n * DAY + (2 + n) * HOUR, calls)

    # WHEN the scheduler and the worker run one hour after each of the next three day boundaries
    for n in range(1, 4):
        bill(billing, start + n * DAY + HOUR, monkeypatch)

    # THEN there is the opening and one usage invoice per day, each [start + n days, start + n + 1 days),
    # with that day's usage and the next day's advance fee
    invoices = invoices_of(billing, "acme")
    assert spans(invoices) == [
        ("opening", start, start + DAY),
        *(("usage", start + n * DAY, start + (n + 1) * DAY) for n in range(3)),
    ]
    assert [amounts(i) for i in invoices] == [
        {"fixed_fee:advance:0": 100},
        {"usage:api_calls::0": 500, "fixed_fee:advance:0": 100},
        {"usage:api_calls::0": 700, "fixed_fee:advance:0": 100},
        {"usage:api_calls::0": 900, "fixed_fee:advance:0": 100},
    ]
    # AND the fourth day's window is due at its end, not before
    state = billing_state(billing, sub["id"])
    assert (state.next_seq, ts(state.due_at)) == (4, start + 4 * DAY)
    assert_books_agree(billing, "acme")

    # AND the preview shows the current day, [start + 3 days, start + 4 days)
    status, preview = reader("/v1/customers/acme/upcoming-invoice", customer_id="acme")
    assert status == 200, preview
    (window,) = preview["windows"]
    assert (ts(window["period_start"]), ts(window["period_end"])) == (start + 3 * DAY, start + 4 * DAY)


def test_a_weekly_plan_canceled_mid_week_credits_the_unused_days(
    admin: Api, billing: World, monkeypatch: Any
) -> None:
    # GIVEN a weekly plan: 7.00 in advance, 1.00 per call; subscribed ten days ago, so its second week
    # began three days ago; the opening billed the first week, the first week's window the second
    publish(
        admin,
        "weekly",
        "week",
        fixed_fee={"amount": "7.00", "timing": "advance"},
        charges=[{"meter_code": "api_calls", "model": "per_unit", "unit_price": "1.00"}],
    )
    start = (datetime.now(UTC) - 10 * DAY).replace(microsecond=0)
    sub = subscribe(admin, start, plan="weekly")
    usage("acme", start + 2 * DAY, 4)
    usage("acme", start + 8 * DAY, 6)
    bill(billing, start + WEEK + HOUR, monkeypatch)
    opening, first = invoices_of(billing, "acme")
    assert spans([opening, first]) == [("opening", start, start + WEEK), ("usage", start, start + WEEK)]
    assert (amounts(opening), amounts(first)) == (
        {"fixed_fee:advance:0": 700},
        {"usage:api_calls::0": 400, "fixed_fee:advance:0": 700},
    )

    # WHEN it is canceled now, mid-week, and the final window is billed
    ended = cancel_now(admin, sub)
    bill(billing, ended + HOUR, monkeypatch)

    # THEN the final window runs from the second week's start (the start's weekday and time) to the
    # cancellation, bills its usage, credits the unused part of the week's fee and bills no next week
    week = (start + WEEK, start + 2 * WEEK)
    assert week[0].weekday() == start.weekday()
    final = invoices_of(billing, "acme")[-1]
    assert spans([final]) == [("usage", week[0], ended)]
    credit = -prorated("7.00", (ended, week[1]), week)
    assert -500 < credit < -300  # about four of seven days
    assert amounts(final) == {"usage:api_calls::0": 600, "proration:credit:0": credit}
    # AND the state ended with it: nothing more is due, a later run bills nothing
    bill(billing, ended + 3 * WEEK, monkeypatch)
    assert len(invoices_of(billing, "acme")) == 3
    assert billing_state(billing, sub["id"]).status == "ended"
    assert_books_agree(billing, "acme")


def test_a_weekly_plan_change_mid_week_is_prorated_over_the_week(
    admin: Api, billing: World, monkeypatch: Any
) -> None:
    # GIVEN weekly plans at 7.00 and 14.00 in advance; subscribed nine days ago; the second week prepaid
    publish(admin, "small", "week", fixed_fee={"amount": "7.00", "timing": "advance"})
    publish(admin, "large", "week", fixed_fee={"amount": "14.00", "timing": "advance"})
    publish(admin, "monthly", "month", fixed_fee={"amount": "14.00", "timing": "advance"})
    start = (datetime.now(UTC) - 9 * DAY).replace(microsecond=0)
    sub = subscribe(admin, start, plan="small")
    bill(billing, start + WEEK + HOUR, monkeypatch)

    # WHEN the plan moves to another interval it is refused; to the larger weekly plan it takes effect now
    path = f"/v1/subscriptions/{sub['id']}/change-plan"
    status, body = admin("POST", path, {"plan_code": "monthly"}, subscription_id=sub["id"])
    assert (status, body["error"]["code"]) == (400, "incompatible_plan")
    status, changed = admin("POST", path, {"plan_code": "large"}, subscription_id=sub["id"])
    assert status == 200, changed
    at = ts(changed["phases"][-1]["start_at"])
    week = (start + WEEK, start + 2 * WEEK)
    assert week[0] < at < week[1]

    # AND the second week's window is billed at its end
    bill(billing, week[1] + HOUR, monkeypatch)

    # THEN it credits the small plan from the change to the week's end, charges the large one for the
    # same time, and bills the next week under the large plan
    final = invoices_of(billing, "acme")[-1]
    assert spans([final]) == [("usage", week[0], week[1])]
    assert amounts(final) == {
        "proration:credit:0": -prorated("7.00", (at, week[1]), week),
        "proration:charge:1": prorated("14.00", (at, week[1]), week),
        "fixed_fee:advance:1": 1400,
    }
    assert_books_agree(billing, "acme")


def test_the_scheduler_finds_quarterly_windows_clamped_at_month_ends(
    billing: World, monkeypatch: Any
) -> None:
    # GIVEN a quarterly plan and a subscription that started on 31 January 2026 (created then)
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import PlanCreate, SubscriptionCreate

    create_plan(
        billing.plans,
        PlanCreate.model_validate(
            {
                "code": "quarterly",
                "name": "Quarterly",
                "currency": "USD",
                "interval": "quarter",
                "fixed_fee": {"amount": "90.00", "timing": "advance"},
            }
        ),
    )
    start = datetime(2026, 1, 31, 12, tzinfo=UTC)
    body = SubscriptionCreate(customer_id="acme", plan_code="quarterly", start_at=start)
    sub = create_subscription(billing.plans, body, "quarterly-sub", now=start)

    # WHEN the scheduler first runs on 1 May (the opening and the first quarter are due) and then just
    # before and just after the second quarter ends
    runs = []
    for now in (
        datetime(2026, 5, 1, tzinfo=UTC),
        datetime(2026, 7, 31, 11, tzinfo=UTC),
        datetime(2026, 7, 31, 13, tzinfo=UTC),
    ):
        runs.append(schedule(billing, now).windows_found)
        work(billing, now, monkeypatch)

    # THEN the windows found are the opening and [31 Jan, 30 Apr), none before 31 July 12:00, then
    # [30 Apr, 31 Jul): the day clamps in April and comes back to the 31st in July
    assert runs == [2, 0, 1]
    invoices = invoices_of(billing, "acme")
    assert spans(invoices) == [
        ("opening", start, datetime(2026, 4, 30, 12, tzinfo=UTC)),
        ("usage", start, datetime(2026, 4, 30, 12, tzinfo=UTC)),
        ("usage", datetime(2026, 4, 30, 12, tzinfo=UTC), datetime(2026, 7, 31, 12, tzinfo=UTC)),
    ]
    assert [amounts(i) for i in invoices] == [{"fixed_fee:advance:0": 9000}] * 3
    state = billing_state(billing, sub["id"])
    assert ts(state.due_at) == datetime(2026, 10, 31, 12, tzinfo=UTC)


def test_late_events_days_back_on_a_daily_plan_are_billed_by_the_next_window(
    admin: Api, billing: World, monkeypatch: Any
) -> None:
    # GIVEN a daily plan at 1.00 per call, subscribed six days ago; days 0, 1 and 2 billed and finalized,
    # day 0 with 5 calls
    per_call = {"meter_code": "api_calls", "model": "per_unit", "unit_price": "1.00"}
    publish(admin, "daily", "day", charges=[per_call])
    start = (datetime.now(UTC) - 6 * DAY).replace(minute=0, second=0, microsecond=0)
    subscribe(admin, start, plan="daily")
    usage("acme", start + 2 * HOUR, 5)
    bill(billing, start + 3 * DAY + HOUR, monkeypatch)
    schedule(billing, start + 3 * DAY + 3 * HOUR)  # past the grace: the drafts are finalized
    day0 = invoices_of(billing, "acme")[1]
    assert (ts(day0["period_start"]), day0["status"], amounts(day0)) == (
        start,
        "finalized",
        {"usage:api_calls::0": 500},
    )

    # WHEN 3 calls of day 0 arrive late (three days after it ended, well within ingest's 35 days), and
    # day 3 is billed
    usage("acme", start + 2 * HOUR, 8)
    bill(billing, start + 4 * DAY + HOUR, monkeypatch)

    # THEN day 3's invoice carries them as an adjustment of day 0's invoice, which stays as it was
    day3 = invoices_of(billing, "acme")[-1]
    assert ts(day3["period_start"]) == start + 3 * DAY
    (adjustment,) = [line for line in day3["lines"] if line["kind"] == "adjustment"]
    assert adjustment["references"]["invoice_id"] == day0["id"]
    assert (int(adjustment["quantity"]), adjustment["amount_minor"]) == (3, 300)
    assert stored_invoice(billing, day0["id"]).document == day0
    # AND the next day does not bill them again
    bill(billing, start + 5 * DAY + HOUR, monkeypatch)
    assert [line["kind"] for line in invoices_of(billing, "acme")[-1]["lines"]] == ["usage"]
    assert_books_agree(billing, "acme")


def test_late_events_in_many_groups_are_billed_over_several_windows(
    admin: Api, billing: World, monkeypatch: Any
) -> None:
    # GIVEN a daily plan charging calls per region (a line per region), day 0 billed and finalized empty
    status, meter = admin(
        "POST",
        "/v1/meters",
        {"code": "regional", "name": "Regional", "aggregation": "count", "group_by": ["region"]},
    )
    assert status == 201, meter
    per_call = {"meter_code": "regional", "model": "per_unit", "unit_price": "1.00"}
    publish(admin, "daily", "day", charges=[per_call])
    start = (datetime.now(UTC) - 6 * DAY).replace(minute=0, second=0, microsecond=0)
    subscribe(admin, start, plan="daily")
    bill(billing, start + DAY + HOUR, monkeypatch)
    schedule(billing, start + DAY + 3 * HOUR)
    day0 = invoices_of(billing, "acme")[1]
    assert (day0["status"], day0["subtotal_minor"]) == ("finalized", 0)

    # WHEN late calls of day 0 arrive from 120 regions (more adjustment lines than one DynamoDB
    # transaction can hold), and the next days are billed one by one
    table = boto3.client("dynamodb")
    hour = (start + 2 * HOUR).strftime("%Y-%m-%dT%H")
    for n in range(120):
        item = {"pk": "AGG#acme#regional", "sk": f"{hour}#region=r{n:03d}", "n": 1}
        table.put_item(TableName=get_settings().usage_table, Item=to_item(item))
    for n in range(2, 6):
        bill(billing, start + n * DAY + HOUR, monkeypatch)
        schedule(billing, start + n * DAY + 3 * HOUR)

    # THEN every day was billed, the differences spread over the next invoices, each region billed once
    invoices = invoices_of(billing, "acme")
    assert [ts(i["period_start"]) for i in invoices[1:]] == [start + n * DAY for n in range(5)]
    adjusted = [
        line["references"]["line_id"]
        for invoice in invoices[2:]
        for line in invoice["lines"]
        if line["kind"] == "adjustment"
    ]
    assert sorted(adjusted) == [f"usage:regional:region=r{n:03d}:0" for n in range(120)]
    assert sum(i["subtotal_minor"] for i in invoices) == 12_000
    assert_books_agree(billing, "acme")


def test_late_events_are_billed_as_far_back_as_ingest_accepts_them(
    admin: Api, billing: World, monkeypatch: Any
) -> None:
    # GIVEN ingest configured to accept events up to 60 days old (IngestMaxAgeDays=60), and a daily plan
    # at 1.00 per call subscribed 45 days ago, every day billed and finalized
    from neruba import bootstrap

    configured = get_settings().model_copy(update={"ingest_max_age_days": 60})
    assert bootstrap.late_events_horizon(configured) == timedelta(days=61)
    monkeypatch.setattr(billing.ctx, "late_events", timedelta(days=61))
    per_call = {"meter_code": "api_calls", "model": "per_unit", "unit_price": "1.00"}
    publish(admin, "daily", "day", charges=[per_call])
    start = (datetime.now(UTC) - 45 * DAY).replace(minute=0, second=0, microsecond=0)
    subscribe(admin, start, plan="daily")
    bill(billing, start + 43 * DAY + HOUR, monkeypatch)
    schedule(billing, start + 43 * DAY + 3 * HOUR)
    day0 = invoices_of(billing, "acme")[1]
    assert (ts(day0["period_start"]), day0["status"], day0["subtotal_minor"]) == (start, "finalized", 0)

    # WHEN 4 calls of day 0 arrive 44 days late (accepted: within the 60 days) and day 43 is billed
    usage("acme", start + 2 * HOUR, 4)
    bill(billing, start + 44 * DAY + HOUR, monkeypatch)

    # THEN day 43's invoice bills them as an adjustment of day 0's invoice: accepted means billed
    last = invoices_of(billing, "acme")[-1]
    assert ts(last["period_start"]) == start + 43 * DAY
    (adjustment,) = [line for line in last["lines"] if line["kind"] == "adjustment"]
    assert adjustment["references"]["invoice_id"] == day0["id"]
    assert (int(adjustment["quantity"]), adjustment["amount_minor"]) == (4, 400)
    assert_books_agree(billing, "acme")
