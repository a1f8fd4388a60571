"""The Stripe events worker's use case: one queue message ``{"event_id": ...}`` -> one processing attempt.

A message that is not of that shape, or names an event that is not stored, raises: the message fails, is
retried, and lands in StripeEventsDLQ after ``maxReceiveCount`` receives (it is never silently dropped and
never loops forever). An event whose processing fails with a permanent data problem is recorded ``failed``
and its message is consumed; an unexpected error is recorded ``failed`` and the message retried.

Example:
    >>> message_event_id('{"event_id": "evt_1"}')
    'evt_1'
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from neruba.observability import logger, metrics
from neruba.settings import get_settings

if TYPE_CHECKING:
    from neruba.logic.stripe.processing import Processor


class BadMessageError(ValueError):
    """A queue message that does not name a Stripe event."""


def message_event_id(body: str) -> str:
    """The event id of a queue message body."""
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise BadMessageError("the message is not JSON") from exc
    event_id = message.get("event_id") if isinstance(message, dict) else None
    if not isinstance(event_id, str) or not event_id.startswith("evt_") or len(event_id) > 255:
        raise BadMessageError("the message has no event_id")
    return event_id


def queue_events(event_ids: list[str]) -> None:
    """Send event ids to the Stripe events queue (to wake deferred events); raise if any is not sent."""
    from neruba.dal.queue import send_batch

    messages = [(str(i), json.dumps({"event_id": e})) for i, e in enumerate(event_ids)]
    failed = send_batch(get_settings().stripe_events_queue_url, messages)
    if failed:
        raise RuntimeError(f"{len(failed)} deferred events could not be queued")


def process_message(body: str, worker: Processor, *, trigger: str = "queue") -> str:
    """Process one message with ``worker`` (``neruba.bootstrap.stripe_processor()``); returns the status
    the event ended in."""
    try:
        event_id = message_event_id(body)
    except BadMessageError:
        logger.error("malformed stripe queue message", extra={"body_size": len(body)})
        metrics.add_metric(name="StripeEventsFailed", unit="Count", value=1)
        raise
    logger.append_keys(stripe_event_id=event_id)
    from neruba.logic.stripe.processing import EventBusyError

    try:
        result = worker.process(event_id, trigger=trigger)
    except EventBusyError:
        logger.info("stripe event busy: another copy is being processed; the message is retried")
        raise
    except Exception:
        logger.exception("stripe event processing failed")
        metrics.add_metric(name="StripeEventsFailed", unit="Count", value=1)
        raise
    finally:
        logger.remove_keys(["stripe_event_id"])
    if result.status == "failed":
        logger.error("stripe event failed", extra={"stripe_event_id": event_id, "error": result.error})
        metrics.add_metric(name="StripeEventsFailed", unit="Count", value=1)
    elif result.status == "parked":
        logger.warning(
            "stripe event parked for an operator",
            extra={"stripe_event_id": event_id, "reason": result.error, **result.refs},
        )
        metrics.add_metric(name="StripeEventsParked", unit="Count", value=1)
    else:
        if "payment_failed" in result.outcome:
            logger.warning("stripe payment failed", extra={"stripe_event_id": event_id, **result.refs})
        metrics.add_metric(name="StripeEventsProcessed", unit="Count", value=1)
    return result.status
