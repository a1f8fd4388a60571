"""The client against the local stack through the fault proxy: 500 events, some requests answered 500
(before or after the stack saw them), some connections dropped, some answers held past the client's
timeout; the stack must count every event exactly once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support.client_faults import send_through_faults
from tests.support.fault_proxy import FaultPlan

pytestmark = pytest.mark.integration

EVENTS = 500


def test_events_sent_through_faults_are_counted_exactly_once(local_stack: Any) -> None:
    from neruba_tools.local.seed import seed_demo

    demo = seed_demo()
    # batches of 25 make 20 batches, so that each kind of fault is met (seeded, the same on every run)
    run = send_through_faults(
        local_stack,
        demo.api_key,
        EVENTS,
        FaultPlan(seed=19, delay_seconds=2.5),
        batch_size=25,
        client_timeout=1.5,
        settle_timeout=600,  # only waits as long as the stack needs; a busy machine needs more
    )
    faults = {k: v for k, v in run.proxy_counts.items() if k not in ("pass", "untouched")}
    assert set(faults) == {"error_before", "error_after", "drop_before", "drop_after", "delay"}, (
        run.proxy_counts
    )
    assert run.failures == []
    assert run.batcher["queued"] == EVENTS, run.as_dict()
    # nothing lost, nothing double: usage, per-event outcomes, the dead-letter queue
    assert run.usage_events == EVENTS, run.as_dict()
    assert Decimal(run.usage_total) == Decimal(run.expected_total) == EVENTS * (EVENTS + 1) // 2
    assert run.checked_events == EVENTS and run.statuses == {"accepted": EVENTS}
    assert run.accepted_copies == {1: EVENTS}
    assert run.dead_letters == 0
    # this stack saw no other event: its outcome totals are the run's
    assert run.outcome_totals.get("accepted") == EVENTS and run.outcome_totals.get("failed", 0) == 0
    # the faults after forwarding made the stack see some batches twice: the copies were recognised
    assert run.events_with_duplicates >= 1
