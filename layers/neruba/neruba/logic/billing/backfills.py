"""Backfills: open one, hold events in it, read, list and cancel (docs/billing.md, "Backfills").

A backfill names customers, meters and a time range (up to ``MAX_BACKFILL_DAYS`` back). Events sent into
it are validated as ``POST /v1/events`` validates them, plus the backfill's own rules (the event's
customer, meter and time inside its scope), and held apart (``dal.backfills``): nothing counts them
until the commit (``logic.billing.backfill_commit``). Each held event is kept once per transaction id:
the same event again is a ``duplicate``, another one under that id a ``conflict`` (the first stands).

Example::

    open_backfill(ctx, body, "key:k1", "bf-1")  # the open backfill
    hold_events(ctx, backfill_id, [{"transaction_id": "t1", ...}])  # each event held or refused
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from neruba import bootstrap
from neruba.dal.backfills import Backfill, BackfillsRepository, HeldEvent
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.domain.ingest import fingerprint
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic import idempotency
from neruba.logic.billing import backfill_ids
from neruba.logic.billing.context import Billing
from neruba.logic.ingest.api import catalog_error, validate_event, window_error
from neruba.models.backfills import MAX_BACKFILL_DAYS, MAX_BACKFILL_EVENTS, BackfillAction, BackfillCreate
from neruba.models.events import EventError
from neruba.timefmt import iso, iso_z, parse_ts, ts

OPEN_SCOPE = "backfill-open"
CANCEL_SCOPE = "backfill-cancel"
EVENT_STATUSES = ("held", "duplicate", "conflict", "rejected")  # one count of each in the answer


def backfills(ctx: Billing) -> BackfillsRepository:
    """The backfills, stored next to the billing state."""
    return ctx.billing.backfills


def audit_customer(backfill: dict[str, Any]) -> str | None:
    """Where a backfill's audit records go: its customer, or ``_global`` when it names several."""
    customers = list(backfill["customer_ids"])
    return customers[0] if len(customers) == 1 else None


def get_backfill(ctx: Billing, backfill_id: str) -> Backfill:
    found = backfills(ctx).get(backfill_id)
    if found is None:
        raise NotFoundError(f"No backfill {backfill_id!r}.", code="backfill_not_found", param="backfill_id")
    return found


def _check_replace(start: datetime, end: datetime) -> None:
    """``mode: replace`` voids the stored events of the range: on whole hours only (an hour's cell holds
    its events together). Any age the range may have: the backfill's voids are its own, and its commit
    reruns their invoices (docs/billing.md, "Corrections older than the void horizon")."""
    for name, at in (("start", start), ("end", end)):
        if at != at.replace(minute=0, second=0, microsecond=0):
            raise InvalidRequestError(
                f"mode replace needs {name} on a whole hour (usage is stored per hour).",
                code="backfill_replace_whole_hours",
                param=name,
            )


def oldest_start(now: datetime) -> datetime:
    """The earliest start a backfill opened at ``now`` may have: 00:00 UTC of the day ``MAX_BACKFILL_DAYS``
    days before today's UTC date. Judged on whole days, so a client's own ``now - 400 days`` is accepted
    although the server's clock reads a little later (unless the request reaches it on the next UTC day).

    Example:
        >>> oldest_start(datetime(2026, 12, 1, 20, 15, tzinfo=UTC)).isoformat()
        '2025-10-27T00:00:00+00:00'
    """
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=MAX_BACKFILL_DAYS)


def _check_scope(ctx: Billing, body: BackfillCreate, now: datetime) -> tuple[list[str], list[str]]:
    start, end = body.start.astimezone(UTC), body.end.astimezone(UTC)
    if body.mode == "replace":
        _check_replace(start, end)
    if end <= start:
        raise InvalidRequestError("end must be after start.", code="backfill_range_reversed", param="end")
    if end > now:
        raise InvalidRequestError(
            "A backfill's range cannot reach into the future: end must not be after now.",
            code="backfill_range_in_future",
            param="end",
        )
    oldest = oldest_start(now)
    if start < oldest:
        raise InvalidRequestError(
            f"A backfill's range starts at most {MAX_BACKFILL_DAYS} days back: start must be at or after "
            f"{iso_z(oldest)} (00:00 UTC of the day {MAX_BACKFILL_DAYS} days before today, UTC).",
            code="backfill_range_too_old",
            param="start",
        )
    customers = list(dict.fromkeys(body.customer_ids))
    meters = list(dict.fromkeys(body.meter_codes))
    for n, customer_id in enumerate(customers):
        if ctx.plans.get_customer(customer_id) is None:
            raise NotFoundError(
                f"No customer {customer_id!r}.", code="customer_not_found", param=f"customer_ids.{n}"
            )
    for n, code in enumerate(meters):
        meter = ctx.plans.get_meter(code)
        if meter is None:
            raise NotFoundError(f"No meter {code!r}.", code="meter_not_found", param=f"meter_codes.{n}")
    refuse_advance(ctx, customers, meters, start, end)
    return customers, meters


def refuse_advance(
    ctx: Billing, customers: list[str], meters: list[str], start: datetime, end: datetime
) -> None:
    """A backfill counts usage a window bills in arrears: refused for a meter a customer's phase bills in
    advance during the range (each of those events is billed as it comes, never by a window a backfill
    corrects). Only meters some plan bills in advance are looked at, per customer. Asked when the backfill
    is opened and again at its commit (a subscription made since may bill the range's hours in advance)."""
    from neruba.logic.billing.advance_phase import billed_between

    advance = bootstrap.ingest_worker_catalog().lookup(set(customers), set(meters)).advance_meters
    if not advance & set(meters):
        return
    per_customer = {c: billed_between(ctx.plans, c, start, end) for c in customers}
    for n, code in enumerate(meters):
        billed = [c for c in customers if code in per_customer[c]]
        if billed:
            raise InvalidRequestError(
                f"Meter {code!r} is charged in advance for {', '.join(billed)} during the range (each event "
                "is billed as it comes); a backfill counts usage billed in arrears only: leave those "
                "customers out, or narrow the range to hours their plans bill in arrears.",
                code="backfill_meter_in_advance",
                param=f"meter_codes.{n}",
            )


def open_backfill(
    ctx: Billing,
    body: BackfillCreate,
    actor: str,
    idempotency_key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/backfills``: the open backfill (the same one on a retry with the same key)."""
    now = now or datetime.now(UTC)
    key = idempotency.require_key(idempotency_key)
    fingerprint_ = idempotency.fingerprint(body.model_dump(mode="json"), "backfills")
    replayed = idempotency.replay(ctx.billing, OPEN_SCOPE, key, fingerprint_)
    if replayed is not None:
        return dict(replayed)
    customers, meters = _check_scope(ctx, body, now)
    backfill_id = "bf_" + idempotency.digest({"key": key}, 24)
    doc: dict[str, Any] = {
        "id": backfill_id,
        "object": "backfill",
        "customer_ids": customers,
        "meter_codes": meters,
        "start": ts(body.start.astimezone(UTC)),
        "end": ts(body.end.astimezone(UTC)),
        "mode": body.mode,
        "reason": body.reason,
        "ticket": body.ticket,
        "created_at": ts(now),
    }
    audit = idempotency.audit_put(
        bootstrap.audit(),
        idempotency.Actor(actor, request_id),
        "backfill.open",
        backfill_id,
        customer_id=audit_customer(doc),
        reason=body.reason,
        ticket=body.ticket,
        at=now,
        after={"customer_ids": customers, "meter_codes": meters, "start": doc["start"], "end": doc["end"]},
        idempotency_key=key,
    )
    answer = {**doc, "status": "open", "events_held": 0, "committed": None}
    actions = [backfills(ctx).put_item(doc)]
    actions += idempotency.record_items(ctx.billing, audit, OPEN_SCOPE, key, fingerprint_, answer)
    try:
        commit(Transaction(actions))
    except Cancelled as exc:
        again = idempotency.replay(ctx.billing, OPEN_SCOPE, key, fingerprint_)
        if again is None:
            raise ConflictError(
                "The backfill changed meanwhile; try again.", code="backfill_conflict"
            ) from exc
        return dict(again)
    return answer


def _scope_error(backfill: dict[str, Any], event: Any) -> EventError | None:
    """The backfill's own rules: a timestamp given and inside its range, its customer and meter."""
    if event.timestamp is None:
        return EventError(
            code="missing_field",
            message="An event sent into a backfill needs its timestamp.",
            param="timestamp",
        )
    at = event.timestamp.astimezone(UTC)
    if not parse_ts(backfill["start"]) <= at < parse_ts(backfill["end"]):
        return EventError(
            code="timestamp_outside_backfill",
            message="The timestamp is outside the backfill's range (start inclusive, end exclusive).",
            param="timestamp",
        )
    if event.customer_id not in backfill["customer_ids"]:
        return EventError(
            code="customer_not_in_backfill",
            message=f"Customer '{event.customer_id}' is not one of the backfill's customers.",
            param="customer_id",
        )
    if event.code not in backfill["meter_codes"]:
        return EventError(
            code="meter_not_in_backfill",
            message=f"Meter '{event.code}' is not one of the backfill's meters.",
            param="code",
        )
    return None


def held_document(event: Any) -> dict[str, Any]:
    """An event as a backfill holds it: the shape the ingest queue carries (``logic.ingest.api``)."""
    return {
        "transaction_id": event.transaction_id,
        "customer_id": event.customer_id,
        "code": event.code,
        "timestamp": iso(event.timestamp.astimezone(UTC)),
        "client_timestamp": event.timestamp.isoformat(),
        "properties": event.properties,
    }


def hold_events(
    ctx: Billing,
    backfill_id: str,
    raw_events: list[Any],
    now: datetime | None = None,
    by: idempotency.Actor | None = None,
) -> dict[str, Any]:
    """``POST /admin/backfills/{id}/events``: each event held, a duplicate, a conflict or rejected. Each
    event is held in its own conditional write (a retry holds what is missing, once); with ``by`` (the
    operator), the request's outcome is audited (``backfill.events_add``: how many of each, and the
    events it held) once its events are held."""
    now = now or datetime.now(UTC)
    found = get_backfill(ctx, backfill_id)
    _require_open(found)
    if found.held + len(raw_events) > MAX_BACKFILL_EVENTS:
        raise InvalidRequestError(
            f"A backfill holds at most {MAX_BACKFILL_EVENTS} events; open another one for the rest.",
            code="backfill_too_many_events",
            param="events",
        )
    backfill = found.document
    repo = backfills(ctx)
    customers = {c: ctx.plans.get_customer(c) for c in backfill["customer_ids"]}
    meters = {m: ctx.plans.get_meter(m) for m in backfill["meter_codes"]}
    known_customers = {k: v for k, v in customers.items() if v is not None}
    known_meters = {k: v for k, v in meters.items() if v is not None}
    statuses: list[dict[str, Any]] = []
    max_age = (now - parse_ts(backfill["start"])).days + 1
    checked: list[tuple[int, str | None, HeldEvent | None, EventError | None]] = []
    for index, raw in enumerate(raw_events):
        tx = raw.get("transaction_id") if isinstance(raw, dict) else None
        tx = tx if isinstance(tx, str) else None
        event, error = validate_event(raw, now, max_age, 0, window=False)
        if event is not None:  # the range rules first: an event outside the range is told so
            error = (
                _scope_error(backfill, event)
                or window_error(event, now, max_age, 0)
                or catalog_error(event, known_customers, known_meters)
            )
        if event is None or error is not None:
            assert error is not None
            param = f"events.{index}" + (f".{error.param}" if error.param else "")
            checked.append((index, tx, None, error.model_copy(update={"param": param})))
            continue
        doc = held_document(event)
        digest = fingerprint(event.customer_id, event.code, doc["client_timestamp"], event.properties)
        checked.append((index, tx, HeldEvent(event.customer_id, event.transaction_id, digest, doc), None))
    mode = str(backfill.get("mode") or "add")
    taken = backfill_ids.problems(ctx, backfill_id, mode, (h for _, _, h, _ in checked if h is not None))
    for index, tx, held, error in checked:
        why = None if held is None else taken.get((held.customer_id, held.transaction_id))
        if why is not None:
            message = backfill_ids.MESSAGES[why]
            error = EventError(code=why, message=message, param=f"events.{index}.transaction_id")
        if held is None or error is not None:
            statuses.append({"index": index, "transaction_id": tx, "status": "rejected", "error": error})
            continue
        outcome = repo.hold(backfill_id, held)
        if outcome == "closed":
            closed = EventError(
                code="backfill_not_open",
                message="The backfill was committed or cancelled meanwhile; it holds no more events.",
                param=f"events.{index}",
            )
            statuses.append({"index": index, "transaction_id": tx, "status": "rejected", "error": closed})
            continue
        statuses.append({"index": index, "transaction_id": tx, "status": outcome, "error": None})
    counts = {name: sum(1 for s in statuses if s["status"] == name) for name in EVENT_STATUSES}
    if by is not None:
        held_ids = [str(s["transaction_id"]) for s in statuses if s["status"] == "held"][:AUDITED_IDS]
        audit = idempotency.audit_put(
            bootstrap.audit(), by, "backfill.events_add", backfill_id, customer_id=audit_customer(backfill),
            at=now, after={**counts, "held_transaction_ids": held_ids},
        )  # fmt: skip
        commit(Transaction([audit]))
    return {"backfill_id": backfill_id, **counts, "events": statuses}


AUDITED_IDS = 100  # the held events an audit record names (the first ones; the counts are all of them)


def _require_open(found: Backfill) -> None:
    if found.status != "open":
        raise ConflictError(
            f"The backfill is {found.status}; only an open backfill takes events or is cancelled.",
            code="backfill_not_open",
        )


def list_backfills(ctx: Billing, status: str | None = None) -> dict[str, Any]:
    """``GET /admin/backfills``: every backfill, oldest first (optionally of one status)."""
    found = sorted(backfills(ctx).all(), key=lambda b: (str(b.document["created_at"]), b.id))
    data = [b.document for b in found if status is None or b.status == status]
    return {"object": "list", "data": data, "has_more": False, "next_cursor": None}


def cancel_backfill(
    ctx: Billing,
    backfill_id: str,
    body: BackfillAction,
    actor: str,
    idempotency_key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/backfills/{id}/cancel``: an open backfill is dropped; its events are never counted."""
    now = now or datetime.now(UTC)
    key = idempotency.require_key(idempotency_key)
    fingerprint_ = idempotency.fingerprint(body.model_dump(mode="json"), backfill_id)
    replayed = idempotency.replay(ctx.billing, CANCEL_SCOPE, key, fingerprint_)
    if replayed is not None:
        return dict(replayed)
    found = get_backfill(ctx, backfill_id)
    _require_open(found)
    answer = {**found.document, "status": "cancelled", "cancelled_at": ts(now)}
    audit = idempotency.audit_put(
        bootstrap.audit(),
        idempotency.Actor(actor, request_id),
        "backfill.cancel",
        backfill_id,
        customer_id=audit_customer(found.document),
        reason=body.reason,
        ticket=body.ticket,
        at=now,
        before={"status": "open"},
        after={"status": "cancelled"},
        idempotency_key=key,
    )
    actions = [backfills(ctx).move_item(backfill_id, ("open",), "cancelled", cancelled_at=ts(now))]
    actions += idempotency.record_items(ctx.billing, audit, CANCEL_SCOPE, key, fingerprint_, answer)
    try:
        commit(Transaction(actions))
    except Cancelled as exc:
        again = idempotency.replay(ctx.billing, CANCEL_SCOPE, key, fingerprint_)
        if again is not None:
            return dict(again)
        _require_open(get_backfill(ctx, backfill_id))
        raise ConflictError("The backfill changed meanwhile; try again.", code="backfill_conflict") from exc
    return answer
