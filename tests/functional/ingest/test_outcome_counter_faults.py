"""The outcome counters equal the per-event outcomes after a worker is killed between any two of its
writes and SQS delivers the batch again (docs/architecture.md, "Outcome counters under a kill").

Found: a worker killed after writing a batch's events and before adding its outcome counters left the
counters short for good; the redelivery saw its own copies already recorded and added nothing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from neruba.dal.usage import UsageRepository
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.support.aws import queue_url
from tests.support.deep import every
from tests.support.queues import drain, receive_batch, run_batch

WRITES = {"PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem", "DeleteItem"}


class Killed(BaseException):
    """The Lambda runtime killing the worker: nothing after it runs."""


def _kill_at_write(monkeypatch: pytest.MonkeyPatch, n: int) -> list[str]:
    """Kill the process at its ``n``-th DynamoDB write (1-based); returns the writes made before."""
    import botocore.client

    made: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation in WRITES and self.meta.service_model.service_name == "dynamodb":
            if len(made) + 1 == n:
                raise Killed(operation)
            made.append(operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)
    return made


def _counters() -> Counter[str]:
    usage = UsageRepository(get_settings().usage_table)
    now = datetime.now(UTC)
    total: Counter[str] = Counter()
    for row in usage.outcomes(now - timedelta(hours=1), now + timedelta(hours=1)):
        total.update({k: v for k, v in row.counts.items() if v})
    return +total


def _statuses(keys: list[tuple[str, str]]) -> Counter[str]:
    """Each copy's outcome as the events record it: the stored copy's, then each later copy's."""
    usage = UsageRepository(get_settings().usage_table)
    found: Counter[str] = Counter()
    for customer_id, transaction_id in keys:
        event = usage.get_event(customer_id, transaction_id)
        if event is None:
            continue
        own = event.first_outcome if event.first_outcome == "replay" else event.status
        found[str(own)] += 1
        found.update(entry.outcome for entry in event.history)
    return found


def _events() -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    events = [ev(f"n{i}", code="tokens", properties={"tokens": i, "model": "m"}) for i in range(6)]
    events += [ev("n0", code="tokens", properties={"tokens": 0, "model": "m"})]  # duplicate
    events += [ev("n1", code="tokens", properties={"tokens": 99, "model": "m"})]  # conflict
    events += [ev("bad", code="no_such_meter")]  # failed
    events += [ev(f"g{i}", customer="globex", properties={}) for i in range(3)]
    keys = sorted({(e["customer_id"], e["transaction_id"]) for e in events})
    return events, keys


@pytest.mark.parametrize("kill_at", every(range(1, 20), 3))
def test_counters_equal_the_event_outcomes_after_a_kill_at_any_write(
    catalog: Any, enqueue: Any, worker: Any, monkeypatch: pytest.MonkeyPatch, kill_at: int
) -> None:
    from neruba.logic.ingest import worker as ingest_worker

    events, keys = _events()
    enqueue(*events)
    url = queue_url("IngestQueue")
    messages = receive_batch(url, 100)
    # GIVEN a worker killed at its kill_at-th write
    with monkeypatch.context() as patch:
        made = _kill_at_write(patch, kill_at)
        run_batch(worker, url, messages)
    if len(made) < kill_at - 1:
        pytest.skip(
            f"the attempt makes {len(made)} writes"
        )  # WHEN SQS delivers the messages again, in other batches, once the killed attempt's hold has passed
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    drain(worker, url, batch_size=4)
    # THEN the counters equal the outcomes the events record, copy by copy
    statuses = _statuses(keys)
    assert sum(statuses.values()) == len(events), (made, statuses)
    assert _counters() == statuses, (kill_at, made)
    # AND delivering every message once more changes nothing
    enqueue(*events[:3])
    drain(worker, url)
    assert _counters() == _statuses(keys)


def test_a_killed_attempt_still_inside_its_hold_is_completed_after_it(
    catalog: Any, enqueue: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.ingest import worker as ingest_worker

    # GIVEN an attempt killed just before it adds its outcome counters
    events, keys = _events()
    enqueue(*events)
    url = queue_url("IngestQueue")
    with monkeypatch.context() as patch:

        def killed(*args: Any, **kwargs: Any) -> None:
            raise Killed

        patch.setattr(UsageRepository, "add_outcomes", killed)
        run_batch(worker, url, receive_batch(url, 100))
    assert _counters() == Counter()
    # WHEN the messages come again while that attempt may still be running (its hold)
    failed = run_batch(worker, url, receive_batch(url, 100))
    # THEN the copies it recorded are sent back for later, nothing completed twice
    assert failed
    assert _counters()["accepted"] < _statuses(keys)["accepted"]
    # AND once the hold has passed the next delivery completes the counters exactly
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    drain(worker, url)
    assert _counters() == _statuses(keys)


def _limited_events() -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Calls past a hard cap of 3 (refused over_limit), with a duplicate, on acme; globex unlimited."""
    events = [ev(f"c{i}", properties={}) for i in range(6)]
    events += [ev("c0", properties={}), ev("c5", properties={})]  # duplicates
    events += [ev(f"g{i}", customer="globex", properties={}) for i in range(2)]
    keys = sorted({(e["customer_id"], e["transaction_id"]) for e in events})
    return events, keys


@pytest.mark.parametrize("kill_at", every(range(1, 22), 3))
def test_limited_counters_equal_the_event_outcomes_after_a_kill_at_any_write(
    catalog: Any, enqueue: Any, worker: Any, monkeypatch: pytest.MonkeyPatch, kill_at: int
) -> None:
    from neruba.logic.ingest import worker as ingest_worker
    from tests.functional.ingest.test_limits import _limits, _usage

    _limits(api_calls={"hard_cap": "3"})
    events, keys = _limited_events()
    enqueue(*events)
    url = queue_url("IngestQueue")
    messages = receive_batch(url, 100)
    # GIVEN a worker killed at its kill_at-th write (the limit counter's put, its completion included)
    with monkeypatch.context() as patch:
        made = _kill_at_write(patch, kill_at)
        run_batch(worker, url, messages)
    if len(made) < kill_at - 1:
        pytest.skip(f"the attempt makes {len(made)} writes")
    # WHEN SQS delivers the messages again in other batches once the killed attempt's hold has passed
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    drain(worker, url, batch_size=3)
    # AND the usage sweep counts what no delivery could (an event its killed batch still held)
    from functions.sweeper.app import run_sweep

    now = datetime.now(UTC)
    run_sweep(now - timedelta(minutes=5), now + timedelta(minutes=1), now=now + timedelta(minutes=20))
    # THEN the cap held, and the counters equal the outcomes the events record
    statuses = _statuses(keys)
    assert _usage() == 3
    assert _counters() == statuses, (kill_at, made)


def test_a_refusal_made_by_the_usage_sweep_is_in_the_outcome_counters(
    catalog: Any, enqueue: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.pending import PendingUsage
    from neruba.logic.ingest import worker as ingest_worker
    from tests.functional.ingest.test_limits import _limits, _usage

    # GIVEN a cap of 2 calls, and a worker that wrote 3 calls and was killed before counting them
    _limits(api_calls={"hard_cap": "2"})
    enqueue(*(ev(f"t{i}", properties={}) for i in range(3)))
    url = queue_url("IngestQueue")
    with monkeypatch.context() as patch:

        def killed(*args: Any, **kwargs: Any) -> None:
            raise Killed

        patch.setattr(UsageRepository, "count_group", killed)
        patch.setattr(PendingUsage, "put", killed)
        patch.setattr("neruba.logic.limits.gate.count_write", killed)
        run_batch(worker, url, receive_batch(url, 100))
    # WHEN the usage sweep counts them under the cap (refusing one over_limit)
    from functions.sweeper.app import run_sweep

    now = datetime.now(UTC)
    report = run_sweep(
        now - timedelta(minutes=5), now + timedelta(minutes=1), now=now + timedelta(minutes=20)
    )
    kinds = [r["kind"] for r in report["checks"][0]["repairs"]]
    assert kinds.count("event_over_limit") == 1, report
    # THEN the refusal is in the outcome counters, where every other refusal is counted
    assert _counters()["over_limit"] == 1
    # AND once SQS delivers the killed batch again, the counters equal the outcomes the events record
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    drain(worker, url)
    statuses = _statuses([("acme", f"t{i}") for i in range(3)])
    assert (statuses["accepted"], statuses["over_limit"]) == (2, 1)
    assert _usage() == 2
    assert _counters() == statuses


def _counted_calls(customer: str = "acme") -> list[str]:
    """The transaction ids the usage contributions of the customer's api_calls count (each once per
    contribution cell holding it)."""
    usage = UsageRepository(get_settings().usage_table)
    now = datetime.now(UTC)
    first, last = (
        (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H"),
        (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H"),
    )
    return [tx for c in usage.contributions(customer, "api_calls", first, last) for tx in c.transaction_ids]


@pytest.mark.parametrize("kill_at", every(range(1, 22), 3))
def test_limited_event_statuses_equal_what_is_counted_after_a_kill_at_any_write(
    catalog: Any, enqueue: Any, worker: Any, monkeypatch: pytest.MonkeyPatch, kill_at: int
) -> None:
    """Found: a kill right after the limit counter's put (its record pending) made the redelivery refuse
    every call, counted ones included; a kill after the record's contribution left calls past the cap
    accepted and uncounted."""
    from neruba.logic.ingest import worker as ingest_worker
    from tests.functional.ingest.test_limits import _limits, _usage

    _limits(api_calls={"hard_cap": "3"})
    events, keys = _limited_events()
    enqueue(*events)
    url = queue_url("IngestQueue")
    messages = receive_batch(url, 100)
    # GIVEN a worker killed at its kill_at-th write of a batch passing the cap
    with monkeypatch.context() as patch:
        made = _kill_at_write(patch, kill_at)
        run_batch(worker, url, messages)
    if len(made) < kill_at - 1:
        pytest.skip(f"the attempt makes {len(made)} writes")
    # WHEN SQS delivers the messages again in other batches, and the usage sweep runs
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    drain(worker, url, batch_size=3)
    from functions.sweeper.app import run_sweep

    now = datetime.now(UTC)
    run_sweep(now - timedelta(minutes=5), now + timedelta(minutes=1), now=now + timedelta(minutes=20))
    # THEN exactly the calls counted are accepted, the others refused over_limit, each counted once
    usage = UsageRepository(get_settings().usage_table)
    status = {}
    for customer_id, transaction_id in keys:
        event = usage.get_event(customer_id, transaction_id)
        if customer_id == "acme" and event is not None:
            status[transaction_id] = str(event.status)
    accepted = sorted(t for t, s in status.items() if s == "accepted")
    assert sorted(status) == [f"c{i}" for i in range(6)], (kill_at, made)
    assert {s for s in status.values()} <= {"accepted", "over_limit"}, status
    assert sorted(_counted_calls()) == accepted, (kill_at, made, status)
    assert _usage() == len(accepted) == 3, (kill_at, made, status)
