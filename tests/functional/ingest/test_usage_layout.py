"""Where counted usage is stored and how it is read: one contribution per (customer, meter, day) of a
batch in the usage partition, read with one Query per shard; the previous layout (one ``USE#`` item per
cell and batch) moved by migration 0004; a hot customer's meter sharded over several partitions."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from neruba import bootstrap
from neruba.dal.pending import PendingUsage
from neruba.dal.usage import UsageRepository
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
HOUR = HOUR.replace(hour=min(HOUR.hour, 21))  # the events' 3 hours fall on one day
H = HOUR.strftime("%Y-%m-%dT%H")


def _tokens(
    tx: str, value: int, *, model: str = "m", hours: int = 0, customer: str = "acme"
) -> dict[str, Any]:
    at = (HOUR + timedelta(hours=hours, minutes=5)).isoformat()
    return ev(tx, customer, code="tokens", timestamp=at, properties={"tokens": value, "model": model})


def _usage() -> UsageRepository:
    return UsageRepository(get_settings().usage_table)


def _totals(customer: str = "acme") -> dict[tuple[str, str], tuple[int, Any]]:
    cells = _usage().aggregates(customer, "tokens", "0000", "9999")
    return {(c.hour, c.group): (c.usage.count, c.usage.total) for c in cells}


def _crash_before_counting(worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One batch of the queue whose worker is killed after writing its events, before counting them (its
    messages become visible again)."""
    from tests.support.aws import queue_url
    from tests.support.queues import receive_batch, run_batch

    def killed(*args: Any, **kwargs: Any) -> bool:
        raise KeyboardInterrupt  # a kill: nothing after it runs

    url = queue_url("IngestQueue")
    with monkeypatch.context() as patch:
        patch.setattr(UsageRepository, "count_group", killed)
        patch.setattr(PendingUsage, "put", killed)  # the sparse days' write
        assert run_batch(worker, url, receive_batch(url, 100))


def _sweep() -> None:
    from functions.sweeper.app import run_sweep

    now = datetime.now(UTC)
    run_sweep(now - timedelta(minutes=5), now + timedelta(minutes=1), now=now + timedelta(minutes=20))


def _partition_items(pk: str) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb")
    query = {"TableName": get_settings().usage_table, "KeyConditionExpression": "pk = :pk"}
    return ddb.query(**query, ExpressionAttributeValues={":pk": {"S": pk}})["Items"]


class _Queries:
    """Counts the DynamoDB Query requests sent to read usage partitions (``AGG#...``), whichever
    repository helper sends them (every paged read goes through ``dal.dynamo.query_items``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from neruba.dal import clients

        self.count = 0
        self.seen: list[str] = []
        real = clients.client
        outer = self

        def counting(name: str) -> Any:
            inner = real(name)

            class Wrapper:
                def __getattr__(self, attr: str) -> Any:
                    return getattr(inner, attr)

                def query(self, **request: Any) -> Any:
                    pk = str(request.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S", ""))
                    outer.seen.append(pk)
                    if pk.startswith("AGG#"):
                        outer.count += 1
                    return inner.query(**request)

            return Wrapper()

        monkeypatch.setattr(clients, "client", counting)
        for module in _modules_with_client():
            monkeypatch.setattr(module, "client", counting)


def _modules_with_client() -> list[Any]:
    """The dal modules that imported ``client`` by name (their own queries go through it too)."""
    import sys

    return [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("neruba.dal.") and name != "neruba.dal.clients" and hasattr(module, "client")
    ]


def test_a_batch_writes_one_contribution_per_customer_meter_and_day_and_billing_reads_one_partition(
    send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one batch over 3 hours and 2 groups of one customer, and one event of another customer
    events = [_tokens(f"e{i}", i, model=f"m{i % 2}", hours=i % 3) for i in range(12)]
    send(*events, _tokens("g1", 5, customer="globex"))
    # WHEN the worker counts it
    process()
    # THEN acme's usage is one item holding its 6 cells (globex has its own), beside no other usage item
    (item,) = _partition_items("AGG#acme#tokens")
    assert item["sk"]["S"].startswith(HOUR.strftime("%Y-%m-%d!"))
    assert len(item["cs"]["M"]) == 6
    assert len(_partition_items("AGG#globex#tokens")) == 1
    assert _partition_items("USE#acme#tokens") == []
    # AND every cell reads exactly, with one Query for the customer's meter over any span
    queries = _Queries(monkeypatch)
    totals = _totals()
    assert queries.count == 1
    expected: Counter[tuple[str, str]] = Counter()
    sums: Counter[tuple[str, str]] = Counter()
    for i in range(12):
        cell = ((HOUR + timedelta(hours=i % 3)).strftime("%Y-%m-%dT%H"), f"model=m{i % 2}")
        expected[cell] += 1
        sums[cell] += i
    assert totals == {cell: (n, sums[cell]) for cell, n in expected.items()}
    # AND a range of hours reads only those hours' cells
    (first,) = {c.hour for c in _usage().aggregates("acme", "tokens", H, H)}
    assert first == H


def test_group_values_holding_the_separator_read_back_as_they_were_counted(send: Any, process: Any) -> None:
    # GIVEN group values containing '#'
    send(_tokens("a", 1, model="gpt#4"), _tokens("b", 2, model="#"), _tokens("c", 4, model="x#y#"))
    # WHEN counted and read
    process()
    # THEN each group is its own cell with its own sum
    assert _totals() == {
        (H, "model=gpt#4"): (1, 1),
        (H, "model=#"): (1, 2),
        (H, "model=x#y#"): (1, 4),
    }


def _legacy_contribution(customer: str, hour: str, group: str, batch: str, tx: list[str], total: int) -> None:
    """A contribution as the previous layout stored it: one ``USE#`` item per cell and batch."""
    boto3.client("dynamodb").put_item(
        TableName=get_settings().usage_table,
        Item={
            "pk": {"S": f"USE#{customer}#tokens"},
            "sk": {"S": f"{hour}#{group}#{batch}"},
            "tx": {"L": [{"S": t} for t in tx]},
            "n": {"N": str(len(tx))},
            "agg": {"S": "sum"},
            "s": {"N": str(total)},
            "at": {"S": "2026-01-01T00:00:00+00:00"},
        },
    )


def test_migration_0004_moves_earlier_contributions_and_a_second_run_changes_nothing(catalog: Any) -> None:
    from neruba.migrations import MigrationContext
    from neruba.migrations.m0004_day_contributions import apply

    # GIVEN contributions of the previous layout: a batch with two cells in two hours, another batch
    later = (HOUR + timedelta(hours=1)).strftime("%Y-%m-%dT%H")
    _legacy_contribution("acme", H, "model=m", "b1", ["t1", "t2"], 5)
    _legacy_contribution("acme", later, "model=m#2", "b1", ["t3"], 7)
    _legacy_contribution("acme", H, "model=m", "b2", ["t4"], 11)
    assert _totals() == {}  # not read where they are
    # WHEN the migration runs, twice
    ctx = MigrationContext(get_settings(), datetime.now(UTC))
    first, second = apply(ctx), apply(ctx)
    # THEN the usage reads them, once each
    assert first == {"contributions": 2, "moved": 2, "present": 0}
    assert second == {"contributions": 2, "moved": 0, "present": 2}
    assert _totals() == {(H, "model=m"): (3, 16), (later, "model=m#2"): (1, 7)}
    # AND the moved contributions keep their transaction ids for the sweep and event listings
    found = _usage().contributions("acme", "tokens", H, later)
    assert sorted(t for c in found if not c.batch.startswith("x") for t in c.transaction_ids) == sorted(
        ["t1", "t2", "t3", "t4"] * 2  # the USE# items are still read by the sweep's recount
    )


def test_a_batch_counted_in_part_by_the_previous_layout_is_completed_once_after_the_migration(
    send: Any, process: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.usage import GroupRef
    from neruba.migrations import MigrationContext
    from neruba.migrations.m0004_day_contributions import apply

    # GIVEN a batch whose events were written, of which the previous version counted one cell (model a)
    # and crashed before the other (model b)
    send(_tokens("a1", 1, model="a"), _tokens("a2", 2, model="a"), _tokens("b1", 4, model="b"))
    _crash_before_counting(worker, monkeypatch)
    batch = str(_usage().get_event("acme", "a1").batch)  # type: ignore[union-attr]
    _legacy_contribution("acme", H, "model=a", batch, ["a1", "a2"], 3)
    # WHEN the migration runs, then the sweep (the messages' redelivery finds them counted or adopts them)
    apply(MigrationContext(get_settings(), datetime.now(UTC)))
    assert _usage().counted([(GroupRef("acme", "tokens", H, "model=a"), batch)])
    assert not _usage().counted([(GroupRef("acme", "tokens", H, "model=b"), batch)])
    _sweep()
    process()
    # THEN the cell the previous version counted is counted once, the other one once
    assert _totals() == {(H, "model=a"): (2, 3), (H, "model=b"): (1, 4)}


# ------------------------------------------------------------------------------------------ a hot customer
@pytest.fixture
def sharded(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("NERUBA_USAGE_SHARDS", "8")
    bootstrap.reset()
    return 8


def test_a_sharded_meter_spreads_one_customers_batches_and_reads_them_all_exactly(
    sharded: int, send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployment with 8 usage shards and one customer sending 40 batches
    for b in range(40):
        send(*[_tokens(f"h{b}-{i}", 1 + i, model=f"m{i % 2}") for i in range(5)])
        process(batch_size=5)
    # THEN its contributions spread over the partitions (batch ids are random: 40 of them over 8 shards
    # leave one shard empty about once in 26 runs, so the test asks for a spread, not an even one)
    per_shard = [len(_partition_items("AGG#acme#tokens" + (f"#{n}" if n else ""))) for n in range(sharded)]
    assert sum(per_shard) == 40 and sum(1 for n in per_shard if n) >= 5 and max(per_shard) <= 20
    # AND the usage reads every shard (one Query each) and counts every event once
    queries = _Queries(monkeypatch)
    totals = _totals()
    assert queries.count == sharded
    assert totals == {(H, "model=m0"): (120, 40 * (1 + 3 + 5)), (H, "model=m1"): (80, 40 * (2 + 4))}
    # AND the outcome counters spread over the shards too, and read back added up
    now = datetime.now(UTC)
    day = now.strftime("%Y-%m-%d")
    spread = [len(_partition_items(f"OUT#{day}" + (f"#{n}" if n else ""))) for n in range(sharded)]
    assert sum(1 for n in spread if n) >= 4
    rows = _usage().outcomes(now - timedelta(hours=1), now + timedelta(minutes=1))
    assert sum(row.counts.get("accepted", 0) for row in rows) == 200
    assert len({row.minute for row in rows}) == len(rows)


def test_a_sharded_meter_counts_redeliveries_and_crashed_batches_once(
    sharded: int, send: Any, process: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba_tools.local.pollers import build_sqs_event
    from tests.support.aws import queue_url
    from tests.support.lambda_context import FakeContext
    from tests.support.queues import receive_batch, run_batch

    # GIVEN a batch counted, then delivered again whole and in other batches (one per message)
    send(*[_tokens(f"r{i}", 1) for i in range(4)])
    url = queue_url("IngestQueue")
    records = receive_batch(url, 10)
    assert run_batch(worker, url, records) == set()
    arn = "arn:aws:sqs:us-east-1:123456789012:test-IngestQueue"
    worker(build_sqs_event(records, queue_arn=arn), FakeContext())
    for record in records:
        worker(build_sqs_event([record], queue_arn=arn), FakeContext())
    # AND a batch whose worker was killed before counting, adopted by the sweep, then delivered again
    send(*[_tokens(f"c{i}", 10) for i in range(3)])
    _crash_before_counting(worker, monkeypatch)
    _sweep()
    process()
    # THEN every event counts once
    assert _totals() == {(H, "model=m"): (7, 34)}
    # AND the adopted events moved to the sweep's contribution, wherever its shard is
    assert all(str(_usage().get_event("acme", f"c{i}").batch).startswith("sweep-") for i in range(3))  # type: ignore[union-attr]


@pytest.mark.parametrize("then", ["redelivered", "swept"])
def test_a_worker_killed_between_two_contributions_counts_each_once(
    then: str, send: Any, process: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.aws import queue_url
    from tests.support.queues import receive_batch, run_batch

    # GIVEN one batch with events of two customers and two days of one of them (three contributions), its
    # worker killed right after the first contribution's put
    yesterday = -24 - HOUR.hour + 1
    send(
        _tokens("a1", 1),
        _tokens("a2", 2, model="other"),
        _tokens("a3", 4, hours=yesterday),
        _tokens("g1", 8, customer="globex"),
    )
    real = UsageRepository.count_group
    calls: list[str] = []

    def killed_after_first(self: UsageRepository, batch: str, write: Any, now: datetime) -> bool:
        if calls:
            raise KeyboardInterrupt
        calls.append(batch)
        return real(self, batch, write, now)

    url = queue_url("IngestQueue")
    with monkeypatch.context() as patch:
        patch.setattr(UsageRepository, "count_group", killed_after_first)
        assert run_batch(worker, url, receive_batch(url, 10))
    assert len(calls) == 1
    # WHEN the batch is delivered again whole, or the sweep adopts what was not counted first
    if then == "swept":
        _sweep()
    process()
    # THEN every event counts once, whichever contribution was written before the kill
    day_before = (HOUR + timedelta(hours=yesterday)).strftime("%Y-%m-%dT%H")
    assert _totals() == {(H, "model=m"): (1, 1), (H, "model=other"): (1, 2), (day_before, "model=m"): (1, 4)}
    assert _totals("globex") == {(H, "model=m"): (1, 8)}
