"""The backfill events no invoice will bill: counted as usage, but at a time no subscription of their
customer covers (docs/billing.md, "Events no invoice bills").

A subscription covers ``[start_at, end)``, its end being ``ended_at`` or the end of the period in which a
cancellation at period end was asked (``domain.phases.subscription_end``); none while it runs on; by whole
hours, as usage is kept (the hour it starts in and the hour it ends in are its own). An
event outside every such span of its customer is stored and listed like any event, but no invoice's
window holds it. The preview and the commit report those events per customer and reason, so the
operator sees them before and after the commit instead of finding usage that never reaches an invoice.

Example::

    unbilled(ctx, held)  # [{"customer_id": "acme", "reason": "no_subscription", "events": 2, ...}]
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from neruba.dal.backfills import HeldEvent
from neruba.domain.phases import owned_hours, subscription_end
from neruba.logic.billing.context import Billing
from neruba.timefmt import iso_z, parse_ts

NO_SUBSCRIPTION = "no_subscription"  # no subscription of the customer covers the event's time


def _spans(ctx: Billing, customer_id: str) -> list[tuple[datetime, datetime | None]]:
    """Each subscription's hours: usage is kept per hour, so one covers the whole hour it starts in
    and the whole hour it ends in (its first and final windows rate them: ``domain.phases.owned_hours``)."""
    spans = []
    for subscription in ctx.plans.customer_subscriptions(customer_id):
        start = subscription.timeline.start
        if start is not None:
            spans.append(owned_hours(start, subscription_end(subscription.timeline), first=True))
    return spans


def unbilled(ctx: Billing, events: list[HeldEvent]) -> list[dict[str, Any]]:
    """Per customer and reason, the events no invoice bills: how many, the first and the last time."""
    spans: dict[str, list[tuple[datetime, datetime | None]]] = {}
    found: dict[tuple[str, str], list[datetime]] = {}
    for event in events:
        if event.customer_id not in spans:
            spans[event.customer_id] = _spans(ctx, event.customer_id)
        at = parse_ts(str(event.event["timestamp"]))
        if any(start <= at and (end is None or at < end) for start, end in spans[event.customer_id]):
            continue
        found.setdefault((event.customer_id, NO_SUBSCRIPTION), []).append(at)
    return [
        {
            "customer_id": customer_id,
            "reason": reason,
            "events": len(times),
            "first_timestamp": iso_z(min(times)),
            "last_timestamp": iso_z(max(times)),
        }
        for (customer_id, reason), times in sorted(found.items())
    ]
