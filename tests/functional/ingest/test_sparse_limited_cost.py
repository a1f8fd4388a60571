"""What a sparse batch costs when every customer has a hard cap (one event per customer, meter and hour):
the event put and the counter put per event, the batch's shared pending items, and a few reads per batch,
counted as ``python -m benchmarks.limits`` counts them (``benchmarks.capacity.Meter``).

Found: each customer's limited day was a limited write of its own: event put, counter put and its own
contribution put (3 write units per event), plus a GetItem of the counter, of the write's own contribution
and of the contribution the counter last recorded (about 3 requests per event)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.functional.ingest.conftest import ev
from tests.support.deep import covering

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
CUSTOMERS = [f"s{i:02d}" for i in range(40)]
FEW = CUSTOMERS[:24]  # the fault tests: at least 16 sparse days (``dal.pending.PENDING_MIN_DAYS``)
ROUNDS = ("a", "b", "c")


@pytest.fixture
def capped(catalog: Any) -> list[str]:
    """40 customers, each with a hard cap no event reaches on api_calls."""
    from neruba.models.catalog import Customer
    from tests.functional.ingest.test_limits import _limits

    for external_id in CUSTOMERS:
        catalog.create_customer(Customer(external_id=external_id, name=external_id, currency="USD"))
        _limits(external_id, api_calls={"hard_cap": "1000"})
    return CUSTOMERS


def _batch(prefix: str, customers: list[str] = CUSTOMERS) -> list[dict[str, Any]]:
    at = (HOUR + timedelta(minutes=5)).isoformat()
    return [ev(f"{prefix}-{c}", c, code="api_calls", timestamp=at, properties={}) for c in customers]


def test_a_sparse_batch_of_capped_customers_costs_two_writes_per_event_and_a_few_reads(
    capped: list[str], send: Any, process: Any
) -> None:
    from benchmarks.capacity import Meter
    from neruba.dal.clients import client
    from tests.functional.ingest.test_limits import _usage

    send(*_batch("a"))
    process()
    # GIVEN a second sparse batch of the same customers (it completes, or finds complete, the first's writes)
    send(*_batch("b"))
    meter = Meter()
    meter.attach(client("dynamodb"), boto3.client("dynamodb"))
    # WHEN the worker counts it
    process()
    # THEN it writes each event and each counter once, and no contribution of its own per customer
    events = len(CUSTOMERS)
    assert meter.write_units["AGG"] == 0, dict(meter.write_units)
    assert meter.write_units["EVT"] == events
    assert meter.write_units["LIM"] == events
    assert meter.total_write_units / events <= 2.3, dict(meter.write_units)
    # AND reads the batch's counters (and the pending items their last writes name) in a few requests
    assert meter.requests["dynamodb:GetItem"] <= 4, dict(meter.requests)
    assert meter.requests["dynamodb:PutItem"] <= 2 * events + 10, dict(meter.requests)
    assert meter.dynamodb_requests / events <= 2.5, dict(meter.requests)
    # AND each customer's usage counts both events once, before and after the fold
    assert {c: _usage(customer=c) for c in CUSTOMERS} == dict.fromkeys(CUSTOMERS, 2)
    from neruba import bootstrap

    usage = bootstrap.usage()
    day = HOUR.strftime("%Y-%m-%dT%H")
    for moment in ("before", "after"):
        counts = {
            c: sum(cell.usage.count for cell in usage.aggregates(c, "api_calls", day, day)) for c in CUSTOMERS
        }
        assert counts == dict.fromkeys(CUSTOMERS, 2), moment
        usage.pending.fold(datetime.now(UTC) + timedelta(minutes=20))


def _state(customers: list[str] = FEW) -> dict[str, Any]:
    """Per customer: the counter's usage, what the usage reads count (pending days included), the events'
    statuses and the alerts fired; and the outcome counters against the events' outcomes."""
    from neruba import bootstrap
    from tests.functional.ingest.test_limits import _alerts, _usage
    from tests.functional.ingest.test_outcome_counter_faults import _counters, _statuses

    usage = bootstrap.usage()
    day = HOUR.strftime("%Y-%m-%dT%H")
    keys = [(c, f"{p}-{c}") for p in ROUNDS for c in customers]
    fired: dict[str, int] = {}
    for alert in _alerts():
        fired[alert["customer_id"]] = fired.get(alert["customer_id"], 0) + 1
    return {
        "limit usage": {c: int(_usage(customer=c)) for c in customers},
        "counted": {
            c: sum(cell.usage.count for cell in usage.aggregates(c, "api_calls", day, day)) for c in customers
        },
        "statuses": {tx: str(e.status) for c, tx in keys if (e := usage.get_event(c, tx)) is not None},
        "alerts": fired,
        "outcomes match": _counters() == _statuses(keys),
    }


def _differences(state: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """What differs, per entry (the customers or events whose figure is not the expected one)."""
    found: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            wrong = {
                k: value.get(k) for k in {*value, *expected[key]} if value.get(k) != expected[key].get(k)
            }
            if wrong:
                found[key] = wrong
        elif value != expected[key]:
            found[key] = value
    return found


def _expected(customers: list[str] = FEW) -> dict[str, Any]:
    """Three events per customer (batches a, b, c), counted once each; the alert at 2 fired once."""
    return {
        "limit usage": dict.fromkeys(customers, len(ROUNDS)),
        "counted": dict.fromkeys(customers, len(ROUNDS)),
        "statuses": {f"{p}-{c}": "accepted" for p in ROUNDS for c in customers},
        "alerts": dict.fromkeys(customers, 1),
        "outcomes match": True,
    }


def _alerting(catalog: Any) -> None:
    """24 customers, each with a hard cap no event reaches and an alert at its second event."""
    from neruba.models.catalog import Customer
    from tests.functional.ingest.test_limits import _limits

    for external_id in FEW:
        catalog.create_customer(Customer(external_id=external_id, name=external_id, currency="USD"))
        _limits(external_id, api_calls={"hard_cap": "1000", "alerts": ["2"]})


@pytest.mark.parametrize(
    ("kill_at", "then"),
    covering([2, 26, 27, 40, 50, 53, 58, 70, 82], ["redelivered apart", "redelivered whole"]),
)
def test_a_sparse_limited_batch_killed_at_any_write_counts_each_event_and_alert_once(
    catalog: Any, enqueue: Any, worker: Any, monkeypatch: pytest.MonkeyPatch, kill_at: int, then: str
) -> None:
    """Writes of the second batch: its journal, 24 events, 24 counters (each recording its write and the
    pending item of its shard), 8 pending items, 24 alerts, the outcome counters. An alert its writer did
    not write is written by the counter's next writer (batch c), as for any limited write."""
    from functions.sweeper.app import run_sweep
    from neruba import bootstrap
    from neruba.logic.ingest import worker as ingest_worker
    from tests.functional.ingest.test_outcome_counter_faults import _kill_at_write
    from tests.support.aws import queue_url
    from tests.support.queues import drain, receive_batch, run_batch

    _alerting(catalog)
    url = queue_url("IngestQueue")
    enqueue(*_batch("a", FEW))
    drain(worker, url)
    # GIVEN a second sparse batch whose worker is killed at its kill_at-th write
    enqueue(*_batch("b", FEW))
    messages = receive_batch(url, 100)
    assert len(messages) == len(FEW)
    with monkeypatch.context() as patch:
        made = _kill_at_write(patch, kill_at)
        run_batch(worker, url, messages)
    if len(made) < kill_at - 1:
        pytest.skip(f"the attempt makes {len(made)} writes")
    # WHEN SQS delivers it again (in small batches, or whole: the same batch) once the hold has passed
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    drain(worker, url, batch_size=3 if then == "redelivered apart" else 100)
    # AND a third sparse batch of the same customers, then the usage sweep (its fold closes the window)
    enqueue(*_batch("c", FEW))
    drain(worker, url)
    now = datetime.now(UTC)
    run_sweep(now - timedelta(minutes=5), now + timedelta(minutes=1), now=now + timedelta(minutes=20))
    # THEN every event is counted once, in the counters and the usage, and each alert fired once
    state, expected = _state(), _expected()
    assert state == expected, (kill_at, _differences(state, expected))
    # AND the same after the fold of the pending items
    bootstrap.usage().pending.fold(datetime.now(UTC) + timedelta(minutes=20))
    assert _state() == _expected(), (kill_at, made)


def test_a_write_completed_by_another_batch_before_its_pending_item_is_put_is_counted_once(
    catalog: Any, enqueue: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counters of a sparse batch move; before its pending items are put, another batch of the same
    customers completes their records (an empty pending item in each shard, a contribution per day): the
    first batch's pending puts then find their items taken and write its days as contributions."""
    from neruba import bootstrap
    from neruba.dal.pending import PendingUsage
    from tests.support.aws import queue_url
    from tests.support.queues import drain, receive_batch, run_batch

    _alerting(catalog)
    url = queue_url("IngestQueue")
    enqueue(*_batch("a", FEW))
    first = receive_batch(url, 100)
    enqueue(*_batch("b", FEW))
    second = receive_batch(url, 100)
    real_put = PendingUsage.put
    ran: list[str] = []

    def put(self: PendingUsage, *args: Any, **kwargs: Any) -> bool:
        if not ran:  # the first batch's counters moved: the second batch runs in between
            ran.append("second")
            assert run_batch(worker, url, second) == set()
        return real_put(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(PendingUsage, "put", put)
        assert run_batch(worker, url, first) == set()
    enqueue(*_batch("c", FEW))
    drain(worker, url)
    # THEN each event is counted once, each alert fired once
    assert _state() == _expected()
    bootstrap.usage().pending.fold(datetime.now(UTC) + timedelta(minutes=20))
    assert _state() == _expected()


@pytest.mark.parametrize("landed", [True, False])
def test_a_pending_put_that_fails_leaves_each_limited_day_counted_once(
    catalog: Any, enqueue: Any, worker: Any, monkeypatch: pytest.MonkeyPatch, landed: bool
) -> None:
    """The pending puts of a sparse batch fail after their counters moved, having landed or not: the
    batch completes its limited writes itself (the days the item holds count there, the others as
    contributions after an empty item is put), and fires each alert once."""
    from botocore.exceptions import ClientError

    from neruba import bootstrap
    from neruba.dal.pending import PendingUsage
    from tests.support.aws import queue_url
    from tests.support.queues import drain

    _alerting(catalog)
    url = queue_url("IngestQueue")
    real_put = PendingUsage.put

    def put(self: PendingUsage, *args: Any, **kwargs: Any) -> bool:
        if landed:
            real_put(self, *args, **kwargs)
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
        raise ClientError(error, "PutItem")

    enqueue(*_batch("a", FEW))
    drain(worker, url)
    with monkeypatch.context() as patch:
        patch.setattr(PendingUsage, "put", put)
        enqueue(*_batch("b", FEW))
        drain(worker, url)
    # THEN the batch itself counted each of its events once and fired each alert
    state = _state()
    assert (state["counted"], state["limit usage"]) == (dict.fromkeys(FEW, 2), dict.fromkeys(FEW, 2))
    assert state["alerts"] == dict.fromkeys(FEW, 1)
    enqueue(*_batch("c", FEW))
    drain(worker, url)
    # AND after another batch each event is counted once, each alert fired once, before and after the fold
    assert _state() == _expected()
    bootstrap.usage().pending.fold(datetime.now(UTC) + timedelta(minutes=20))
    assert _state() == _expected()
