"""The transactional outbox: an event is written in the transaction of the state change it reports.

A producer adds :func:`event_action` to the actions it commits (or :func:`notify` to its
``Transaction``), so the change and its event are written together or not at all. The relay
(``logic.webhooks.relay``) fans each outbox item out to the endpoints that want it.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from neruba.dal.transaction import Transaction
from neruba.models.webhooks import EVENT_TYPES

GLOBAL_CUSTOMER = "_global"


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def event_action(
    event_type: str, customer_id: str | None, data: dict[str, Any], now: datetime, event_id: str | None = None
) -> dict[str, Any]:
    """The outbox Put of one event, for the producer's own transaction (in the ops table of the
    settings: producers import this module, never the composition root, so no import cycle forms)."""
    from neruba.dal.webhooks import outbox_put
    from neruba.settings import get_settings

    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    return outbox_put(
        get_settings().ops_table,
        event_id or new_event_id(),
        event_type,
        customer_id or GLOBAL_CUSTOMER,
        data,
        now,
    )


def notify(
    unit: Transaction, event_type: str, customer_id: str | None, data: dict[str, Any], now: datetime
) -> str:
    """Add the event to ``unit`` (named ``webhook_event``); returns its id."""
    event_id = new_event_id()
    unit.add(event_action(event_type, customer_id, data, now, event_id), name="webhook_event")
    return event_id


def once_actions(
    event_type: str, customer_id: str | None, data: dict[str, Any], now: datetime, key: str
) -> list[dict[str, Any]]:
    """The outbox Put and a mark keyed ``key`` (``dal.webhooks``), for an event that must be written once
    however often its producer runs (a sweep): a second transaction carrying the same key is cancelled."""
    from neruba.dal.webhooks import once_put
    from neruba.settings import get_settings

    event_id = new_event_id()
    return [
        event_action(event_type, customer_id, data, now, event_id),
        once_put(get_settings().ops_table, f"{event_type}#{key}", event_id),
    ]


def emit_once(
    event_type: str, customer_id: str | None, data: dict[str, Any], now: datetime, key: str
) -> bool:
    """Commit the event unless one keyed ``key`` was written before; True when this call wrote it."""
    from neruba.dal.transaction import Cancelled

    try:
        Transaction(once_actions(event_type, customer_id, data, now, key)).commit()
    except Cancelled:
        return False
    return True
