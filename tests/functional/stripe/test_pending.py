"""The sweep's view of Stripe events: which stored events have not settled, and queuing them again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from tests.support.aws import queue_url, receive_all
from tests.support.stripe_events import charge_refunded, event, invoice_paid
from tests.support.stripe_ports import MemoryLedger


def test_pending_events_lists_unsettled_events_older_than_the_age_and_requeue_sends_them(
    deliver: Any, process: Any, ports: MemoryLedger, stored: Any
) -> None:
    from neruba.logic.stripe_pending import pending_events, requeue
    from neruba.settings import get_settings

    ops = get_settings().ops_table
    # GIVEN a processed payment, an ignored event, a deferred refund (waiting for another charge)
    deliver(invoice_paid())
    deliver(event("customer.created", {"id": "cus_1"}))
    waiting = charge_refunded(charge="ch_other")
    deliver(waiting)
    process()
    # AND an event stored whose queue message was lost (status received)
    lost = invoice_paid(invoice_id="in_ours_1", charge="ch_2")
    deliver(lost)
    sqs = boto3.client("sqs")
    receive_all(sqs, queue_url("StripeEventsQueue"))  # consumed and dropped
    assert stored(lost["id"])["status"] == "received"
    now = datetime.now(UTC)
    # WHEN the sweep asks for events unsettled for more than a minute, seen from now and from later
    assert pending_events(ops, timedelta(minutes=1), now=now) == []
    later = pending_events(ops, timedelta(minutes=1), now=now + timedelta(minutes=5))
    # THEN only the deferred and the received events are listed (oldest first)
    assert later == [waiting["id"], lost["id"]]
    # AND requeue sends them to StripeEventsQueue, and processing settles the lost one
    assert requeue(later) == 2
    process()
    assert stored(lost["id"])["status"] == "processed"
    assert stored(waiting["id"])["status"] == "deferred"
    assert pending_events(ops, timedelta(minutes=1), now=now + timedelta(minutes=5)) == [waiting["id"]]
