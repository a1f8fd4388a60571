"""``neruba dlq show``: a Stripe sync message names its invoice and the error the invoice recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from neruba.dal.invoices import InvoicesRepository
from neruba.dal.transaction import Transaction
from neruba.settings import get_settings
from neruba_tools.dlq import describe


def _message(body: str) -> dict[str, Any]:
    return {
        "MessageId": "m-1",
        "Body": body,
        "Attributes": {"SentTimestamp": "0", "ApproximateReceiveCount": "9"},
    }


def test_a_sync_message_shows_the_recorded_sync_error(aws: dict[str, str]) -> None:
    table = get_settings().billing_table
    invoices = InvoicesRepository(table)
    doc = {"id": "in_1", "customer_id": "acme", "period_start": "2026-10-01T00:00:00Z", "status": "finalized"}
    Transaction([invoices.put_item(doc, datetime(2026, 11, 1, tzinfo=UTC))]).commit()
    invoices.set_sync(
        "in_1",
        {"invoice_id": "in_1", "status": "failed", "attempts": 8, "last_error": "stripe_not_configured"},
    )

    info = describe("StripeSyncQueue", _message('{"invoice_id": "in_1"}'), None, table)
    assert info["invoice_id"] == "in_1"
    assert info["failure_reason"] == "sync failed after 8 attempt(s): stripe_not_configured"
    missing = describe("StripeSyncQueue", _message('{"invoice_id": "in_404"}'), None, table)
    assert missing["failure_reason"] == "no invoice in_404"


def test_a_failed_scheduled_run_shows_its_function_and_error() -> None:
    # what Lambda's on-failure destination sends after the async retries of a scheduled run
    record = {
        "version": "1.0",
        "timestamp": "2026-11-01T00:00:05.000Z",
        "requestContext": {
            "requestId": "r-1",
            "functionArn": "arn:aws:lambda:eu-west-1:1:function:neruba-prod-SweeperFunction-Ab:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"source": "aws.events", "time": "2026-11-01T00:00:00Z"},
        "responsePayload": {"errorType": "TimeoutError", "errorMessage": "read timed out"},
    }
    import json

    info = describe(None, _message(json.dumps(record)), None, None)
    assert info["function"] == "neruba-prod-SweeperFunction-Ab"
    assert info["scheduled_at"] == "2026-11-01T00:00:00Z"
    assert info["failure_reason"] == "RetriesExhausted after 3 invocation(s): TimeoutError: read timed out"


def test_a_stripe_event_message_shows_the_recorded_outcome(aws: dict[str, str]) -> None:
    from neruba.dal.stripe_events import StripeEventsRepository

    table = get_settings().ops_table
    events = StripeEventsRepository(table)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    events.put_new({"id": "evt_1", "type": "invoice.paid", "created": int(at.timestamp())}, b"{}", at)
    events.record_attempt(
        "evt_1", status="failed", outcome="invoice_not_found", error="no invoice in_9", trigger="queue", at=at
    )

    info = describe("StripeEventsQueue", _message('{"event_id": "evt_1"}'), None, None, table)
    assert info["stripe_event_id"] == "evt_1"
    assert "failed" in info["failure_reason"] and "invoice_not_found" in info["failure_reason"]
    assert "no invoice in_9" in info["failure_reason"] and "logs" not in info["failure_reason"]
    missing = describe("StripeEventsQueue", _message('{"event_id": "evt_404"}'), None, None, table)
    assert missing["failure_reason"] == "no Stripe event evt_404 stored"
