"""The relay: outbox items become stored events and one delivery message per (event, endpoint).

Runs on a schedule (every minute) and is safe to run again or twice at once, per outbox item:

1. the customer's sequence number is taken once (kept on the outbox item);
2. the event is stored with its exact body (the first stored body wins);
3. a pending delivery is created for each enabled endpoint that wants the type (kept if it exists);
4. one message per delivery is queued;
5. the outbox item is deleted (:func:`mark_done`).

A relay that dies before 5 does it all again on its next run: 1-3 change nothing, and the messages it
queues again are dropped by the worker (a delivered or leased delivery is not posted again). A relay that
finds an item of its page gone (another relay at the same time fanned it out) skips it; a customer's
numbers still follow the shard's order, because each relay numbers the items in that order and an item's
number is set once.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from neruba.dal.webhooks import OUTBOX_SHARDS, Endpoint, WebhooksRepository
from neruba.logic.webhooks.context import Webhooks
from neruba.models.webhooks import DeliveryMessage
from neruba.timefmt import answer_times, iso_z, ts

RETRY_WINDOW = timedelta(hours=72)
PAGE = 100


def envelope(outbox: dict[str, Any], sequence: int) -> str:
    """The event's body, as every attempt sends it: its times in the API's answer format (``iso_z``)."""
    return json.dumps(
        {
            "id": outbox["id"],
            "object": "event",
            "type": outbox["type"],
            "created": iso_z(outbox["created"]),
            "customer_id": outbox["customer_id"],
            "sequence": sequence,
            "data": {"object": answer_times(outbox["data"])},
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def wanted_by(endpoint: Endpoint, event_type: str) -> bool:
    return endpoint.enabled and event_type in endpoint.enabled_events


def message(event_id: str, endpoint_id: str, attempt: int, due: datetime) -> str:
    return DeliveryMessage(
        event_id=event_id, endpoint_id=endpoint_id, attempt=attempt, due_at=ts(due)
    ).model_dump_json()


def mark_done(repo: WebhooksRepository, outbox: dict[str, Any]) -> None:
    """Delete a fanned-out outbox item (the step a crash test kills)."""
    repo.delete_outbox(outbox)


def relay_once(hooks: Webhooks, now: datetime) -> dict[str, int]:
    """Fan out every pending outbox item; returns counts (events, messages)."""
    repo = hooks.repo
    endpoints = repo.all_endpoints()
    counts = {"events": 0, "messages": 0}
    for shard in range(OUTBOX_SHARDS):
        while True:
            items = repo.pending_outbox(shard, PAGE)
            for outbox in items:
                counts["messages"] += fan_out(hooks, outbox, endpoints, now)
                counts["events"] += 1
            if len(items) < PAGE:
                break
    return counts


def fan_out(hooks: Webhooks, outbox: dict[str, Any], endpoints: list[Endpoint], now: datetime) -> int:
    repo = hooks.repo
    if outbox["type"] == "alert.triggered" and outbox.get("sequence") is None and repo.event(outbox["id"]):
        # an alert's outbox item put again by a writer completing a pending limited write
        # (dal.limit_pending) after this event was fanned out: it is sent once
        mark_done(repo, outbox)
        return 0
    sequence = repo.assign_sequence(outbox)
    if sequence is None:
        return 0  # fanned out by another relay since this one read its page
    repo.put_event({**outbox, "sequence": sequence}, envelope(outbox, sequence))
    messages = []
    for endpoint in endpoints:
        if not wanted_by(endpoint, outbox["type"]):
            continue
        repo.create_delivery(outbox["id"], endpoint.id, now, now + RETRY_WINDOW)
        state = repo.delivery(outbox["id"], endpoint.id)
        if state is not None and state.status == "pending" and state.attempts == 0:
            messages.append((message(outbox["id"], endpoint.id, 1, now), 0))
    hooks.enqueue(messages)
    mark_done(repo, outbox)
    return len(messages)
