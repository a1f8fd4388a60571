"""A latest meter with carry_over: a period without a report bills the last value reported before it,
read from the closing level the previous window stored (docs/pricing.md, "Closing levels")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev

NOW = datetime.now(UTC).replace(microsecond=0)
START = (NOW - timedelta(days=33)).replace(minute=0, second=0)


def test_a_period_without_report_bills_the_carried_level(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.levels import LevelsRepository
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.domain.ingest import hour_bucket
    from neruba.domain.periods import add_interval
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.logic.pricing.rating import rate_window
    from neruba.models.catalog import Meter, PlanVersionIn, SubscriptionCreate

    # GIVEN seats reported as a level (latest, carried over) at 3 then 5 in the first period only
    catalog.create_meter(
        Meter(code="seats_level", name="Seats", aggregation="latest", field="n", carry_over=True)
    )
    plans = PlansRepository(get_settings().catalog_table)
    charge = {"meter_code": "seats_level", "model": "per_unit", "unit_price": "10"}
    body = PlanVersionIn.model_validate(
        {"name": "S", "currency": "USD", "interval": "month", "charges": [charge]}
    )
    plans.publish("seats", body.model_dump(mode="json"))
    sub = create_subscription(
        plans, SubscriptionCreate(customer_id="acme", plan_code="seats", start_at=START), None, now=NOW
    )
    send(
        ev("s1", code="seats_level", timestamp=(START + timedelta(days=1)).isoformat(), properties={"n": 3}),
        ev("s2", code="seats_level", timestamp=(START + timedelta(days=2)).isoformat(), properties={"n": 5}),
    )
    process()
    usage = UsageRepository(get_settings().usage_table)
    reads: list[str] = []
    original = usage.level_window  # the window's read, closing level included: from which hour
    monkeypatch.setattr(usage, "level_window", lambda *a: (lambda r: reads.append(r[0]) or r)(original(*a)))
    second = add_interval(START, "month", 1)
    # WHEN the first period is rated (as billing does) THEN 5 seats x 10, and its closing level is stored
    first = rate_window(plans, usage, sub, START, second)
    (line,) = [line for line in first.lines if line.kind == "usage"]
    assert (line.quantity, line.amount_minor) == (Decimal(5), 5000)
    (closing,) = LevelsRepository(get_settings().usage_table).stored("acme", "seats_level")
    assert (closing.hour, closing.groups[""].latest) == (hour_bucket(second), Decimal(5))
    reads.clear()
    # WHEN the second period, without any report, is rated
    window = rate_window(plans, usage, sub, second, add_interval(START, "month", 2), as_of=NOW)
    (line,) = [line for line in window.lines if line.kind == "usage"]
    # THEN the level carried over from the first period is billed, and the line says from when
    assert (line.quantity, line.amount_minor, line.source["events"]) == (Decimal(5), 5000, 0)
    assert line.source["carried_from"].startswith((START + timedelta(days=2)).date().isoformat())
    # AND its usage read started at its own first hour: the closing level stood for every earlier one
    assert "carried over" in line.description and reads == [hour_bucket(second)]


def test_each_group_carries_its_own_latest_value(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.domain.periods import add_interval
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.logic.pricing.rating import rate_window
    from neruba.models.catalog import Meter, PlanVersionIn, SubscriptionCreate

    # GIVEN a level per region, carried over: us and eu in the first period, only us in the second
    catalog.create_meter(
        Meter(
            code="seats_region",
            name="Seats",
            aggregation="latest",
            field="n",
            group_by=["region"],
            carry_over=True,
        )
    )
    plans = PlansRepository(get_settings().catalog_table)
    charge = {"meter_code": "seats_region", "model": "per_unit", "unit_price": "10"}
    body = PlanVersionIn.model_validate(
        {"name": "S", "currency": "USD", "interval": "month", "charges": [charge]}
    )
    plans.publish("seats", body.model_dump(mode="json"))
    sub = create_subscription(
        plans, SubscriptionCreate(customer_id="acme", plan_code="seats", start_at=START), None, now=NOW
    )
    second = add_interval(START, "month", 1)

    def report(tx: str, at: datetime, region: str, n: int) -> Any:
        props = {"n": n, "region": region}
        return ev(tx, code="seats_region", timestamp=at.isoformat(), properties=props)

    send(
        report("e1", START + timedelta(days=1), "eu", 4),
        report("u1", START + timedelta(days=2), "us", 3),
        report("u2", second + timedelta(days=1), "us", 6),
    )
    process()
    usage = UsageRepository(get_settings().usage_table)
    # WHEN the second period is rated
    window = rate_window(plans, usage, sub, second, add_interval(START, "month", 2), as_of=NOW)
    lines = sorted((line for line in window.lines if line.kind == "usage"), key=lambda x: x.amount_minor)
    # THEN us bills its own report of the period and eu the value it carried from the first period
    assert [(line.quantity, line.amount_minor, line.source["events"]) for line in lines] == [
        (Decimal(4), 4000, 0),
        (Decimal(6), 6000, 1),
    ]
    assert lines[0].source["carried_from"].startswith((START + timedelta(days=1)).date().isoformat())
    assert "carried over" in lines[0].description and "carried over" not in lines[1].description
    # AND the third period, without any report, carries both regions' last values
    third = rate_window(plans, usage, sub, add_interval(START, "month", 2), add_interval(START, "month", 3))
    quantities = sorted(line.quantity for line in third.lines if line.kind == "usage")
    assert quantities == [Decimal(4), Decimal(6)]


def test_carry_over_is_refused_outside_latest_meters() -> None:
    from neruba.models.catalog import Meter

    with pytest.raises(ValidationError, match="carry_over applies to latest meters"):
        Meter(code="m", name="m", aggregation="sum", field="v", carry_over=True)
    grouped = Meter(code="m", name="m", aggregation="latest", field="v", group_by=["k"], carry_over=True)
    assert grouped.carry_over and grouped.group_by == ["k"]


def test_the_level_carried_is_read_from_day_contributions_in_every_shard_and_earlier_layouts(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from neruba.dal.contributions import GroupRef, GroupWrites, shard_of
    from neruba.dal.usage import UsageRepository

    monkeypatch.setenv("NERUBA_USAGE_SHARDS", "4")
    usage = UsageRepository(get_settings().usage_table, shards=4)
    day = START.date().isoformat()
    period = f"{day}T10"  # a period starting at 10:00: every level reported earlier that day may carry

    def count(batch: str, *levels: tuple[str, int]) -> None:
        writes = GroupWrites(batch, usage.shards)
        for n, (at, level) in enumerate(levels):
            ref = GroupRef("acme", "seats", at[:13])
            writes.add(ref, "latest", f"{batch}-{n}", at, Decimal(level))
        for part, write in writes.parts():
            assert usage.count_group(part, write, NOW)

    # GIVEN levels counted by batches that land in different shards, one of them holding an hour of the
    # period's own day after its start and one an earlier day
    assert len({shard_of(b, 4) for b in ("b1", "b2", "b3", "b4")}) > 1
    count("b1", (f"{day}T05:10:00Z", 3), (f"{day}T12:00:00Z", 99))
    count("b2", (f"{day}T05:30:00Z", 4))
    count("b3", ((START - timedelta(days=1)).strftime("%Y-%m-%dT20:00:00Z"), 7))
    # AND the previous layout's item of one more batch in the same hour, and the one of batch b2 that
    # migration 0004 already wrote as b2's day contribution
    for batch, at, level in (("b4", f"{day}T05:50:00Z", 6), ("b2", f"{day}T05:30:00Z", 4)):
        item = {"n": {"N": "1"}, "agg": {"S": "latest"}, "lt": {"S": at}, "lv": {"N": str(level)}}
        key = {"pk": {"S": "USE#acme#seats"}, "sk": {"S": f"{day}T05##{batch}"}}
        boto3.client("dynamodb").put_item(TableName=get_settings().usage_table, Item={**key, **item})
    # WHEN the level before the period is read
    found = usage.last_cell_before("acme", "seats", period)
    # THEN it is the 05:00 cell, every batch counted once, the latest level reported in it
    assert found is not None
    assert (found.hour, found.usage.count, found.usage.latest) == (f"{day}T05", 3, Decimal(6))
    # WHEN a repair folds b1 and b4 into the hour's aggregate
    truth = replace(found.usage, count=2)
    assert usage.replace_aggregate(
        GroupRef("acme", "seats", f"{day}T05"), truth, NOW.isoformat(), None, {"b1", "b4"}
    )
    # THEN the aggregate and the one contribution it did not fold in are read, nothing twice
    found = usage.last_cell_before("acme", "seats", period)
    assert found is not None and (found.usage.count, found.usage.latest) == (3, Decimal(6))
    assert sorted(sk for _, sk in found.sources) == [f"{day}!b2", f"{day}T05#"]
    # AND before the earlier day's hours, the earlier day's level
    earlier = usage.last_cell_before("acme", "seats", f"{day}T05")
    assert earlier is not None and (earlier.usage.count, earlier.usage.latest) == (1, Decimal(7))


def test_each_group_s_last_cell_is_read_however_long_ago_it_reported(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.contributions import GroupRef, GroupWrites
    from neruba.dal.usage import UsageRepository

    monkeypatch.setenv("NERUBA_USAGE_SHARDS", "4")
    usage = UsageRepository(get_settings().usage_table, shards=4)
    day, old = START.date().isoformat(), (START - timedelta(days=40)).date().isoformat()

    def count(batch: str, group: str, at: str, level: int) -> None:
        writes = GroupWrites(batch, usage.shards)
        writes.add(GroupRef("acme", "seats", at[:13], group), "latest", f"{batch}-0", at, Decimal(level))
        for part, write in writes.parts():
            assert usage.count_group(part, write, NOW)

    # GIVEN eu last reported 40 days before us, and us twice, in batches of different shards
    count("b1", "eu", f"{old}T03:00:00Z", 4)
    count("b2", "us", f"{day}T01:00:00Z", 2)
    count("b3", "us", f"{day}T05:00:00Z", 3)
    count("b4", "", f"{day}T04:00:00Z", 9)
    # WHEN each group's last cell before 10:00 is read
    found = usage.last_cells_before("acme", "seats", f"{day}T10", grouped=True)
    # THEN every group has its own latest value, the old one included
    assert {g: (c.hour, c.usage.latest) for g, c in found.items()} == {
        "eu": (f"{old}T03", Decimal(4)),
        "us": (f"{day}T05", Decimal(3)),
        "": (f"{day}T04", Decimal(9)),
    }
    # AND the ungrouped read still sees only the ungrouped cell
    single = usage.last_cell_before("acme", "seats", f"{day}T10")
    assert single is not None and (single.group, single.usage.latest) == ("", Decimal(9))
