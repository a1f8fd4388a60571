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
