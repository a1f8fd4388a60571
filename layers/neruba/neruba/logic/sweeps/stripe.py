"""The ``stripe`` sweep check: Stripe events stored but never processed to the end.

An event created within ``LOOKBACK`` of the window's end whose status is ``received`` (stored; its queue
message lost or never sent), ``failed`` after an unexpected error, or ``deferred`` (waiting for a link),
and that has not changed for ``STALE``, is sent to StripeEventsQueue again as ``{"event_id"}``.
Processing is idempotent per event (effects keyed by Stripe ids), so a re-sent event posts nothing twice.

Not re-sent, reported as ``needs_operator``: a ``parked`` event (it disagrees with the stored invoice;
``error`` says how), a ``failed`` event whose data is invalid (outcome
``invalid_event``: retrying cannot help, fix and replay it), and any event already tried
``MAX_ATTEMPTS`` times. Each re-send is claimed in the ops table first (``OpsRepository.claim_resend``),
so a second sweep within ``COOLDOWN`` does not send the same event again.

Each event is handled on its own: an event that cannot be re-sent (the queue refuses it, a read or
claim fails) is recorded in ``failures`` with its ids, and the check goes on with the others.

Cost: one query of the ``stripe-events`` index per month bucket in ``[end - LOOKBACK, end]`` (at most
two), reading the events created in that range (the status is a filter after the read).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from neruba import bootstrap
from neruba.dal.stripe_events import StripeEvent
from neruba.logic.sweeps.runner import CheckResult, SweepContext

STATUSES = ("received", "failed", "deferred", "parked")
LOOKBACK = timedelta(days=7)
STALE = timedelta(minutes=30)
COOLDOWN = timedelta(hours=1)
MAX_ATTEMPTS = 10
PERMANENT_OUTCOMES = ("invalid_event",)


def stripe_check(ctx: SweepContext) -> CheckResult:
    """Re-enqueue stale unprocessed Stripe events (see the module docstring)."""

    repo = bootstrap.stripe_events()
    ops = bootstrap.ops()
    result = CheckResult("stripe", checked={"events": 0})
    details: dict[str, list[dict[str, Any]]] = {"in_flight": [], "needs_operator": []}
    for event in repo.events_in_status(ctx.end - LOOKBACK, ctx.end, STATUSES):
        result.checked["events"] += 1
        try:  # one event's failure is reported and never stops the others
            _check_event(ctx, ops, event, result, details)
        except Exception as exc:
            result.fail("stripe_event", exc, stripe_event_id=event.event_id)
    result.details = {**details, "created_from": (ctx.end - LOOKBACK).isoformat()}
    return result


def _check_event(
    ctx: SweepContext, ops: Any, event: StripeEvent, result: CheckResult, details: dict[str, Any]
) -> None:
    from neruba.dal import queue
    from neruba.timefmt import parse_ts

    since = event.updated_at or event.received_at
    if since and parse_ts(since) > ctx.now - STALE:
        return  # the worker (or its queue retries) is still on it
    result.found += 1
    ids: dict[str, Any] = {
        "stripe_event_id": event.event_id,
        "type": event.type,
        "status": event.status,
        "attempts": event.attempts,
    }
    for name, value in (("invoice_id", event.invoice_id), ("customer_id", event.customer_id)):
        if value:
            ids[name] = value
    if event.status == "parked" or event.outcome in PERMANENT_OUTCOMES or event.attempts >= MAX_ATTEMPTS:
        details["needs_operator"].append({**ids, "outcome": event.outcome, "error": event.error})
        return
    if not ops.claim_resend("stripe", event.event_id, ctx.now, COOLDOWN):
        details["in_flight"].append(ids)
        return
    body = json.dumps({"event_id": event.event_id})
    if queue.send_batch(ctx.settings.stripe_events_queue_url, [("0", body)]):
        result.fail("send", "StripeEventsQueue refused the message", **ids)
        return
    result.repaired += 1
    result.repairs.append({"kind": "stripe_event_requeued", **ids})
