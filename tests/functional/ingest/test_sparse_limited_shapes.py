"""Sparse limited batches beyond "every event fits a unit cap" (``test_sparse_limited_cost``): an amount cap
(priced meter), spend alerts, and a customer's events in two limit periods (daily periods, two days in
one batch). Each shape's days join the batch's shared pending items once their counters moved
(``logic.limits.gate.share``), and each event, alert and spend step still counts once under kills,
redelivery and a racing batch.

Found: these shapes were counted with a contribution of their own per customer's meter and day (event
put, counter put, contribution put: about 3 write units per event, 4 with the spend counter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.functional.ingest.conftest import ev
from tests.support.deep import covering

CUSTOMERS = [f"p{i:02d}" for i in range(24)]  # at least 16 sparse days (``dal.pending.PENDING_MIN_DAYS``)
ROUNDS = ("a", "b", "c")
MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
YESTERDAY = MIDNIGHT - timedelta(days=1)
SHAPES = ("amount cap", "spend alerts", "two periods")


def _setup(catalog: Any, shape: str) -> None:
    """24 customers on a plan pricing api_calls at 0.10 each, with an alert at their second event, and:
    an amount cap no event reaches; or a hard cap and a spend alert at 0.20 (their second event); or a
    hard cap on daily periods from midnight (each batch's two days: two periods)."""
    from neruba import bootstrap
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.catalog import Customer, PlanCreate, SubscriptionCreate
    from neruba.models.limits import UsageLimitsIn

    plans = bootstrap.plans()
    plan = {
        "code": "calls",
        "name": "Calls",
        "currency": "USD",
        "interval": "month",
        "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.10"}],
    }
    create_plan(plans, PlanCreate.model_validate(plan))
    start = (MIDNIGHT - timedelta(days=40)).replace(day=1)
    meter: dict[str, Any] = {"meter_code": "api_calls", "alerts": ["2"]}
    body: dict[str, Any] = {"meters": [meter], "period_anchor": (YESTERDAY - timedelta(days=3)).isoformat()}
    if shape == "amount cap":
        meter["hard_cap_amount_minor"] = 10**6
    elif shape == "spend alerts":
        meter["hard_cap"] = "1000"
        body["spend_alerts_minor"] = [20]
    else:
        meter["hard_cap"] = "1000"
        meter["alerts"] = ["1"]  # each day's period: its first event
        body.update(interval="day", period_anchor=MIDNIGHT.isoformat())
    for customer in CUSTOMERS:
        catalog.create_customer(Customer(external_id=customer, name=customer, currency="USD"))
        subscription = SubscriptionCreate(customer_id=customer, plan_code="calls", start_at=start)
        create_subscription(plans, subscription, f"sub-{customer}", now=start)
        put_limits(customer, UsageLimitsIn.model_validate(body), None, Actor("test"))


def _days(shape: str) -> list[datetime]:
    """The days a batch's events fall on: one event per customer and day."""
    return [YESTERDAY - timedelta(days=1), YESTERDAY] if shape == "two periods" else [YESTERDAY]


def _batch(prefix: str, shape: str) -> list[dict[str, Any]]:
    return [
        ev(f"{prefix}{n}-{c}", c, timestamp=(day + timedelta(hours=10)).isoformat(), properties={})
        for n, day in enumerate(_days(shape))
        for c in CUSTOMERS
    ]


def _state(shape: str) -> dict[str, Any]:
    """Per customer: the usage the reads count (pending days included) and the events' statuses; the
    alerts fired per customer and kind; whether the outcome counters match the events' outcomes; and the
    limit counters' usage per customer (the current period's, or each day's with daily periods)."""
    from neruba import bootstrap
    from neruba.domain.periods import period_around
    from tests.functional.ingest.test_outcome_counter_faults import _counters, _statuses
    from tests.functional.webhooks.sources import outbox

    usage, limits = bootstrap.usage(), bootstrap.limits()
    days = _days(shape)
    first, last = days[0].strftime("%Y-%m-%dT00"), days[-1].strftime("%Y-%m-%dT23")
    keys = [(c, tx["transaction_id"]) for p in ROUNDS for tx in _batch(p, shape) for c in [tx["customer_id"]]]
    fired: dict[str, int] = {}
    for alert in (e["data"] for e in outbox("alert.triggered")):
        key = f"{alert['customer_id']} {alert['kind']}"
        fired[key] = fired.get(key, 0) + 1
    if shape == "two periods":
        periods = [period_around(MIDNIGHT, "day", day + timedelta(hours=10)) for day in days]
    else:
        periods = [period_around(YESTERDAY - timedelta(days=3), "month", YESTERDAY)]
    counters = {
        c: [int(limits.counter(c, "api_calls", *period).used) for period in periods] for c in CUSTOMERS
    }
    return {
        "counted": {
            c: sum(cell.usage.count for cell in usage.aggregates(c, "api_calls", first, last))
            for c in CUSTOMERS
        },
        "counters": counters,
        "statuses": {tx: str(e.status) for c, tx in keys if (e := usage.get_event(c, tx)) is not None},
        "alerts": fired,
        "outcomes match": _counters() == _statuses(keys),
    }


def _expected(shape: str) -> dict[str, Any]:
    days = len(_days(shape))
    kinds = {"amount cap": ["usage"], "spend alerts": ["usage", "spend"], "two periods": ["usage"]}[shape]
    return {
        "counted": dict.fromkeys(CUSTOMERS, len(ROUNDS) * days),
        "counters": {c: [len(ROUNDS)] * days for c in CUSTOMERS},
        "statuses": {tx["transaction_id"]: "accepted" for p in ROUNDS for tx in _batch(p, shape)},
        "alerts": {f"{c} {kind}": days if kind == "usage" else 1 for c in CUSTOMERS for kind in kinds},
        "outcomes match": True,
    }


@pytest.mark.parametrize("shape", SHAPES)
def test_a_sparse_batch_of_each_limited_shape_writes_no_contribution_of_its_own(
    catalog: Any, send: Any, process: Any, shape: str
) -> None:
    from benchmarks.capacity import Meter
    from neruba.dal.clients import client

    _setup(catalog, shape)
    send(*_batch("a", shape))
    process()
    # GIVEN a second sparse batch of the same customers
    send(*_batch("b", shape))
    meter = Meter()
    meter.attach(client("dynamodb"), boto3.client("dynamodb"))
    # WHEN the worker counts it
    process()
    # THEN its days go into the batch's pending items: each event and each counter written once, no
    # contribution of its own (the spend counter once more per customer with spend alerts)
    events = len(_batch("b", shape))
    assert meter.write_units["AGG"] == 0, dict(meter.write_units)
    assert meter.write_units["EVT"] == events
    spend = len(CUSTOMERS) if shape == "spend alerts" else 0
    assert meter.write_units["LIM"] == events + spend, dict(meter.write_units)
    alerts = meter.write_units["WHOUT"]  # each customer's alert (and spend alert) fires in this batch
    assert (meter.total_write_units - spend - alerts) / events <= 2.5, dict(meter.write_units)  # 24: 8 PND
    send(*_batch("c", shape))
    process()
    # AND each event counts once, before and after the fold; each alert fired once
    from neruba import bootstrap

    assert _state(shape) == _expected(shape)
    bootstrap.usage().pending.fold(datetime.now(UTC) + timedelta(minutes=20))
    assert _state(shape) == _expected(shape)


# Where the second batch is killed, after its journal and events (one per customer and day): among its
# counter puts, at its first pending put, among the first shard's alerts and spend steps, later on.
KILLS = [("counters", 12, "redelivered apart"), ("pending put", 25, "redelivered whole"),
         ("finishing", 27, "redelivered apart"), ("later shards", 30, "redelivered whole")]  # fmt: skip


@pytest.mark.parametrize(("shape", "at", "after_counters", "then"), covering(SHAPES, KILLS))
def test_a_sparse_batch_of_each_limited_shape_killed_at_a_write_counts_everything_once(
    catalog: Any,
    enqueue: Any,
    worker: Any,
    monkeypatch: pytest.MonkeyPatch,
    shape: str,
    at: str,
    after_counters: int,
    then: str,
) -> None:
    """The second batch's writes: its journal, its events, its counters (each recording its write, the
    pending item of its shard and, with spend alerts, the spend step), then per shard its pending item and
    the alerts and spend steps of the days it holds, the outcome counters; killed at one of them (counted
    from the first counter put: ``at``), then redelivered."""
    from functions.sweeper.app import run_sweep
    from neruba import bootstrap
    from neruba.logic.ingest import worker as ingest_worker
    from tests.functional.ingest.test_outcome_counter_faults import _kill_at_write
    from tests.support.aws import queue_url
    from tests.support.queues import drain, receive_batch, run_batch

    _setup(catalog, shape)
    url = queue_url("IngestQueue")
    enqueue(*_batch("a", shape))
    drain(worker, url)
    # GIVEN a second sparse batch whose worker is killed at its kill_at-th write
    enqueue(*_batch("b", shape))
    messages = receive_batch(url, 100)
    assert len(messages) == len(_batch("b", shape))
    kill_at = 1 + len(messages) + after_counters + (len(messages) - len(CUSTOMERS) if at != "counters" else 0)
    with monkeypatch.context() as patch:
        made = _kill_at_write(patch, kill_at)
        run_batch(worker, url, messages)
    if len(made) < kill_at - 1:
        pytest.skip(f"the attempt makes {len(made)} writes")
    # WHEN SQS delivers it again (in small batches, or whole) once the hold has passed
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    drain(worker, url, batch_size=3 if then == "redelivered apart" else 100)
    # AND a third batch, then the usage sweep
    enqueue(*_batch("c", shape))
    drain(worker, url)
    now = datetime.now(UTC)
    run_sweep(now - timedelta(minutes=5), now + timedelta(minutes=1), now=now + timedelta(minutes=20))
    # THEN every event is counted once, in the counters and the usage, and each alert fired once
    assert _state(shape) == _expected(shape), (kill_at, made[kill_at - 2 :])
    bootstrap.usage().pending.fold(datetime.now(UTC) + timedelta(minutes=20))
    assert _state(shape) == _expected(shape), kill_at


@pytest.mark.parametrize("shape", SHAPES)
def test_a_shared_write_of_each_shape_completed_by_a_racing_batch_counts_once(
    catalog: Any, enqueue: Any, worker: Any, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """The counters of a sparse batch move; before its pending items are put, another batch of the same
    customers completes their records (spend steps included): each day counts once, each alert fires once."""
    from neruba import bootstrap
    from neruba.dal.pending import PendingUsage
    from tests.support.aws import queue_url
    from tests.support.queues import drain, receive_batch, run_batch

    _setup(catalog, shape)
    url = queue_url("IngestQueue")
    enqueue(*_batch("a", shape))
    first = receive_batch(url, 100)
    enqueue(*_batch("b", shape))
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
    enqueue(*_batch("c", shape))
    drain(worker, url)
    assert _state(shape) == _expected(shape)
    bootstrap.usage().pending.fold(datetime.now(UTC) + timedelta(minutes=20))
    assert _state(shape) == _expected(shape)
