"""The list of a customer's outgoing webhook events (admin scope), newest sequence number first.

Each event links to its detail (``GET /admin/webhook-events/{id}``: deliveries, attempts, resend).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from neruba.errors import InvalidRequestError
from neruba.logic.webhooks.context import Webhooks
from neruba.timefmt import ts


def list_page(
    hooks: Webhooks,
    customer_id: str,
    event_type: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """One page of ``customer_id``'s events, optionally of one type and created in ``[start, end]``."""
    if start is not None and end is not None and start > end:
        raise InvalidRequestError("'from' is after 'to'.", code="invalid_range", param="from")
    events, next_cursor = hooks.repo.list_events(
        customer_id,
        event_type,
        ts(start) if start is not None else None,
        ts(end) if end is not None else None,
        limit,
        cursor,
    )
    data = [{"object": "event", **event.summary()} for event in events]
    return {"object": "list", "data": data, "has_more": next_cursor is not None, "next_cursor": next_cursor}
