"""Sparse batches (many customers, a few events each) write pending items that a fold moves into one
contribution per customer, meter, day and minute: every read counts each event once before, during and
after the fold, whatever is killed, raced or delivered twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from neruba.dal import pending as pending_module
from neruba.dal.pending import PendingUsage
from neruba.dal.usage import UsageRepository
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
H = HOUR.strftime("%Y-%m-%dT%H")
CUSTOMERS = [f"c{i:02d}" for i in range(20)]


class _Killed(BaseException):
    """The process dying at that point: nothing after it runs."""


@pytest.fixture
def customers(catalog: Any) -> list[str]:
    from neruba.models.catalog import Customer

    for external_id in CUSTOMERS:
        catalog.create_customer(Customer(external_id=external_id, name=external_id, currency="USD"))
    return CUSTOMERS


def _calls(tx: str, customer: str, minutes: int = 5) -> dict[str, Any]:
    return ev(tx, customer, code="api_calls", timestamp=(HOUR + timedelta(minutes=minutes)).isoformat())


def _sparse(prefix: str = "e", rounds: int = 1) -> list[dict[str, Any]]:
    """One event per customer and round: every customer's day in a batch is sparse."""
    return [_calls(f"{prefix}{r}-{c}", c, minutes=r) for r in range(rounds) for c in CUSTOMERS]


def _window(customer: str) -> dict[str, str]:
    end = HOUR + timedelta(hours=1)
    return {"customer_id": customer, "from": HOUR.isoformat(), "to": end.isoformat(), "limit": "10"}


def _usage() -> UsageRepository:
    return UsageRepository(get_settings().usage_table)


def _counts() -> dict[str, int]:
    usage = _usage()
    return {c: sum(cell.usage.count for cell in usage.aggregates(c, "api_calls", H, H)) for c in CUSTOMERS}


def _fold(minutes: int = 20) -> dict[str, int]:
    return _usage().pending.fold(datetime.now(UTC) + timedelta(minutes=minutes))


def _items(prefix: str) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb")
    items = ddb.scan(TableName=get_settings().usage_table)["Items"]
    return [i for i in items if i["pk"]["S"].startswith(prefix)]


def _queue() -> tuple[str, Callable[..., list[dict[str, Any]]], Callable[..., set[str]]]:
    from tests.support.aws import queue_url
    from tests.support.queues import receive_batch, run_batch

    return queue_url("IngestQueue"), receive_batch, run_batch


def test_a_sparse_batch_is_a_few_pending_items_read_before_and_after_the_fold(
    customers: list[str], send: Any, process: Any, read: Any
) -> None:
    # GIVEN two batches, each with one event of each of 12 customers
    send(*_sparse("a"))
    process()
    send(*_sparse("b"))
    process()
    # THEN no customer's partition holds a contribution: each batch wrote one pending item per pending shard
    assert _items("AGG#") == []
    pending = [i for i in _items("PND#") if "!" in i["sk"]["S"]]
    assert 2 <= len(pending) <= 2 * pending_module.PENDING_SHARDS
    # AND billing's read, and the events list, see every event once
    assert _counts() == dict.fromkeys(CUSTOMERS, 2)
    status, body = read("/v1/events", _window("c03"))
    assert status == 200, body
    assert sorted(e["transaction_id"] for e in body["data"]) == ["a0-c03", "b0-c03"]
    # WHEN the fold runs before the minute is closed, nothing is folded
    assert _fold(minutes=0)["minutes"] == 0
    # WHEN it runs once the minute is closed
    report = _fold()
    # THEN each customer has one contribution per window holding its batches' events, read once (the two
    # batches share a window unless the clock crossed a ten-minute boundary between them)
    windows = {i["sk"]["S"].split("!")[0] for i in pending}
    assert report["contributions"] == len(CUSTOMERS) * len(windows)
    assert len(_items("AGG#")) == len(CUSTOMERS) * len(windows)
    assert _counts() == dict.fromkeys(CUSTOMERS, 2)
    status, body = read("/v1/events", _window("c03"))
    assert sorted(e["transaction_id"] for e in body["data"]) == ["a0-c03", "b0-c03"]
    # AND folding again writes nothing
    assert _fold()["minutes"] == 0


@pytest.mark.parametrize("kill_at", [0, 5, 11, "watermark"])
def test_a_fold_killed_between_any_two_writes_is_finished_by_the_next_fold(
    customers: list[str], send: Any, process: Any, monkeypatch: pytest.MonkeyPatch, kill_at: Any
) -> None:
    # GIVEN a sparse batch counted
    send(*_sparse())
    process()
    # WHEN a fold is killed after its n-th contribution put (or before moving the watermark)
    real_put = pending_module.client
    puts: list[str] = []

    def killing(name: str) -> Any:
        inner = real_put(name)

        class Wrapper:
            def __getattr__(self, attr: str) -> Any:
                return getattr(inner, attr)

            def put_item(self, **kwargs: Any) -> Any:
                if kwargs["Item"]["pk"]["S"].startswith("AGG#") and len(puts) == kill_at:
                    raise _Killed
                puts.append(kwargs["Item"]["pk"]["S"])
                return inner.put_item(**kwargs)

            def update_item(self, **kwargs: Any) -> Any:
                if kill_at == "watermark":
                    raise _Killed
                return inner.update_item(**kwargs)

        return Wrapper()

    with monkeypatch.context() as patch:
        patch.setattr(pending_module, "client", killing)
        with pytest.raises(_Killed):
            _fold()
    # THEN every read in between counts each event once
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)
    # AND the next fold finishes it, writing only what is missing
    report = _fold()
    assert len(puts) + report["contributions"] == len(CUSTOMERS)
    if kill_at == "watermark":  # the killed fold's minute is folded again: its contributions are found
        assert report["present"] == len(puts) > 0
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)
    assert len(_items("AGG#")) == len(CUSTOMERS)


def test_two_folds_at_once_write_each_contribution_once(
    customers: list[str], send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a sparse batch
    send(*_sparse())
    process()
    # WHEN a second fold runs whole while the first is between two of its puts
    real = PendingUsage._fold_minute
    raced: list[dict[str, int]] = []

    def racing(self: PendingUsage, *args: Any) -> tuple[int, int]:
        if not raced:
            raced.append({})
            raced[0] = self.fold(datetime.now(UTC) + timedelta(minutes=20))
        return real(self, *args)

    monkeypatch.setattr(PendingUsage, "_fold_minute", racing)
    first = _fold()
    # THEN the second wrote every contribution, the first found them, and each event reads once
    assert raced[0]["contributions"] == len(CUSTOMERS)
    assert first["present"] > 0 and first["contributions"] == 0
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)


@pytest.mark.parametrize("moment", ["after_pending_read", "after_partition_read"])
def test_billing_racing_the_fold_counts_each_event_once(
    customers: list[str], send: Any, process: Any, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    # GIVEN sparse batches counted, not folded
    send(*_sparse("a"))
    process()
    send(*_sparse("b"))
    process()
    usage = _usage()
    # WHEN the fold runs (contributions and watermark) in the middle of a billing read
    folded: list[dict[str, int]] = []
    if moment == "after_pending_read":
        real_unfolded = PendingUsage.unfolded

        def then_fold(self: PendingUsage, *args: Any) -> Any:
            found = real_unfolded(self, *args)
            if not folded:
                folded.append(_fold())
            return found

        monkeypatch.setattr(PendingUsage, "unfolded", then_fold)
    else:
        real_query = UsageRepository._query

        def query_then_fold(self: UsageRepository, pk: str, between: Any = None) -> Any:
            found = real_query(self, pk, between)
            if pk.startswith("AGG#") and not folded:
                folded.append(_fold())
            return found

        monkeypatch.setattr(UsageRepository, "_query", query_then_fold)
    cells = usage.aggregates("c00", "api_calls", H, H)
    # THEN the read counted each event once, and so do the reads after it
    assert folded and folded[0]["contributions"] == len(CUSTOMERS)
    assert sum(c.usage.count for c in cells) == 2
    monkeypatch.undo()
    assert _counts() == dict.fromkeys(CUSTOMERS, 2)


@pytest.mark.parametrize("hold_passed", [False, True])
def test_a_sparse_batch_delivered_again_whole_counts_once(
    customers: list[str], send: Any, monkeypatch: pytest.MonkeyPatch, hold_passed: bool
) -> None:
    # GIVEN a sparse batch counted (pending), its messages not deleted (the worker died after counting)
    send(*_sparse())
    url, receive_batch, run_batch = _queue()
    messages = receive_batch(url, 100)
    from functions.ingest_worker import app
    from neruba_tools.local.pollers import build_sqs_event
    from tests.support.lambda_context import FakeContext

    event = build_sqs_event(messages, queue_arn="arn:aws:sqs:us-east-1:123456789012:test-IngestQueue")
    assert app.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    # WHEN the same batch is delivered to a second worker (within the first's hold, or after it)
    from neruba.logic.ingest import worker as ingest_worker

    if hold_passed:
        monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    failed = run_batch(app.lambda_handler, url, messages)
    # THEN within the hold its messages come back later; after it nothing more is counted
    assert (len(failed) == len(CUSTOMERS)) is not hold_passed
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)
    _fold()
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    from tests.support.queues import drain

    drain(app.lambda_handler, url)
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)


def test_a_duplicate_storm_over_sparse_batches_counts_each_event_once(
    customers: list[str], send: Any, process: Any
) -> None:
    # GIVEN each event sent 5 times, in batches of every shape, with a fold in between
    events = _sparse(rounds=3)
    for n in range(5):
        send(*events[n::2], *events[::3])
        process(batch_size=7 + 13 * n)
        if n == 2:
            _fold()
    process()
    # THEN each event counts once, before and after the last fold
    assert _counts() == dict.fromkeys(CUSTOMERS, 3)
    _fold()
    assert _counts() == dict.fromkeys(CUSTOMERS, 3)


def test_a_pending_put_that_landed_but_failed_is_not_counted_again(
    customers: list[str], send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a pending put that lands and then reports a lost connection
    real = PendingUsage.put

    def landed_then_failed(self: PendingUsage, *args: Any) -> bool:
        real(self, *args)
        raise ConnectionError("connection reset")

    monkeypatch.setattr(PendingUsage, "put", landed_then_failed)
    send(*_sparse())
    # WHEN the worker falls back to contributions (checked against its own pending item)
    process()
    # THEN nothing is counted twice and no contribution was written
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)
    assert _items("AGG#") == []


def test_a_pending_put_that_failed_falls_back_to_contributions(
    customers: list[str], send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN pending puts refused
    def refused(self: PendingUsage, *args: Any) -> bool:
        raise ConnectionError("connection reset")

    monkeypatch.setattr(PendingUsage, "put", refused)
    send(*_sparse())
    process()
    # THEN every day is its own contribution, counted once
    assert len(_items("AGG#")) == len(CUSTOMERS)
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)


def test_events_of_a_killed_sparse_batch_are_adopted_once_by_the_sweep_and_redelivery(
    customers: list[str], send: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a sparse batch whose worker was killed after writing its events, before counting
    send(*_sparse())
    url, receive_batch, run_batch = _queue()

    def killed(*args: Any, **kwargs: Any) -> bool:
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(PendingUsage, "put", killed)
        patch.setattr(UsageRepository, "count_group", killed)
        assert run_batch(worker, url, receive_batch(url, 100))
    assert _counts() == dict.fromkeys(CUSTOMERS, 0)
    # WHEN the sweep adopts them, then SQS delivers the messages again after the hold, then a fold
    from functions.sweeper.app import run_sweep
    from neruba.logic.ingest import worker as ingest_worker

    now = datetime.now(UTC)
    run_sweep(now - timedelta(minutes=5), now + timedelta(minutes=1), now=now + timedelta(minutes=20))
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    from tests.support.queues import drain

    drain(worker, url, batch_size=5)
    _fold()
    # THEN each event counts once
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)


def test_a_copy_held_by_a_pending_item_is_not_adopted_by_another_batch(
    customers: list[str], send: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a sparse batch counted through its pending item, then its messages delivered again in other,
    # smaller batches after its hold (its deletion was lost)
    send(*_sparse())
    url, receive_batch, run_batch = _queue()
    from functions.ingest_worker import app
    from neruba.logic.ingest import worker as ingest_worker
    from neruba_tools.local.pollers import build_sqs_event
    from tests.support.lambda_context import FakeContext

    messages = receive_batch(url, 100)
    event = build_sqs_event(messages, queue_arn="arn:aws:sqs:us-east-1:123456789012:test-IngestQueue")
    assert app.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    for start in range(0, len(messages), 5):
        assert run_batch(app.lambda_handler, url, messages[start : start + 5]) == set()
    # THEN nothing is counted twice, before or after the fold
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)
    _fold()
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)


def test_carry_over_and_recount_reads_see_pending_days_once(
    customers: list[str], send: Any, process: Any
) -> None:
    # GIVEN a sparse batch of a `latest` meter (what carry-over reads) and of a count meter
    send(
        *[
            ev(
                f"l-{c}",
                c,
                code="plan_level",
                timestamp=(HOUR + timedelta(minutes=9)).isoformat(),
                properties={"level": 3},
            )
            for c in CUSTOMERS
        ]
    )
    process()
    usage = _usage()
    after = (HOUR + timedelta(hours=1)).strftime("%Y-%m-%dT%H")
    for fold in (False, True):
        if fold:
            _fold()
        # THEN the last cell before the next hour is the pending (then folded) one, counted once
        cell = usage.last_cell_before("c07", "plan_level", after)
        assert cell is not None and (cell.hour, cell.usage.count, cell.usage.latest) == (H, 1, 3)
        # AND the sweep's recount lists the event once, flagged pending until the fold
        parts = usage.contributions("c07", "plan_level", H, H)
        assert [(p.transaction_ids, p.pending) for p in parts] == [(("l-c07",), not fold)]


def _pending_items() -> list[dict[str, Any]]:
    return [i for i in _items("PND#") if i["sk"]["S"] != pending_module.WATERMARK]


def test_pending_items_never_expire_and_are_removed_only_once_folded_and_kept_long_enough(
    customers: list[str], send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a sparse batch counted through pending items
    send(*_sparse())
    process()
    written = _pending_items()
    # THEN no pending item carries an expiry: unfolded usage cannot vanish, however long the sweep stops
    assert written and all("ttl" not in item for item in written)
    # WHEN the fold cannot fold, long after the items' retention
    late = pending_module.KEEP_FOLDED + timedelta(days=1)

    def broken(self: PendingUsage, *args: Any) -> tuple[int, int]:
        raise ConnectionError("throttled")

    with monkeypatch.context() as patch:
        patch.setattr(PendingUsage, "_fold_minute", broken)
        with pytest.raises(ConnectionError):
            _usage().pending.fold(datetime.now(UTC) + late)
    # THEN no pending item was removed and every event still counts once
    assert len(_pending_items()) == len(written)
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)
    # WHEN the fold runs soon after the window closed
    _fold()
    # THEN the folded items are kept (a redelivered batch is checked against them)
    assert len(_pending_items()) == len(written)
    # WHEN a later fold runs once they are older than their retention
    report = _usage().pending.fold(datetime.now(UTC) + late)
    # THEN it removes them, and every event still counts once
    assert report["removed"] == len(written)
    assert _pending_items() == []
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)


def test_drift_skipped_while_pending_is_repaired_once_the_fold_folds_its_days(
    customers: list[str], send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.sweeper.app import run_sweep
    from neruba.logic.sweeps import usage as sweep

    monkeypatch.setattr(sweep, "SETTLE", timedelta(0))
    at = (HOUR + timedelta(minutes=5)).isoformat()
    # GIVEN a sparse batch of a sum meter, counted pending, and one event's stored value changed since
    # (the cell drifted from its events)
    send(
        *[
            ev(f"t-{c}", c, code="tokens", timestamp=at, properties={"tokens": 2, "model": "m"})
            for c in CUSTOMERS
        ]
    )
    process()
    boto3.client("dynamodb").update_item(
        TableName=get_settings().usage_table,
        Key={"pk": {"S": "EVT#c00#t-c00"}, "sk": {"S": "#"}},
        UpdateExpression="SET p = :p",
        ExpressionAttributeValues={":p": {"S": '{"tokens": 5, "model": "m"}'}},
    )

    def total() -> Any:
        return sum(c.usage.total for c in _usage().aggregates("c00", "tokens", H, H))

    # WHEN the sweep checks the batch before its window is closed
    now = datetime.now(UTC)
    first = run_sweep(now - timedelta(minutes=5), now + timedelta(minutes=1), now=now, checks=["usage"])
    # THEN the drifted cell is not recomputed while its day is pending
    assert first["checks"][0]["repairs"] == [] and total() == 2
    # WHEN a later sweep, whose window holds no batch touching that cell, folds the window
    later = now + timedelta(minutes=20)
    second = run_sweep(later - timedelta(minutes=5), later, now=later, checks=["usage"])
    # THEN it recomputes the cells it folded and repairs the drift, once
    drift = [r for r in second["checks"][0]["repairs"] if r["kind"] == "drift"]
    assert [(r["customer_id"], r["after"]["quantity"]) for r in drift] == [("c00", "5")]
    assert total() == 5
    third = run_sweep(
        later, later + timedelta(minutes=5), now=later + timedelta(minutes=20), checks=["usage"]
    )
    assert third["checks"][0]["repairs"] == [] and total() == 5


def test_the_sweep_reports_the_age_of_the_oldest_unfolded_window_as_a_metric(
    customers: list[str], send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.sweeper.app import run_sweep
    from neruba.observability import metrics as powertools_metrics

    seen: list[tuple[str, float]] = []
    original = powertools_metrics.add_metric

    def record(name: str, unit: Any, value: float, **kwargs: Any) -> None:
        seen.append((name, value))
        original(name=name, unit=unit, value=value, **kwargs)

    monkeypatch.setattr(powertools_metrics, "add_metric", record)
    # GIVEN a sparse batch counted pending
    send(*_sparse())
    process()
    window = datetime.fromisoformat(pending_module.minute_of(datetime.now(UTC).isoformat())).replace(
        tzinfo=UTC
    )
    # WHEN a sweep runs 30 seconds later, before the window closed (the batch may have landed late in its
    # ten-minute window: a sweep minutes later could already fold it)
    now = datetime.now(UTC) + timedelta(seconds=30)
    assert now < window + pending_module.WINDOW + pending_module.CLOSE
    report = run_sweep(now - timedelta(hours=1), now, now=now, checks=["usage"])
    # THEN it reports each shard's oldest unfolded window's age, and the oldest as a metric
    lag = report["checks"][0]["details"]["pending_lag_seconds"]
    oldest = int((now - window).total_seconds())
    assert max(lag.values()) == oldest and min(lag.values()) in (0, oldest)
    assert {str(s) for s, age in _pending_shards_with_items().items()} <= {s for s, a in lag.items() if a}
    assert ("PendingFoldLagSeconds", oldest) in seen
    # WHEN a later sweep folds every window
    seen.clear()
    later = now + timedelta(minutes=20)
    report = run_sweep(later - timedelta(hours=1), later, now=later, checks=["usage"])
    # THEN the lag is zero again
    assert set(report["checks"][0]["details"]["pending_lag_seconds"].values()) == {0}
    assert ("PendingFoldLagSeconds", 0) in seen


def _pending_shards_with_items() -> dict[int, int]:
    shards: dict[int, int] = {}
    for item in _pending_items():
        shard = int(item["pk"]["S"].split("#")[1])
        shards[shard] = shards.get(shard, 0) + 1
    return shards


def test_a_fold_lagging_behind_is_listed_with_the_alarms(
    customers: list[str], send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.ops_api.app import lambda_handler
    from neruba.logic.operations import alarms
    from tests.support.api import api_event, call

    def listed() -> list[dict[str, Any]]:
        status, body, _ = call(lambda_handler, api_event("GET", "/admin/alarms", scopes="admin"))
        assert status == 200, body
        return [a for a in body["data"] if a["name"] == "PendingFoldLag"]

    # GIVEN a sparse batch counted pending, not folded
    send(*_sparse())
    process()
    # THEN while its window is young, no alarm
    assert listed() == []
    # WHEN no fold has run for longer than the limit (the sweep stopped)
    monkeypatch.setattr(
        alarms, "_clock", lambda: datetime.now(UTC) + alarms.FOLD_LAG_LIMIT + timedelta(minutes=11)
    )
    # THEN the alarms list it, naming the shards behind
    (alarm,) = listed()
    assert alarm["state"] == "ALARM" and alarm["metric"] == "Neruba PendingFoldLagSeconds"
    for shard in _pending_shards_with_items():
        assert f"shard {shard}" in alarm["reason"]
    # WHEN the fold catches up
    _fold(minutes=int(alarms.FOLD_LAG_LIMIT.total_seconds() // 60) + 20)
    # THEN the alarm is gone
    assert listed() == []


def test_the_fold_lag_alarm_in_the_template_matches_the_listed_limit() -> None:
    from pathlib import Path

    from neruba.logic.operations.alarms import FOLD_LAG_LIMIT

    template = (Path(__file__).resolve().parents[3] / "template.yaml").read_text()
    block = template[template.index("  PendingFoldLagAlarm:") :].split("\n\n")[0]
    assert "MetricName: PendingFoldLagSeconds" in block
    assert f"Threshold: {int(FOLD_LAG_LIMIT.total_seconds())}" in block
    assert "TreatMissingData: breaching" in block  # a sweep that stopped emits nothing


def test_a_fold_killed_before_its_watermark_moves_hands_its_cells_to_the_next_fold(
    customers: list[str], send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a sparse batch, and a fold killed after writing a window's contributions, before its watermark
    send(*_sparse())
    process()
    later = datetime.now(UTC) + timedelta(minutes=20)
    first: list[set[Any]] = []

    def killed(self: PendingUsage, *args: Any) -> None:
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(PendingUsage, "_advance", killed)
        with pytest.raises(_Killed):
            _usage().pending.fold(later, on_folded=first.append)
    # WHEN the next fold runs
    again: list[set[Any]] = []
    _usage().pending.fold(later, on_folded=again.append)
    # THEN it hands the killed fold's cells over again (the sweep rechecks them), and every customer's
    assert first and first[0] <= set().union(*again)
    assert {ref.customer_id for ref in set().union(*again)} == set(CUSTOMERS)
    assert _counts() == dict.fromkeys(CUSTOMERS, 1)
