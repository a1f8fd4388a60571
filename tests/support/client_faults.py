"""Events sent with the Python client's batcher through the fault proxy to a running local stack, and
the counts read back from the stack: shared by tests/client/test_client_faults.py and
``python -m benchmarks.client_faults``."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from neruba_client import EventFailure, Neruba, RetryPolicy
from neruba_client.errors import APIError
from tests.support.fault_proxy import FaultPlan, FaultProxy


@dataclass
class FaultRun:
    events: int
    customer_id: str
    meter: str
    plan: dict[str, Any]
    proxy_counts: dict[str, int]
    batcher: dict[str, int]
    failures: list[str]
    send_seconds: float
    settle_seconds: float
    usage_events: int
    usage_total: str
    expected_total: str
    statuses: dict[str, int] = field(default_factory=dict)
    accepted_copies: dict[int, int] = field(default_factory=dict)  # accepted outcomes per event -> events
    events_with_duplicates: int = 0
    checked_events: int = 0
    outcome_totals: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _usage(client: Neruba, customer: str, meter: str, since: datetime) -> tuple[int, Decimal]:
    usage = client.customers.usage(
        customer,
        meter=meter,
        from_=since.replace(minute=0, second=0, microsecond=0),
        to=(datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0),
        granularity="day",
    )
    return sum(b.events for b in usage.data), usage.total


def _queues_idle(stack: Any) -> tuple[bool, int]:
    """Whether the ingest queue is empty, and how many messages its dead-letter queue holds."""
    counts = stack.queue_counts()
    ingest, dead = counts["IngestQueue"], counts["IngestDLQ"]
    return ingest["visible"] + ingest["in_flight"] + ingest["delayed"] == 0, dead["visible"] + dead[
        "in_flight"
    ]


def send_through_faults(
    stack: Any,
    api_key: str,
    events: int,
    plan: FaultPlan,
    *,
    batch_size: int = 100,
    client_timeout: float = 2.0,
    settle_timeout: float = 600.0,
    stall_seconds: float = 180.0,
    check_each: int | None = None,
) -> FaultRun:
    """Send ``events`` events (values 1..N, so the total is exact) and read back what the stack counted:
    the customer's usage, the stack's outcome totals (exact on a stack that saw no other events), and
    the outcomes of each event (of every ``len(events) // check_each``-th one when ``check_each`` is
    given, to keep large runs short)."""
    direct = Neruba(api_key, base_url=stack.base_url, timeout=60)
    suffix = uuid.uuid4().hex[:8]
    customer, meter = f"faults-{suffix}", f"fault_units_{suffix}"
    direct.customers.create(external_id=customer, name="Fault run", currency="USD")
    direct.meters.create(code=meter, name="Fault run units", aggregation="sum", field="value")
    since = datetime.now(UTC) - timedelta(hours=1)
    failures: list[EventFailure] = []
    started = time.monotonic()
    with FaultProxy(stack.base_url, plan) as proxy:
        proxied = Neruba(
            api_key,
            base_url=proxy.url,
            timeout=client_timeout,
            retry=RetryPolicy(max_retries=3, base_delay=0.05, max_delay=1.0),
        )
        with proxied.events.batcher(
            batch_size=batch_size,
            flush_interval=0.2,
            backoff_base=0.05,
            backoff_cap=1.0,
            close_timeout=300,
            on_error=failures.append,
        ) as batcher:
            ids = [batcher.add(customer, meter, {"value": i + 1}) for i in range(events)]
        proxied.close()
        counts = dict(proxy.counts)
    send_seconds = time.monotonic() - started

    settle_started = time.monotonic()
    deadline = settle_started + settle_timeout
    counted, total = _usage(direct, customer, meter, since)
    stalled_since = time.monotonic()
    while time.monotonic() < deadline:
        idle, _ = _queues_idle(stack)
        if counted + len(failures) >= events and idle:  # an event the batcher gave up on never comes
            break
        if idle and time.monotonic() - stalled_since > stall_seconds:
            break  # nothing queued and nothing counted for a while: what is missing will not come
        time.sleep(0.5)
        now_counted, total = _usage(direct, customer, meter, since)
        if now_counted != counted or not idle:
            stalled_since = time.monotonic()
        counted = now_counted
    settle_seconds = time.monotonic() - settle_started
    _, dead = _queues_idle(stack)

    statuses: Counter[str] = Counter()
    accepted: Counter[int] = Counter()
    with_duplicates = 0
    step = max(1, len(ids) // check_each) if check_each else 1
    checked = ids[::step]
    for transaction_id in checked:
        try:
            stored = direct.events.retrieve(transaction_id, customer_id=customer)
        except APIError as error:
            if error.code != "event_not_found":
                raise
            statuses["missing"] += 1  # never stored: lost between the client and the worker
            continue
        statuses[stored.status] += 1
        outcomes = Counter(o.outcome for o in stored.outcomes)
        accepted[outcomes["accepted"]] += 1
        with_duplicates += outcomes["duplicate"] > 0
    counted, total = _usage(direct, customer, meter, since)  # once more, after everything settled
    totals = direct.events.outcomes(
        from_=since.replace(minute=0, second=0, microsecond=0),
        to=(datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0),
        granularity="hour",
    ).totals
    direct.close()
    return FaultRun(
        events=events,
        customer_id=customer,
        meter=meter,
        plan=asdict(plan),
        proxy_counts=counts,
        batcher={k: int(v) for k, v in asdict(batcher.stats).items()},
        failures=[f"{f.event.transaction_id}: {f.code} {f.message}" for f in failures],
        send_seconds=round(send_seconds, 2),
        settle_seconds=round(settle_seconds, 2),
        usage_events=counted,
        usage_total=str(total),
        expected_total=str(events * (events + 1) // 2),
        statuses=dict(statuses),
        accepted_copies=dict(accepted),
        events_with_duplicates=with_duplicates,
        checked_events=len(checked),
        outcome_totals=dict(totals),
        dead_letters=dead,
    )
