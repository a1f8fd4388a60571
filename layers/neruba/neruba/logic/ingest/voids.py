"""Void and amend an accepted event (admin): take its usage back out, exactly once; an amend also counts
a corrected copy linked to it.

One transaction per action (``commit``): the event turns ``accepted`` -> ``voided`` (on condition that it
is still accepted in the batch that counted it), the open void, the customer's void entry, the limit
counter of its period lowered (when the meter has one: on condition of the counter's version, so a batch
counting at the same moment and the void never both write over one value), for an amend the corrected copy
(``accepted``, held by a batch of its own, uncounted yet), the audit record and the first answer under the
Idempotency-Key. Then the void is *finished* (:func:`finish`):

1. the event's cell is recomputed from its surviving events (``logic.sweeps.usage.recompute_cell``, the
   sweep's drift repair: the truth written conditionally on the aggregate as read, every contribution
   read folded in), so every aggregation is exact (a unique value another event shares stays, a max
   falls to the next one, a weighted sum's changes are summed again); recomputing twice writes the same;
2. the copy is counted by the sweep's adoption (``logic.sweeps.usage.adopt_uncounted``): its batch's
   contribution put is conditional, so it counts once;
3. the open void is deleted.

A request killed after its transaction leaves the open void: a retry with the same key (which replays
the answer and finishes) or the ``voids`` sweep check finishes it. A cell with pending usage not folded
yet is finished after the fold (the fold recomputes it too). Billing sees the change as it sees a late
event: the next window's look-back re-rates the period (adjustment lines), and after the subscription's
end the ``corrections`` check bills it on a correction invoice or credit note; so an event is voided only
while its period is still re-rated (its timestamp within ingest's maximum event age). A void owned by a
backfill (``VoidRequest.backfill``: its revert, or its ``mode: replace`` commit) is not held to that age:
the backfill reruns every invoice its events touch under keys of its own, whatever their age. The
opposite move, a backfill's revert restoring the events its replace voided, is ``logic.ingest.restores``.
Rules and codes: docs/billing.md, "Voiding and amending events" and "Corrections older than the void
horizon".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from neruba import bootstrap, jsonutil
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.dal.usage import StoredEvent, UsageRepository
from neruba.dal.voids import OpenVoid, VoidsRepository
from neruba.domain.ingest import fingerprint as event_fingerprint
from neruba.domain.ingest import hour_bucket
from neruba.domain.numbers import exact_difference, exact_sum
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic import idempotency
from neruba.timefmt import iso, parse_ts

if TYPE_CHECKING:
    from neruba.dal.catalog import CatalogSnapshot

VOID_SCOPE = "event_void"
AMEND_SCOPE = "event_amend"
ATTEMPTS = 4  # a limit counter moved by a batch meanwhile: read and decide again
RECOMPUTES = 5

Lookup = Callable[[set[str], set[str]], "CatalogSnapshot"]


@dataclass(frozen=True, slots=True)
class VoidRequest:
    """What the operator asks: the event, why, and for an amend the corrected copy's fields."""

    customer_id: str
    transaction_id: str
    reason: str
    ticket: str
    properties: dict[str, Any] | None = None  # an amend: the copy's properties (default: the original's)
    timestamp: datetime | None = None  # an amend: the copy's timestamp (default: the original's)
    amend: bool = False
    # the backfill whose revert or replace voids the event: its own reruns correct the invoices, so the
    # void horizon (ingest's maximum event age) does not apply
    backfill: str | None = None
    # a backfill's correction under the event's own id (``logic.billing.backfill_supersede``): the copy's
    # transaction id and copy id (``{backfill_id}:{n}``, the link back to the backfill), fixed by the
    # backfill rather than by the key; an event voided already without a copy is then *relinked* (its
    # void record gains the copy, its usage is out already) instead of refused
    copy_transaction_id: str | None = None
    copy_id: str | None = None

    @property
    def relinks(self) -> bool:
        """A backfill's correction may name a copy for an event voided already."""
        return self.amend and self.copy_id is not None


def catalog_lookup() -> Lookup:
    from neruba.dal.catalog import CatalogCache

    return CatalogCache(bootstrap.catalog(), ttl_seconds=0).lookup


def void_event(
    request: VoidRequest,
    actor: str,
    idempotency_key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Void (or amend, ``request.amend``) an accepted event; returns the voided event as
    ``GET /v1/events/{id}`` shows it, with ``correction`` (``completed`` or ``pending``) and, for an
    amend, ``amended_by`` (the corrected copy)."""
    now = now or datetime.now(UTC)
    usage, voids, lookup = bootstrap.usage(), bootstrap.voids(), catalog_lookup()
    key = idempotency.require_key(idempotency_key)
    scope = AMEND_SCOPE if request.amend else VOID_SCOPE
    fingerprint = idempotency.fingerprint(_body(request), f"{request.customer_id}/{request.transaction_id}")
    billing = bootstrap.billing_records()
    by = idempotency.Actor(actor, request_id)
    for _ in range(ATTEMPTS):
        replayed = idempotency.replay(billing, scope, key, fingerprint)
        if replayed is not None:
            return _finished(usage, lookup, voids, dict(replayed), now)
        event = usage.get_event(request.customer_id, request.transaction_id)
        catalog = lookup({request.customer_id}, {event.meter_code} if event else set())
        try:
            event = _check(usage, catalog, request, event, now)
        except ConflictError:
            # the same key may have answered between the replay read and the event read (a retry or a
            # second run of a backfill's revert voided it just then): that answer wins over the refusal
            replayed = idempotency.replay(billing, scope, key, fingerprint)
            if replayed is None:
                raise
            return _finished(usage, lookup, voids, dict(replayed), now)
        result, actions = _void_unit(request, event, catalog, by, key, now)
        actions += idempotency.record_items(billing, actions.pop(), scope, key, fingerprint, result)
        try:
            commit(Transaction(actions))
        except Cancelled:
            # the same key answered meanwhile (replayed next), another request voided the event (refused
            # next), or a batch moved the limit counter (decided again next): read everything again
            continue
        return _finished(usage, lookup, voids, result, now)
    raise ConflictError("The event kept changing while it was voided; try again.", code="event_void_conflict")


def check_voidable(keys: list[tuple[str, str]], now: datetime, backfill: str | None = None) -> None:
    """The refusal a void of one of these events (``(customer_id, transaction_id)``) would meet now, raised
    before anything is written (a backfill's revert checks all its events first; ``backfill``: the voids
    are that backfill's, past the void horizon too). Events no longer accepted are skipped: a void finds
    them voided already."""
    usage, lookup = bootstrap.usage(), catalog_lookup()
    for event in usage.get_events(keys).values():
        if event.status != "accepted":
            continue
        catalog = lookup({event.customer_id}, {event.meter_code})
        request = VoidRequest(event.customer_id, event.transaction_id, "check", "check", backfill=backfill)
        _check(usage, catalog, request, event, now)
        counter_action(catalog, event, now)


def _void_unit(
    request: VoidRequest,
    event: StoredEvent,
    catalog: CatalogSnapshot,
    by: idempotency.Actor,
    key: str,
    now: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The answer and the actions of one void (the audit record last, for ``record_items``)."""
    voids = bootstrap.voids()
    copy = _copy(request, event, catalog, key, by.request_id, now) if request.amend else None
    relink = event.status == "voided"  # ``_check`` let it through: a backfill's correction of it
    record: dict[str, Any] = {
        "kind": "amend" if request.amend else "void",
        "reason": request.reason,
        "ticket": request.ticket,
        "at": iso(now),
        "actor": by.actor,
        "amended_by": copy.transaction_id if copy else None,
        **({"backfill": request.backfill} if request.backfill else {}),
    }
    if relink:  # the void stands as it was; it only gains the copy (and who linked it)
        record = {**_void_record(event), "amended_by": record["amended_by"], "linked": record}
    record_json = jsonutil.dumps(record)
    result = {**_view(replace(event, status="voided", void_json=record_json)), "correction": "pending"}
    if copy is not None:
        result["amended_by"] = _view(copy)
    open_void = OpenVoid(
        event.customer_id,
        event.transaction_id,
        copy.transaction_id if copy else None,
        copy.batch if copy else None,
        iso(now),
    )
    actions = [
        voids.relink_update(event, record_json) if relink else voids.void_update(event, record_json),
        voids.open_put(open_void),
        voids.entry_put(event, record_json),
    ]
    counter = None if relink else counter_action(catalog, event, now)  # a voided event is out already
    if counter is not None:
        actions.append(counter)
    if copy is not None and request.copy_id is None:  # a backfill's copy meets the limits as its events do
        _check_copy_fits(catalog, event, copy, now)
    if copy is not None:
        actions.append(voids.copy_put(copy))
    audit = idempotency.audit_put(
        bootstrap.audit(),
        by,
        f"event.{record['kind']}",
        event.transaction_id,
        customer_id=event.customer_id,
        reason=request.reason,
        ticket=request.ticket,
        at=now,
        before={"status": event.status, **({"void": _void_record(event)} if relink else {})},
        after={"status": "voided", "amended_by": record["amended_by"]},
        idempotency_key=key,
    )
    return result, [*actions, audit]


def _body(request: VoidRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": request.reason, "ticket": request.ticket}
    if request.amend:
        body["properties"] = request.properties
        body["timestamp"] = iso(request.timestamp) if request.timestamp else None
    return body


def _check(
    usage: UsageRepository,
    catalog: CatalogSnapshot,
    request: VoidRequest,
    event: StoredEvent | None,
    now: datetime,
) -> StoredEvent:
    """The event, if it may be voided now; else the refusal (docs/billing.md lists the codes)."""
    from neruba.logic.sweeps.usage import held_cell_of_event
    from neruba.settings import get_settings

    if event is None:
        raise NotFoundError(
            f"No event {request.transaction_id!r} for customer {request.customer_id!r}.",
            code="event_not_found",
            param="transaction_id",
        )
    if event.status == "voided":
        if request.relinks and not _void_record(event).get("amended_by"):
            return event  # a backfill's correction of a voided event: its usage is out already
        raise ConflictError("The event is already voided.", code="event_already_voided")
    if event.status != "accepted":
        raise ConflictError(
            f"Only an accepted event can be voided; this one is {event.status}.", code="event_not_accepted"
        )
    if event.meter_code in catalog.advance_meters and _billed_in_advance(event):
        raise ConflictError(
            f"Meter {event.meter_code!r} is billed in advance for this customer at the event's time (its "
            "plan's phase): its events were charged one by one when counted and are not taken back by a "
            "void; credit the invoice instead.",
            code="event_billed_in_advance",
        )
    age = timedelta(days=get_settings().ingest_max_age_days)
    if request.backfill is None and parse_ts(event.timestamp) < now - age:
        raise ConflictError(
            f"The event is older than {age.days} days: its period is no longer re-rated, so a void would "
            "not reach its invoice; credit the invoice instead.",
            code="event_too_old_to_void",
        )
    found = held_cell_of_event(usage, event, catalog)
    if found is not None and event.batch is not None:
        ref = found[0]
        minutes = {(ref, event.batch): [event.written_at or ""]}
        if not usage.counted([(ref, event.batch)], minutes):
            raise ConflictError(
                "The event is accepted but not counted yet; try again in a few minutes.",
                code="event_not_counted_yet",
            )
    return event


def _billed_in_advance(event: StoredEvent) -> bool:
    """Whether the phase rating the event's hour charges its meter in advance for its customer (the rule
    that billed it: ``logic.billing.advance.charge_for``); a meter some other plan bills in advance is
    voided as any other for a customer billed in arrears. Asked of an amend's copy too: a copy is counted
    without being billed one by one, so one in such an hour would never be billed."""
    from neruba.logic.billing.advance_phase import charge_for

    found = charge_for(bootstrap.plans(), event.customer_id, event.meter_code, parse_ts(event.timestamp))
    return not isinstance(found, str)


def _void_record(event: StoredEvent) -> dict[str, Any]:
    return dict(jsonutil.loads(event.void_json)) if event.void_json else {}


def _copy(
    request: VoidRequest,
    event: StoredEvent,
    catalog: CatalogSnapshot,
    key: str,
    request_id: str | None,
    now: datetime,
) -> StoredEvent:
    """The amend's corrected copy, checked as ``POST /v1/events`` checks an event."""
    from neruba.logic.ingest.api import catalog_error, validate_event
    from neruba.settings import get_settings

    settings = get_settings()
    properties = (
        request.properties if request.properties is not None else jsonutil.loads(event.properties_json)
    )
    at = request.timestamp.astimezone(UTC) if request.timestamp else parse_ts(event.timestamp)
    suffix = idempotency.digest({"amend": [event.customer_id, event.transaction_id, key]}, 10)
    transaction_id = request.copy_transaction_id or f"{event.transaction_id[:240]}~{suffix}"
    raw = {
        "transaction_id": transaction_id,
        "customer_id": event.customer_id,
        "code": event.meter_code,
        "timestamp": at.isoformat(),
        "properties": properties,
    }
    # a backfill's copy lies in its range, which may reach further back than ingest's maximum age
    max_age = settings.ingest_max_age_days if request.backfill is None else (now - at).days + 1
    checked, error = validate_event(raw, now, max_age, settings.ingest_max_future_seconds)
    if error is None and checked is not None:
        error = catalog_error(checked, catalog.customers, catalog.meters)
    if error is not None or checked is None:
        message = error.message if error else "The corrected event is not valid."
        raise InvalidRequestError(
            f"The corrected event is refused: {message}",
            code=error.code if error else "invalid_event",
            param=_param(error.param if error else None),
        )
    same = checked.properties == jsonutil.loads(event.properties_json) and at == parse_ts(event.timestamp)
    if same and request.copy_id is None:  # a backfill's copy may repeat a voided event's content
        raise InvalidRequestError(
            "The amend changes nothing: send other properties or another timestamp, or void the event.",
            code="amend_changes_nothing",
        )
    if event.meter_code in catalog.advance_meters and _billed_in_advance(replace(event, timestamp=iso(at))):
        raise ConflictError(
            f"The corrected event's time falls in an hour whose phase bills meter {event.meter_code!r} in "
            "advance for this customer: those events are billed one by one as they are sent, which a "
            "corrected copy is not, so it would never be billed. Void the event and send the corrected one "
            "as a new event instead.",
            code="event_billed_in_advance",
            param="timestamp",
        )
    batch = idempotency.digest({"amend-batch": transaction_id}, 32)
    client_at = iso(at)
    return StoredEvent(
        customer_id=event.customer_id,
        transaction_id=transaction_id,
        meter_code=event.meter_code,
        timestamp=client_at,
        client_timestamp=client_at,
        hour=hour_bucket(at),
        properties_json=jsonutil.dumps(checked.properties),
        fingerprint=event_fingerprint(event.customer_id, event.meter_code, client_at, checked.properties),
        status="accepted",
        batch=batch,
        copy_id=request.copy_id or f"amend:{key}",
        request_id=request_id,
        received_at=iso(now),
        written_at=iso(now),
        amends=event.transaction_id,
    )


def _param(param: str | None) -> str | None:
    """The amend body's field an event error names (``timestamp``, ``properties...``)."""
    return param if param and param.split(".", 1)[0].split("[", 1)[0] in ("timestamp", "properties") else None


def counter_action(
    catalog: CatalogSnapshot, event: StoredEvent, now: datetime, sign: int = -1
) -> dict[str, Any] | None:
    """The limit counter of the event's period, lowered by what the event added (never below zero; a
    restore, ``sign`` 1, raises it by as much), when the limits that apply to the customer now (its own,
    or its plan's defaults: as the worker and the sweep read them) are on the meter and the counter is
    stored."""
    from neruba.domain.limits import LimitSettings
    from neruba.domain.limits import usage_of as limit_usage
    from neruba.logic.limits.gate import limited, settle
    from neruba.logic.sweeps.usage import cell_of_event

    settings = LimitSettings.from_stored(catalog.limit_settings(event.customer_id, now))
    found = cell_of_event(event, catalog)
    if found is None or settings is None or not limited(settings, event.meter_code, found[1]):
        return None
    if settings.rates(event.meter_code):
        raise ConflictError(
            "The customer's limits count this meter's amount (an amount cap or spend alerts): a void "
            "cannot take an event's share of that amount back exactly; credit the invoice instead.",
            code="event_void_amount_limits",
        )
    limits = bootstrap.limits()
    start, end = settings.period(parse_ts(event.timestamp))
    seen = limits.counter(event.customer_id, event.meter_code, start, end)
    settle(seen)  # the write it records as pending, completed before the void's put drops the record
    if seen.version == 0:
        return None
    amount = limit_usage(found[1], found[2])
    used = _floored(
        catalog, event.meter_code, exact_sum([seen.used, amount if sign > 0 else amount.copy_negate()])
    )
    return limits.counter_put(seen, used, max(0, seen.events + sign), seen.fired)


def _floored(catalog: CatalogSnapshot, meter_code: str, used: Decimal) -> Decimal:
    """``used`` as a counter may hold it: below zero only on a meter whose events may be negative (its
    usage can be); on any other meter never below zero (an event counted before the limits were on was
    never in the counter, so taking it out must not push the counter under what it holds)."""
    meter = catalog.meters.get(meter_code)
    return used if meter is not None and meter.allow_negative else max(Decimal(0), used)


def _check_copy_fits(catalog: CatalogSnapshot, event: StoredEvent, copy: StoredEvent, now: datetime) -> None:
    """409 ``amend_over_limit`` when the corrected copy would take its period's usage past the hard cap:
    the copy is counted through the limits like any event, so an amend that would be refused there is
    refused here, before the original is voided (the original's own usage is left out of the count when
    both fall in one period). The check reads the counter as the request sees it; a batch counted
    between this answer and the copy's counting can still leave the copy ``over_limit``."""
    from neruba.domain.limits import LimitSettings, fits
    from neruba.domain.limits import usage_of as limit_usage
    from neruba.logic.limits.gate import limited
    from neruba.logic.sweeps.usage import cell_of_event

    settings = LimitSettings.from_stored(catalog.limit_settings(copy.customer_id, now))
    found = cell_of_event(copy, catalog)
    if found is None or settings is None or not limited(settings, copy.meter_code, found[1]):
        return
    cap = settings.limits_of(copy.meter_code).hard_cap
    if cap is None:
        return
    start, end = settings.period(parse_ts(copy.timestamp))
    used = bootstrap.limits().counter(copy.customer_id, copy.meter_code, start, end).used
    original = None if event is None else cell_of_event(event, catalog)  # None: voided already, not counted
    if (
        event is not None
        and original is not None
        and settings.period(parse_ts(event.timestamp)) == (start, end)
    ):
        used = _floored(
            catalog, copy.meter_code, exact_difference(used, limit_usage(original[1], original[2]))
        )
    if not fits(used, exact_sum([used, limit_usage(found[1], found[2])]), cap):
        raise ConflictError(
            f"The corrected event would take the period's usage of {copy.meter_code} past the hard cap "
            f"({used} used without the original, cap {cap}); nothing was changed.",
            code="amend_over_limit",
        )


def _view(event: StoredEvent) -> dict[str, Any]:
    from neruba.logic.ingest.reads import event_document

    return event_document(event)


def _finished(
    usage: UsageRepository, lookup: Lookup, voids: VoidsRepository, result: dict[str, Any], now: datetime
) -> dict[str, Any]:
    open_void = voids.open_void(str(result["customer_id"]), str(result["transaction_id"]))
    done = open_void is None or finish(usage, lookup, voids, open_void, now)
    return {**result, "correction": "completed" if done else "pending"}


def finish(
    usage: UsageRepository, lookup: Lookup, voids: VoidsRepository, open_void: OpenVoid, now: datetime
) -> bool:
    """Recompute the voided event's cell, count the corrected copy, forget the open void; True when done,
    False when something must wait (a pending day not folded, a cell that kept changing, a failure)."""
    from neruba.logic.sweeps.usage import (
        UsageSweepReport,
        adopt_uncounted,
        held_cell_of_event,
        recompute_cell,
    )

    event = usage.get_event(open_void.customer_id, open_void.transaction_id)
    report = UsageSweepReport(window_start=iso(now), window_end=iso(now))
    if event is not None:
        catalog = lookup({event.customer_id}, {event.meter_code})
        found = held_cell_of_event(usage, event, catalog)
        if found is not None:
            for _ in range(RECOMPUTES):
                outcome = recompute_cell(usage, lookup, found[0], report)
                if outcome != "conflict":
                    break
            if outcome in ("pending", "conflict"):
                return False
    if open_void.copy_id and open_void.copy_batch:
        keys = [(open_void.customer_id, open_void.copy_id)]
        adopt_uncounted(usage, lookup, open_void.copy_batch, keys, now, report)
        if report.failures:
            return False
    voids.close(open_void)
    return True


def finish_open(now: datetime | None = None) -> dict[str, Any]:
    """Finish every open void (the ``voids`` sweep check): the ids of the finished, waiting and failed
    ones."""
    now = now or datetime.now(UTC)
    usage = bootstrap.usage()
    voids = bootstrap.voids()
    lookup = catalog_lookup()
    finished: list[dict[str, str]] = []
    waiting: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    for open_void in voids.open_voids():
        ids = {"customer_id": open_void.customer_id, "transaction_id": open_void.transaction_id}
        try:
            (finished if finish(usage, lookup, voids, open_void, now) else waiting).append(ids)
        except Exception as exc:  # one void's failure must not stop the others
            failed.append({**ids, "error": f"{type(exc).__name__}: {exc}"[:300]})
    return {"finished": finished, "waiting": waiting, "failed": failed}
