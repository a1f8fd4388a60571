"""Events of meters charged in advance: one message each to the billing queue, once counted.

A meter some plan version bills in advance carries a mark (``CatalogRepository.register_advance_meter``);
a batch whose meters carry none does nothing here (no read, no write). For a marked meter the ingest
worker, after writing the batch's contributions, sends ``{"advance": {customer_id, transaction_id,
meter_code, timestamp, value}}`` per counted event (``value``: the meter's value of the event as text:
the summed number, the unique value, null for a count) to the billing queue, whose worker bills it
(``logic.billing.advance``).

Retry safety: an event is sent after its contribution is written; when the send fails its ingest message
is failed too, so SQS delivers it again and the redelivered copy (found counted) is sent again. A kill
between the two writes is the same redelivery. Billing writes each event's item with a condition on
``(customer, transaction_id)``, so a message sent twice bills once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from neruba.dal.queue import send_batch


class _Event(Protocol):
    message_id: str
    customer_id: str
    transaction_id: str
    timestamp: str


def message(event: _Event, meter_code: str, value: Any) -> str:
    """The billing queue message of one counted event."""
    text = None if value is None else (format(value, "f") if isinstance(value, Decimal) else str(value))
    body = {
        "customer_id": event.customer_id,
        "transaction_id": event.transaction_id,
        "meter_code": meter_code,
        "timestamp": event.timestamp,
        "value": text,
    }
    return json.dumps({"advance": body}, sort_keys=True)


def parse_message(body: str) -> dict[str, Any]:
    """The event of a billing queue advance message; ValueError when it is not one (the message then
    fails until it reaches BillingDLQ)."""
    data = json.loads(body)
    event = data.get("advance") if isinstance(data, dict) else None
    keys = ("customer_id", "transaction_id", "meter_code", "timestamp")
    if not isinstance(event, dict) or not all(isinstance(event.get(k), str) and event[k] for k in keys):
        raise ValueError("not an advance billing message")
    return event


def send_counted(
    queue_url: str,
    counted: Iterable[tuple[_Event, str, Any]],
    advance_meters: set[str],
    failed: Iterable[str],
    refused: Mapping[tuple[str, str], str],
) -> list[str]:
    """Send the advance message of every counted event of a marked meter (not failed, not parked);
    returns the ingest message ids whose message could not be sent (their events are retried)."""
    if not advance_meters:
        return []
    skip = set(failed)
    messages: list[tuple[str, str]] = []
    owners: dict[str, str] = {}
    for event, meter_code, value in counted:
        if meter_code not in advance_meters or event.message_id in skip:
            continue
        if (event.customer_id, event.transaction_id) in refused:
            continue
        entry = str(len(messages))
        owners[entry] = event.message_id
        messages.append((entry, message(event, meter_code, value)))
    if not messages:
        return []
    return sorted({owners[entry] for entry in send_batch(queue_url, messages)})
