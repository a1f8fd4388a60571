"""Closing levels (docs/pricing.md, "Closing levels"): a level meter's window reads its last closing level
and its own hours, never the meter's whole history, and bills exactly what the full read bills; late
changes, crashes between writes and two computations at once leave every level exact.

Usage is stored as the hourly aggregate items ingest maintains (written directly: the periods lie further
back than ingest accepts events), so each test can bill several months.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from neruba.settings import get_settings

START = datetime(2025, 1, 1, tzinfo=UTC)


def _month(n: int) -> datetime:
    from neruba.domain.periods import add_interval

    return add_interval(START, "month", n)


@pytest.fixture
def world(catalog: Any) -> dict[str, Any]:
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Meter, PlanVersionIn, SubscriptionCreate

    catalog.create_meter(
        Meter(code="gb", name="GB", aggregation="weighted_sum", field="d", allow_negative=True)
    )
    catalog.create_meter(
        Meter(code="seat", name="Seats", aggregation="latest", field="n", carry_over=True, group_by=["team"])
    )
    plans = PlansRepository(get_settings().catalog_table)
    charges = [
        {"meter_code": "gb", "model": "per_unit", "unit_price": "3"},
        {"meter_code": "seat", "model": "per_unit", "unit_price": "10"},
    ]
    body = PlanVersionIn.model_validate(
        {"name": "S", "currency": "USD", "interval": "month", "charges": charges}
    )
    plans.publish("levels", body.model_dump(mode="json"))
    create = SubscriptionCreate(customer_id="acme", plan_code="levels", start_at=START)
    sub = create_subscription(plans, create, None, now=START)
    return {"plans": plans, "usage": UsageRepository(get_settings().usage_table), "sub": sub}


def _change(meter: str, at: datetime, usage: dict[str, Any], group: str = "", batch: str = "b1") -> None:
    """One cell of ``meter`` at ``at``'s hour, as an aggregate item (what a repair or ingest stores)."""
    from neruba.dal.contributions import cell_item, partition
    from neruba.dal.dynamo import to_item
    from neruba.domain.ingest import hour_bucket
    from neruba.domain.usage import CellUsage

    hour = hour_bucket(at)
    cell = CellUsage(1, aggregation="weighted_sum" if meter == "gb" else "latest", **usage)
    item = {"pk": partition("acme", meter), "sk": f"{hour}#{group}", **cell_item(cell)}
    boto3.client("dynamodb").put_item(TableName=get_settings().usage_table, Item=to_item(item))


def _gb(at: datetime, change: int) -> None:
    seconds = (at - at.replace(minute=0, second=0, microsecond=0)).total_seconds()
    _change("gb", at, {"total": Decimal(change), "weighted": Decimal(change) * Decimal(int(seconds))})


def _seats(at: datetime, team: str, seats: int) -> None:
    _change("seat", at, {"latest": Decimal(seats), "latest_at": at.isoformat()}, group=f"team={team}")


def _rate(world: dict[str, Any], n: int, **kwargs: Any) -> dict[str, Any]:
    """Window n (month n) rated as billing rates it: usage lines by id -> (quantity, amount)."""
    from neruba.logic.pricing.rating import rate_window

    window = rate_window(world["plans"], world["usage"], world["sub"], _month(n), _month(n + 1), **kwargs)
    return {line.line_id: (line.quantity, line.amount_minor) for line in window.lines if line.kind == "usage"}


def _levels(meter: str) -> dict[str, dict[str, Any]]:
    from neruba.dal.levels import LevelsRepository

    stored = LevelsRepository(get_settings().usage_table).stored("acme", meter)
    return {
        c.hour: {g: v.level if v.latest_at is None else v.latest for g, v in c.groups.items()} for c in stored
    }


def _full_read(world: dict[str, Any], n: int) -> dict[str, Any]:
    """Window n rated with no closing level stored (every cell read), the levels left as they were."""
    from neruba.dal.contributions import partition
    from neruba.dal.levels import is_level

    table = boto3.resource("dynamodb").Table(get_settings().usage_table)
    saved = [  # the closing levels, kept in the meters' usage partitions
        item
        for meter in ("gb", "seat")
        for item in table.query(
            KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": partition("acme", meter)}
        )["Items"]
        if is_level(str(item["sk"]))
    ]
    assert saved or n == 0
    for item in saved:
        table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
    try:
        return _rate(world, n, as_of=_month(n + 1))  # a preview stores nothing
    finally:
        for item in saved:
            table.put_item(Item=item)


def _count_reads(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first hour whose cells each level meter's window read."""
    reads: list[str] = []
    original = world["usage"].level_window

    def level_window(*args: Any) -> Any:
        found = original(*args)
        reads.append(found[0])
        return found

    monkeypatch.setattr(world["usage"], "level_window", level_window)
    return reads


def test_a_window_reads_from_the_closing_level_and_bills_what_the_full_read_bills(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.domain.ingest import hour_bucket

    # GIVEN 20 GB on 10 Jan and 5 seats of team a and 2 of team b in January, -5 GB and 3 seats of team a
    # in February, nothing after
    _gb(START + timedelta(days=9, hours=3, minutes=30), 20)
    _seats(START + timedelta(days=2), "a", 5)
    _seats(START + timedelta(days=3), "b", 2)
    _gb(_month(1) + timedelta(days=1), -5)
    _seats(_month(1) + timedelta(days=4), "a", 3)
    # WHEN January, February and March are billed in turn
    reads = _count_reads(world, monkeypatch)
    billed = [_rate(world, n) for n in range(3)]
    # THEN each window's level read started at its own first hour, after January (no earlier level)
    assert reads == [
        "0001-01-01T00",
        "0001-01-01T00",
        hour_bucket(_month(1)),
        hour_bucket(_month(1)),
        hour_bucket(_month(2)),
        hour_bucket(_month(2)),
    ]
    # AND each window's closing level is stored, exact
    assert _levels("gb") == {hour_bucket(_month(n)): {"": Decimal(v)} for n, v in ((1, 20), (2, 15), (3, 15))}
    assert _levels("seat")[hour_bucket(_month(3))] == {"team=a": Decimal(3), "team=b": Decimal(2)}
    # AND March bills 15 GB-months and the seats carried over (3 + 2), as the read of all history does
    assert billed[2]["usage:gb::0"] == (Decimal(15), 4500)
    assert (billed[2]["usage:seat:team=a:0"], billed[2]["usage:seat:team=b:0"]) == ((3, 3000), (2, 2000))
    for n in range(3):
        assert _full_read(world, n) == billed[n]


def test_a_late_change_before_a_closing_level_is_carried_forward_by_the_re_rating(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.domain.ingest import hour_bucket

    # GIVEN January (10 GB) and February billed: closing levels 10 at February's and March's start
    _gb(START + timedelta(days=2), 10)
    _rate(world, 0)
    _rate(world, 1)
    assert _levels("gb") == {hour_bucket(_month(1)): {"": 10}, hour_bucket(_month(2)): {"": 10}}
    # WHEN a change of +4 GB in January arrives late, and billing March re-rates January then February
    # (the late-event look-back, oldest first) before March
    _gb(START + timedelta(days=20), 4)
    reads = _count_reads(world, monkeypatch)
    _rate(world, 0)
    # THEN January's new closing level is stored and March's, computed from the old one, is gone
    assert _levels("gb") == {hour_bucket(_month(1)): {"": 14}}
    # AND February reads from January's end and stores its level again; March bills the 14 GB
    february, march = _rate(world, 1), _rate(world, 2)
    assert february["usage:gb::0"] == (Decimal(14), 4200)
    assert march["usage:gb::0"] == (Decimal(14), 4200)
    assert (
        reads
        == ["0001-01-01T00", "0001-01-01T00", hour_bucket(_month(1)), hour_bucket(_month(1))]
        + [hour_bucket(_month(2))] * 2
    )
    assert _levels("gb")[hour_bucket(_month(2))] == {"": 14}


def test_a_preview_reads_closing_levels_but_stores_none(world: dict[str, Any]) -> None:
    # GIVEN a change in January; WHEN January is previewed before its end
    _gb(START + timedelta(days=2), 10)
    preview = _rate(world, 0, as_of=START + timedelta(days=5))
    # THEN it bills the level so far and no closing level is stored (its window is not whole)
    assert preview["usage:gb::0"][0] > 0 and _levels("gb") == {}


def test_a_crash_between_dropping_later_levels_and_storing_the_new_one_is_repaired_by_the_retry(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal import levels as dal_levels
    from neruba.domain.ingest import hour_bucket

    # GIVEN January and February billed (level 10), then a late +4 GB in January
    _gb(START + timedelta(days=2), 10)
    _rate(world, 0)
    _rate(world, 1)
    _gb(START + timedelta(days=20), 4)
    # WHEN the re-rating of January crashes after deleting the later levels, before storing its own
    real_client = dal_levels.client

    class Crashing:
        def __init__(self) -> None:
            self.inner = real_client("dynamodb")

        def __getattr__(self, name: str) -> Any:
            if name == "put_item":
                raise RuntimeError("killed")
            return getattr(self.inner, name)

    monkeypatch.setattr(dal_levels, "client", lambda name: Crashing())
    with pytest.raises(RuntimeError, match="killed"):
        _rate(world, 0)
    # THEN the old January level is still stored, the later ones are gone (nothing computed from it stays)
    assert _levels("gb") == {hour_bucket(_month(1)): {"": 10}}
    # AND the retry finds the old level, stores the new one, and March bills the 14 GB
    monkeypatch.setattr(dal_levels, "client", real_client)
    _rate(world, 0)
    assert _levels("gb") == {hour_bucket(_month(1)): {"": 14}}
    assert _rate(world, 2)["usage:gb::0"] == (Decimal(14), 4200)


def test_a_computation_that_began_reading_earlier_never_replaces_a_later_one(world: dict[str, Any]) -> None:
    from neruba.dal.levels import LevelsRepository
    from neruba.domain.levels import ClosingLevel, GroupLevel

    repo = LevelsRepository(get_settings().usage_table)
    # GIVEN two billing runs of one window at once: B began reading after a late change, A before it
    late = ClosingLevel(
        "2025-02-01T00", "weighted_sum", {"": GroupLevel(level=Decimal(14))}, "2025-02-01T00:05:00Z"
    )
    early = ClosingLevel(
        "2025-02-01T00", "weighted_sum", {"": GroupLevel(level=Decimal(10))}, "2025-02-01T00:04:00Z"
    )
    # WHEN B stores its level first and A, slower, stores its own afterwards
    assert repo.record("acme", "gb", late, None) is True
    assert repo.record("acme", "gb", early, None) is False
    # THEN B's level stays; the same levels again are not written (a retried run writes nothing)
    assert _levels("gb") == {"2025-02-01T00": {"": 14}}
    assert repo.record("acme", "gb", late, repo.stored("acme", "gb")[0]) is False
    # AND a third computation that read later still and found the same levels confirms them, so one that
    # began between B and it, slower and missing the change, cannot replace them either
    confirm = replace(late, read_at="2025-02-01T00:07:00Z")
    assert repo.record("acme", "gb", confirm, repo.stored("acme", "gb")[0]) is False
    assert repo.stored("acme", "gb")[0].read_at == "2025-02-01T00:07:00Z"
    between = replace(early, read_at="2025-02-01T00:06:00Z")
    assert repo.record("acme", "gb", between, repo.stored("acme", "gb")[0]) is False
    assert _levels("gb") == {"2025-02-01T00": {"": 14}}


def test_the_base_is_the_last_level_at_or_before_the_first_hour_however_many_come_after(
    world: dict[str, Any],
) -> None:
    from neruba.dal.levels import LevelsRepository
    from neruba.domain.levels import ClosingLevel, GroupLevel

    repo = LevelsRepository(get_settings().usage_table)

    def level(hour: str, value: int) -> ClosingLevel:
        return ClosingLevel(
            hour, "weighted_sum", {"": GroupLevel(level=Decimal(value))}, "2025-06-01T00:00:00Z"
        )

    # GIVEN levels stored at many hours (windows of other anchors among them), some inside the window
    hours = [
        "2025-01-01T00",
        "2025-02-01T00",
        "2025-02-01T10",
        "2025-02-03T00",
        "2025-02-14T07",
        "2025-03-01T00",
    ]
    for n, hour in enumerate(hours):
        assert repo.record("acme", "gb", level(hour, n), None)
    # WHEN the window [1 Feb 10:00, 1 Mar 00:00) reads them (one Query, paged back two items at a time)
    found = repo.around("acme", "gb", "2025-02-01T10", "2025-03-01T00")
    # THEN its base is the level at its first hour and the one at its end hour is the one stored there
    assert found.base is not None and found.at_end is not None
    assert (found.base.hour, found.base.groups[""].level) == ("2025-02-01T10", 2)
    assert (found.at_end.hour, found.at_end.groups[""].level) == ("2025-03-01T00", 5)
    # AND a window with no level at or before its start reads from the beginning
    assert repo.around("acme", "gb", "2024-12-31T23", "2025-01-31T23").base is None


def _requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every DynamoDB request the repositories send, as (operation, partition key)."""
    from neruba.dal.clients import client

    sent: list[tuple[str, str]] = []

    def note(model: Any, params: dict[str, Any], **_: Any) -> None:
        values = params.get("ExpressionAttributeValues") or {}
        key = (params.get("Key") or {}).get("pk") or values.get(":pk") or values.get(":p") or {}
        sent.append((model.name, str(key.get("S", ""))))

    client("dynamodb").meta.events.register("provide-client-params.dynamodb", note, unique_id="count-reads")
    return sent


def test_a_billed_window_reads_its_closing_level_with_its_cells_in_one_query(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.clients import client
    from neruba.domain.ingest import hour_bucket

    # GIVEN January billed (its closing levels stored), usage in February
    _gb(START + timedelta(days=3), 20)
    _seats(START + timedelta(days=2), "a", 5)
    _rate(world, 0)
    _gb(_month(1) + timedelta(days=2), -5)
    # WHEN February is billed
    sent = _requests(monkeypatch)
    try:
        billed = _rate(world, 1)
    finally:
        client("dynamodb").meta.events.unregister("provide-client-params.dynamodb", unique_id="count-reads")
    # THEN each level meter's reads are one Query of its usage partition (what a count meter's window
    # sends), the level it starts from and the one at its end among the items: nothing else is read
    for meter in ("gb", "seat"):
        usage = (f"AGG#acme#{meter}", f"LVL#acme#{meter}")
        reads = [op for op, pk in sent if pk in usage and op in ("Query", "GetItem")]
        assert reads == ["Query"], (meter, sent)
    assert not [pk for _, pk in sent if pk.startswith("LVL#")]
    assert billed["usage:gb::0"][0] > 15 and _levels("gb")[hour_bucket(_month(2))] == {"": 15}


def _legacy(hour: str, level: int, read_at: str) -> None:
    """A closing level as the previous layout stored it (``LVL#{customer}#{meter}`` / hour)."""
    table = boto3.resource("dynamodb").Table(get_settings().usage_table)
    item = {
        "pk": "LVL#acme#gb",
        "sk": hour,
        "agg": "weighted_sum",
        "ra": read_at,
        "g": [{"k": "", "l": str(level)}],
    }
    table.put_item(Item=item)


def _legacy_left() -> list[str]:
    table = boto3.resource("dynamodb").Table(get_settings().usage_table)
    query = table.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": "LVL#acme#gb"})
    return [str(i["sk"]) for i in query["Items"]]


def test_migration_0005_moves_the_previous_layouts_levels_and_billing_reads_them(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.domain.ingest import hour_bucket
    from neruba.migrations import MigrationContext
    from neruba.migrations.m0005_closing_levels_in_usage_partition import apply

    # GIVEN 12 GB added in January, billed before this layout: its closing level at 1 February is an
    # item of the previous layout, and another at 1 March that a current level already replaced
    _gb(START + timedelta(days=3), 12)
    _legacy(hour_bucket(_month(1)), 12, "2025-02-01T00:05:00Z")
    _legacy(hour_bucket(_month(2)), 99, "2025-03-01T00:05:00Z")
    from neruba.dal.levels import LevelsRepository
    from neruba.domain.levels import ClosingLevel, GroupLevel

    current = ClosingLevel(
        hour_bucket(_month(2)), "weighted_sum", {"": GroupLevel(level=Decimal(12))}, "2025-03-02T00:00:00Z"
    )
    assert LevelsRepository(get_settings().usage_table).record("acme", "gb", current, None)
    # WHEN the migration runs, twice
    ctx = MigrationContext(settings=get_settings(), now=_month(3))
    assert apply(ctx) == {"moved": 1, "superseded": 1, "gone": 0}
    assert apply(ctx) == {"moved": 0, "superseded": 0, "gone": 0}
    # THEN the level is in the usage partition, the one billing stored stands, and nothing old is left
    assert _levels("gb") == {hour_bucket(_month(1)): {"": 12}, hour_bucket(_month(2)): {"": 12}}
    assert _legacy_left() == []
    # AND February reads from the moved level (its own hours only) and bills the 12 GB carried in
    reads = _count_reads(world, monkeypatch)
    assert _rate(world, 1)["usage:gb::0"] == (Decimal(12), 3600)
    assert reads[0] == hour_bucket(_month(1))


def test_a_level_billing_replaces_during_the_migration_never_leaves_a_later_old_one_behind(
    world: dict[str, Any],
) -> None:
    from neruba.domain.ingest import hour_bucket
    from neruba.migrations import MigrationContext
    from neruba.migrations.m0005_closing_levels_in_usage_partition import apply

    # GIVEN old-layout levels at 1 February (10) and 1 March (10, computed from it), not yet moved, and a
    # late +4 GB in January
    _gb(START + timedelta(days=2), 10)
    _legacy(hour_bucket(_month(1)), 10, "2025-02-01T00:05:00Z")
    _legacy(hour_bucket(_month(2)), 10, "2025-03-01T00:05:00Z")
    _gb(START + timedelta(days=20), 4)
    # WHEN the migration has moved February's level but not yet March's, and January is re-rated then
    # (its level, now 14, replaces the 10 just moved), and the migration goes on
    from neruba.dal.levels import LevelsRepository

    assert _legacy_left() == [hour_bucket(_month(1)), hour_bucket(_month(2))]
    table = boto3.resource("dynamodb").Table(get_settings().usage_table)
    march = table.get_item(Key={"pk": "LVL#acme#gb", "sk": hour_bucket(_month(2))})["Item"]
    table.delete_item(Key={"pk": "LVL#acme#gb", "sk": hour_bucket(_month(2))})
    moved = LevelsRepository(get_settings().usage_table).move_legacy()  # February only
    assert moved == {"moved": 1, "superseded": 0, "gone": 0}
    table.put_item(Item=march)  # March, still waiting for the migration
    _rate(world, 0)
    apply(MigrationContext(settings=get_settings(), now=_month(3)))
    # THEN the old March level (resting on 10) was deleted by the re-rating, never moved
    assert _levels("gb") == {hour_bucket(_month(1)): {"": 14}} and _legacy_left() == []
    # AND March starts from January's 14 and February's cells
    assert _rate(world, 2)["usage:gb::0"] == (Decimal(14), 4200)


def test_a_sharded_meter_reads_every_shard_back_to_its_level(world: dict[str, Any]) -> None:
    from neruba.dal.contributions import cell_item, partition
    from neruba.dal.dynamo import to_item
    from neruba.dal.usage import UsageRepository
    from neruba.domain.ingest import hour_bucket
    from neruba.domain.usage import CellUsage

    def change(at: datetime, gb: int, shard: int) -> None:
        """A change counted in usage shard ``shard`` (an aggregate item there, as a fold leaves cells)."""
        seconds = Decimal(int((at - at.replace(minute=0, second=0, microsecond=0)).total_seconds()))
        cell = CellUsage(1, total=Decimal(gb), weighted=gb * seconds, aggregation="weighted_sum")
        item = {"pk": partition("acme", "gb", shard), "sk": f"{hour_bucket(at)}#", **cell_item(cell)}
        boto3.client("dynamodb").put_item(TableName=get_settings().usage_table, Item=to_item(item))

    # GIVEN a meter spread over 4 shards: 10 GB in January (shard 0), 3 in February (shard 2), and a
    # late 2 GB of January (shard 3) after both were billed
    world["usage"] = UsageRepository(get_settings().usage_table, shards=4)
    change(START + timedelta(days=4), 10, 0)
    change(_month(1) + timedelta(days=1), 3, 2)
    _rate(world, 0)
    feb = _rate(world, 1)
    assert _levels("gb")[hour_bucket(_month(2))] == {"": 13}
    change(START + timedelta(days=6), 2, 3)
    # WHEN January is re-rated (its level changes: February's is deleted) and March is rated
    _rate(world, 0)
    assert hour_bucket(_month(2)) not in _levels("gb")
    march = _rate(world, 2)
    # THEN March read back to January's level through every shard and bills 15 GB, as a full read does
    assert march["usage:gb::0"] == (Decimal(15), 4500)
    assert _full_read(world, 2) == march and feb["usage:gb::0"][1] > 0
