"""A weighted_sum meter end to end: changes of a level counted by the real ingest worker, rated per
phase part, the level reached before a plan change carried into the new phase's part."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev

NOW = datetime.now(UTC).replace(microsecond=0)
START = (NOW - timedelta(days=10)).replace(hour=0, minute=0, second=0)
CHANGE = START + timedelta(days=5)


def test_level_integral_per_phase_part(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.domain.periods import add_interval
    from neruba.domain.phases import seconds
    from neruba.logic.catalog.subscriptions import change_plan, create_subscription
    from neruba.logic.pricing.rating import rate_window
    from neruba.models.catalog import Meter, PlanChange, PlanVersionIn, SubscriptionCreate

    # GIVEN storage reported as changes (+20 GB on day 1, +10 GB on day 2), priced per GB-month at 1 then 2
    catalog.create_meter(
        Meter(code="gb", name="GB", aggregation="weighted_sum", field="d", allow_negative=True)
    )
    plans = PlansRepository(get_settings().catalog_table)
    for price in ("1", "2"):
        charge = {"meter_code": "gb", "model": "per_unit", "unit_price": price}
        body = PlanVersionIn.model_validate(
            {"name": "S", "currency": "USD", "interval": "month", "charges": [charge]}
        )
        plans.publish("storage", body.model_dump(mode="json"))
    create = SubscriptionCreate(customer_id="acme", plan_code="storage", plan_version=1, start_at=START)
    sub = create_subscription(plans, create, None, now=NOW)
    sub = change_plan(plans, sub["id"], PlanChange(plan_code="storage", plan_version=2, at=CHANGE), now=NOW)
    day1, day2 = START + timedelta(days=1, hours=6), START + timedelta(days=2, minutes=30)
    send(ev("a", code="gb", timestamp=day2.isoformat(), properties={"d": 10}))  # arrives first
    process()
    send(ev("b", code="gb", timestamp=day1.isoformat(), properties={"d": 20}))
    process()
    # WHEN the period is rated
    end = add_interval(START, "month", 1)
    window = rate_window(plans, UsageRepository(get_settings().usage_table), sub, START, end, as_of=NOW)
    lines = {line.line_id: line for line in window.lines}
    old, new = lines["usage:gb::0"], lines["usage:gb::1"]
    # THEN phase 0: 20 GB from day1 and 10 more from day2 until the change, over the whole period
    period = Fraction(seconds(START, end))
    expected_old = (20 * Fraction(seconds(day1, CHANGE)) + 10 * Fraction(seconds(day2, CHANGE))) / period
    assert abs(Fraction(old.quantity) - expected_old) < Fraction(1, 10**90)
    # AND phase 1 (no change of its own) carries the 30 GB level from the change to the period end
    expected_new = 30 * Fraction(seconds(CHANGE, end)) / period
    assert abs(Fraction(new.quantity) - expected_new) < Fraction(1, 10**90)
    cents = expected_new * 2 * 100  # 2 per GB-month, rounded half-up once
    assert new.amount_minor == (cents.numerator * 2 + cents.denominator) // (2 * cents.denominator)
    assert old.amount_minor + new.amount_minor > 0 and new.source["events"] == 0
    assert isinstance(new.quantity, Decimal)


def test_the_level_carries_across_windows(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.domain.periods import add_interval
    from neruba.domain.phases import seconds
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.logic.pricing.rating import rate_window
    from neruba.models.catalog import Meter, PlanVersionIn, SubscriptionCreate

    # GIVEN a GB level set to 10 in the first period of a subscription starting at 10:30, and 4 more
    # GB added at 10:20 on the day the second period starts (an hour rated in the first period)
    catalog.create_meter(
        Meter(code="gbh", name="GB", aggregation="weighted_sum", field="d", allow_negative=True)
    )
    plans = PlansRepository(get_settings().catalog_table)
    charge = {"meter_code": "gbh", "model": "per_unit", "unit_price": "3"}
    body = PlanVersionIn.model_validate(
        {"name": "S", "currency": "USD", "interval": "month", "charges": [charge]}
    )
    plans.publish("gbh", body.model_dump(mode="json"))
    start = (NOW - timedelta(days=34)).replace(hour=10, minute=30, second=0)
    create = SubscriptionCreate(customer_id="acme", plan_code="gbh", start_at=start)
    sub = create_subscription(plans, create, None, now=NOW)
    second, third = add_interval(start, "month", 1), add_interval(start, "month", 2)
    send(
        ev("set", code="gbh", timestamp=(start + timedelta(days=3)).isoformat(), properties={"d": 10}),
        ev("add", code="gbh", timestamp=(second - timedelta(minutes=10)).isoformat(), properties={"d": 4}),
    )
    process()
    usage = UsageRepository(get_settings().usage_table)
    # WHEN the second period, without any change of its own, is rated
    window = rate_window(plans, usage, sub, second, third)
    (line,) = [line for line in window.lines if line.kind == "usage"]
    # THEN it bills the 14 GB level held all period: 14 GB-months at 3
    assert (line.quantity, line.amount_minor) == (Decimal(14), 4200)
    # AND so does the next period, two windows after the last change
    window = rate_window(plans, usage, sub, third, add_interval(start, "month", 3))
    (line,) = [line for line in window.lines if line.kind == "usage"]
    assert (line.quantity, line.amount_minor, line.source["events"]) == (Decimal(14), 4200, 0)
    # AND the first period bills 10 GB from day 3 and 4 more for its last 10 minutes
    window = rate_window(plans, usage, sub, start, second)
    (line,) = [line for line in window.lines if line.kind == "usage"]
    held = 10 * Fraction(seconds(start + timedelta(days=3), second)) + 4 * 600
    expected = held / Fraction(seconds(start, second))
    assert abs(Fraction(line.quantity) - expected) < Fraction(1, 10**90)
    cents = expected * 3 * 100
    assert line.amount_minor == (cents.numerator * 2 + cents.denominator) // (2 * cents.denominator)


def test_a_change_in_the_hour_of_a_plan_change_is_weighed_once(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.domain.periods import add_interval
    from neruba.domain.phases import seconds
    from neruba.logic.catalog.subscriptions import change_plan, create_subscription
    from neruba.logic.pricing.rating import rate_window
    from neruba.models.catalog import Meter, PlanChange, PlanVersionIn, SubscriptionCreate

    # GIVEN a plan change at 00:30 and one GB added at 00:40, in the same hour
    catalog.create_meter(
        Meter(code="gb", name="GB", aggregation="weighted_sum", field="d", allow_negative=True)
    )
    plans = PlansRepository(get_settings().catalog_table)
    for price in ("1", "2"):
        charge = {"meter_code": "gb", "model": "per_unit", "unit_price": price}
        body = PlanVersionIn.model_validate(
            {"name": "S", "currency": "USD", "interval": "month", "charges": [charge]}
        )
        plans.publish("storage", body.model_dump(mode="json"))
    create = SubscriptionCreate(customer_id="acme", plan_code="storage", plan_version=1, start_at=START)
    sub = create_subscription(plans, create, None, now=NOW)
    change_at, added = CHANGE + timedelta(minutes=30), CHANGE + timedelta(minutes=40)
    change = PlanChange(plan_code="storage", plan_version=2, at=change_at)
    sub = change_plan(plans, sub["id"], change, now=NOW)
    send(ev("a", code="gb", timestamp=added.isoformat(), properties={"d": 1}))
    process()
    # WHEN the period is rated
    end = add_interval(START, "month", 1)
    window = rate_window(plans, UsageRepository(get_settings().usage_table), sub, START, end, as_of=NOW)
    lines = {line.line_id: line for line in window.lines}
    old, new = Fraction(lines["usage:gb::0"].quantity), Fraction(lines["usage:gb::1"].quantity)
    # THEN the GB is weighed from 00:40 once, split between the parts without a negative part
    period = Fraction(seconds(START, end))
    assert old >= 0 and new >= 0
    assert abs(old + new - Fraction(seconds(added, end)) / period) < Fraction(1, 10**90)
