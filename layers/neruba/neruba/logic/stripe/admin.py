"""Operator use cases on stored Stripe events: list, inspect, replay (audited, idempotent).

Replay runs the processing synchronously in the request (the answer shows the outcome); effects are keyed
by Stripe ids, so replaying a processed payment posts nothing new. The audit record
(``neruba.dal.audit.AuditRepository``) commits in the same transaction as the event's new status. Events
that the replay wakes (deferred events waiting for it) are queued as usual.

Example:
    >>> fingerprint({"reason": "x"})[:8]
    '64a16bbf'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from neruba import bootstrap, jsonutil
from neruba.dal.stripe_events import StripeEvent, StripeEventsRepository
from neruba.errors import InvalidRequestError, NotFoundError
from neruba.logic.idempotency import Actor, audit_put, check_same, digest
from neruba.logic.stripe.processing import Processor, ProcessResult
from neruba.timefmt import ts_seconds

DEFAULT_WINDOW = timedelta(days=90)
MAX_WINDOW = timedelta(days=400)
AUDIT_FIELDS = ("status", "attempts", "outcome", "error")
UNKNOWN_CUSTOMER = "_stripe"  # audit partition of replays of events not tied to one of our customers


def fingerprint(body: dict[str, Any]) -> str:
    """The idempotency fingerprint of a replay request (``logic.idempotency.digest``)."""
    return digest(body)


def list_events(
    repo: StripeEventsRepository,
    *,
    event_type: str | None,
    status: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    starting_after: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A list page of events created in ``[start, end]`` (default: the last 90 days), newest first."""
    end = end or now or datetime.now(UTC)
    start = start or end - DEFAULT_WINDOW
    if start > end:
        raise InvalidRequestError("'from' is after 'to'.", code="invalid_range", param="from")
    if end - start > MAX_WINDOW:
        raise InvalidRequestError("The range is longer than 400 days.", code="range_too_long", param="from")
    if starting_after and repo.get(starting_after) is None:
        raise InvalidRequestError(
            "starting_after names no stored event; pass the next_cursor of the previous page.",
            code="invalid_cursor",
            param="starting_after",
        )
    found, has_more = repo.list_events(
        start=start, end=end, event_type=event_type, status=status, limit=limit, starting_after=starting_after
    )
    data = [_shown(event) for event in found]
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "next_cursor": data[-1]["id"] if has_more and data else None,
    }


def get_event(repo: StripeEventsRepository, event_id: str) -> dict[str, Any]:
    """One stored event with its payload and processing history."""
    found = repo.get(event_id, with_payload=True)
    if found is None:
        raise NotFoundError(f"No Stripe event {event_id!r}.", code="stripe_event_not_found", param="event_id")
    return {**_shown(found), "payload": jsonutil.loads(found.payload or "null")}


def _shown(event: StripeEvent) -> dict[str, Any]:
    """An event as the admin API answers it (its stored fields, ``id`` for ``event_id``)."""
    fields = event.view()
    return {"object": "stripe_event", "id": fields.pop("event_id"), **fields}


def replay(
    repo: StripeEventsRepository,
    processor: Processor,
    event_id: str,
    *,
    actor: str,
    reason: str,
    ticket: str | None,
    request_id: str | None,
    idempotency_key: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Process a stored event again and audit it; with an idempotency key a retry returns the first answer.

    The answer is stored (``STRIPEREPLAY#{key}``) in the transaction that records the attempt and its audit
    record, so a retry finds either nothing (the replay did not happen) or the answer."""
    at = now or datetime.now(UTC)
    request = {"event_id": event_id, "reason": reason, "ticket": ticket}
    record = f"STRIPEREPLAY#{idempotency_key}"
    if idempotency_key and (first := _first_answer(repo, record, request)) is not None:
        return first
    before = repo.get(event_id)
    if before is None:
        raise NotFoundError(f"No Stripe event {event_id!r}.", code="stripe_event_not_found", param="event_id")
    attempts = before.attempts
    seen = {**{k: getattr(before, k) for k in AUDIT_FIELDS}, "attempts": attempts}

    def answer(status: str, outcome: str, error: str | None) -> dict[str, Any]:
        return {
            "object": "stripe_event_replay",
            "id": event_id,
            "replayed_at": ts_seconds(at),
            "status": status,
            "outcome": outcome,
            "error": error,
        }

    def audit_items(result: ProcessResult) -> list[dict[str, Any]]:
        """The replay's audit record and first answer, committed with the attempt's status change."""
        after = {
            "status": result.status,
            "attempts": attempts + 1,
            "outcome": result.outcome,
            "error": result.error,
        }
        customer_id = result.refs.get("customer_id") or before.customer_id or UNKNOWN_CUSTOMER
        items = [
            audit_put(
                bootstrap.audit(),
                Actor(actor, request_id),
                "stripe_event.replay",
                event_id,
                customer_id=str(customer_id),
                reason=reason,
                ticket=ticket,
                before=seen,
                after=after,
                at=at,
                idempotency_key=f"{event_id}:{idempotency_key}" if idempotency_key else None,
            )
        ]
        if idempotency_key:
            first = answer(result.status, result.outcome, result.error)
            values = {
                "fingerprint": fingerprint(request),
                "response": jsonutil.dumps(first),
                "at": ts_seconds(at),
            }
            items.append(repo.record_put_item(record, values))
        return items

    try:
        result = processor.process(event_id, trigger="replay", now=at, audit=audit_items)
        return answer(result.status, result.outcome, result.error)
    except Exception as exc:  # recorded as failed on the event (with the audit record); shown here too
        if idempotency_key and (first := _first_answer(repo, record, request)) is not None:
            return first  # a concurrent replay with this key committed first
        return answer("failed", "error", f"{type(exc).__name__}: {exc}"[:500])


def _first_answer(
    repo: StripeEventsRepository, record: str, request: dict[str, Any]
) -> dict[str, Any] | None:
    """The stored first answer of a replay key (409 when the key was used for another request)."""
    first = repo.get_record(record)
    if first is None:
        return None
    check_same(first["fingerprint"], fingerprint(request))
    stored: dict[str, Any] = jsonutil.loads(first["response"])
    return stored
