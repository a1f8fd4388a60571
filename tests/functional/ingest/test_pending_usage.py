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
    # THEN each customer has one contribution holding both batches' events, read once
    assert report["contributions"] == len(CUSTOMERS)
    assert len(_items("AGG#")) == len(CUSTOMERS)
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
