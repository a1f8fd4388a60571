"""Stored Stripe events that have not settled, for the operations sweep: find them and queue them again.

An event is *pending* when its status is ``received`` (stored, its queue message lost or not yet
processed), ``failed`` or ``deferred`` and nothing has happened to it for longer than a given age. Queuing
it again is always safe: processing is idempotent (effects are keyed by Stripe object ids).

Example::

    ids = pending_events(settings.ops_table, timedelta(minutes=30))
    requeue(ids)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from neruba.dal.stripe_events import StripeEventsRepository

PENDING_STATUSES = ("received", "failed", "deferred")
LOOKBACK = timedelta(days=90)


def pending_events(
    ops_table: str,
    older_than: timedelta,
    *,
    now: datetime | None = None,
    lookback: timedelta = LOOKBACK,
) -> list[str]:
    """Ids of events created in the last ``lookback`` (default 90 days) whose status is received, failed
    or deferred and whose last change is older than ``older_than``; oldest first."""
    end = now or datetime.now(UTC)
    repo = StripeEventsRepository(ops_table)
    found = list(
        repo.unsettled(
            start=end - lookback, end=end, statuses=PENDING_STATUSES, updated_before=end - older_than
        )
    )
    return [str(e["event_id"]) for e in sorted(found, key=lambda e: (str(e["created"]), str(e["event_id"])))]


def requeue(event_ids: list[str]) -> int:
    """Send each event id to StripeEventsQueue again; returns how many were sent.

    Raises RuntimeError when a message could not be sent (the caller's sweep retries next run).
    """
    from neruba.logic.stripe_worker import queue_events

    if event_ids:
        queue_events(list(event_ids))
    return len(event_ids)
