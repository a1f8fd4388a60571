"""Subscription use cases: create, change plan, cancel. Each is one transaction, audited, and checked
against the customer's other subscriptions so no meter (and no plan) is billed twice for the same time.

The overlap rule (``domain.overlap``): two subscriptions of one customer may not charge the same meter, or
be on the same plan, over intersecting times. A creation or plan change that would break it is 409
``subscription_overlap``, whose ``details`` name the subscription already charging it. The check reads
the customer's subscription guard (``dal.plans``) and the transaction is conditional on the guard being
unchanged, so of two concurrent writes checked against the same subscriptions only one commits; the other
is checked again against the new set.

Creation writes, in one transaction: the subscription, the guard, its billing state (due at its start),
its plan-version defaults on the customer (``logic.limits.plan_defaults``, when its version has some; a
plan change or a cancellation rewrites them in its own transaction), its audit record and, with an
``Idempotency-Key``, the idempotency record (``logic.idempotency``). A retry with the same key and body
returns the first answer; without a key, a retry of a create that succeeded is refused by the overlap rule
and names the first subscription.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from neruba.dal.catalog import CatalogConflictError
from neruba.dal.dynamo import TransactionCancelledError
from neruba.domain.advance import terms_of
from neruba.domain.overlap import Claim, claims, first_overlap
from neruba.domain.periods import fits_calendar
from neruba.domain.phases import Timeline, hour_after, hour_of
from neruba.errors import ConflictError, InvalidRequestError
from neruba.logic.catalog.entries import (
    SYSTEM,
    Actor,
    audit_item,
    get_customer,
    get_subscription,
    plan_version_of,
)
from neruba.logic.idempotency import check_same, fingerprint, record_items, replay
from neruba.logic.limits.plan_defaults import defaults_items
from neruba.models.catalog import Cancellation, PlanChange, SubscriptionCreate
from neruba.timefmt import iso, iso_z

if TYPE_CHECKING:
    from neruba.dal.billing import BillingRepository
    from neruba.dal.plans import PlansRepository, SubscriptionGuard

ATTEMPTS = 5  # re-checks when another write to the customer's subscriptions commits in between
IDEMPOTENCY_SCOPE = "subscription-create"
AUDIT_FIELDS = ("status", "phases", "cancel_at_period_end", "canceled_at", "ended_at")


def _billing() -> BillingRepository:
    from neruba import bootstrap

    return bootstrap.billing_records()


def _end(subscription: Timeline) -> datetime | None:
    """When the subscription stops billing (the rule billing applies): ended, or its period's end."""
    from neruba.domain.periods import add_interval
    from neruba.logic.billing.windows import subscription_end

    return subscription_end(subscription, add_interval)


def _claims_of(repo: PlansRepository, subscriptions: list[Timeline]) -> list[Claim]:
    versions: dict[tuple[str, int], list[str]] = {}

    def meters(code: str, version: int) -> list[str]:
        if (code, version) not in versions:
            doc = repo.version(code, version).document
            versions[(code, version)] = [str(c["meter_code"]) for c in doc.get("charges") or []]
        return versions[(code, version)]

    return [claim for sub in subscriptions for claim in claims(sub, meters, _end(sub))]


def _check_overlap(repo: PlansRepository, subscription: dict[str, Any], guard: SubscriptionGuard) -> None:
    """409 ``subscription_overlap`` when ``subscription`` charges what another of the customer's does."""
    terms = Timeline.of(subscription)  # the subscription as it would be written
    others = [s for s in repo.subscriptions_by_id(guard.ids) if s.id != terms.id]
    found = first_overlap(_claims_of(repo, [terms]), _claims_of(repo, [s.timeline for s in others]))
    if found is None:
        return
    mine, theirs = found
    other = next(s for s in others if s.id == theirs.subscription_id)
    (start, end), (their_start, their_end) = mine.span(), theirs.span()
    ends = sorted(e for e in (end, their_end) if e is not None)
    what = f"meter {mine.meter_code!r}" if mine.meter_code else f"plan {mine.key.removeprefix('plan:')!r}"
    hours = (
        " (a meter's usage is kept per hour: two subscriptions charging it never share an hour)"
        if mine.meter_code
        else ""
    )
    raise ConflictError(
        f"Subscription {other.id} already charges {what} for this customer over the same time{hours}. "
        "Move the customer with a plan change, or start after that subscription ends.",
        code="subscription_overlap",
        details=[
            {
                "subscription_id": other.id,
                "meter_code": mine.meter_code,
                "plan_code": theirs.plan_code,
                "plan_version": theirs.plan_version,
                "status": other.status,
                "start_at": other.document["start_at"],
                "created_at": other.document.get("created_at"),
                "overlap_start": iso(max(start, their_start)),
                "overlap_end": iso(ends[0]) if ends else None,
            }
        ],
    )


def _new_doc(
    repo: PlansRepository, body: SubscriptionCreate, key: str | None, now: datetime
) -> dict[str, Any]:
    customer = get_customer(repo, body.customer_id)
    if customer.archived_at is not None:
        raise ConflictError(
            f"Customer {body.customer_id!r} is archived; it takes no new subscription.",
            code="customer_archived",
            param="customer_id",
        )
    version = plan_version_of(repo, body.plan_code, body.plan_version)
    if version.currency != customer.currency:
        raise InvalidRequestError(
            f"Plan currency {version.currency} differs from the customer's {customer.currency}.",
            code="currency_mismatch",
            param="plan_code",
        )
    start = (body.start_at or now).astimezone(UTC)
    if not fits_calendar(start, version.interval):
        raise InvalidRequestError(
            "start_at is so late that its first billing period would end after the year 9999.",
            code="start_past_calendar",
            param="start_at",
        )
    advance = sorted({str(c["meter_code"]) for c in version.document.get("charges") or [] if terms_of(c)})
    if start < now and advance:
        raise InvalidRequestError(
            "A subscription to a plan billing charges in advance starts when it is made or later: the "
            "events of earlier hours were counted with no phase to bill them in advance, and its arrears "
            "lines leave those meters out, so they would never be billed. Leave start_at out to start now.",
            code="invalid_start_time",
            param="start_at",
        )
    if advance:
        _refuse_counted_first_hour(body.customer_id, advance, start, now)
    if body.trial_end is not None and body.trial_end <= start:
        raise InvalidRequestError(
            "trial_end must be after start_at.", code="invalid_trial", param="trial_end"
        )
    seed = f"{body.customer_id}:{key}" if key else secrets.token_hex(16)
    return {
        "id": "sub_" + hashlib.sha256(seed.encode()).hexdigest()[:20],
        "customer_id": body.customer_id,
        "status": "active",
        "currency": version.currency,
        "interval": version.interval,
        "start_at": iso(start),
        "trial_end": iso(body.trial_end) if body.trial_end else None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "phases": [
            {
                "plan_code": body.plan_code,
                "plan_version": version.version,
                "start_at": iso(start),
                "end_at": None,
            }
        ],
        "created_at": iso(now),
    }


def _refuse_counted_first_hour(customer_id: str, meters: list[str], start: datetime, now: datetime) -> None:
    """Refuse a subscription billing ``meters`` in advance whose first hour (the whole hour ``start``
    falls in: the window rates it under the subscription) holds events of them counted already, before it
    existed: advance billing found no phase for them (``not_billed``), and the hour's line would leave
    them to it, so they would be billed nowhere (``invalid_start_time``). One page of one event read."""
    from neruba import bootstrap

    first = hour_of(start)
    up_to = _counted_up_to(now)
    if first > up_to:
        return
    page = bootstrap.usage().list_events(customer_id, meters, first, up_to + timedelta(microseconds=1), 1)
    if page.events:
        allowed = hour_after(up_to + timedelta(microseconds=1))
        raise InvalidRequestError(
            f"Events of {', '.join(meters)} were counted in the hour this subscription would start in "
            f"({iso_z(first)}), before it existed: its advance charges never billed them, and that hour's "
            f"line would leave them to those charges. Start it at {iso_z(allowed)} or later.",
            code="invalid_start_time",
            param="start_at",
        )


def create_subscription(
    repo: PlansRepository,
    body: SubscriptionCreate,
    idempotency_key: str | None,
    now: datetime | None = None,
    by: Actor = SYSTEM,
) -> dict[str, Any]:
    """Subscribe a customer to a plan version (see the module docstring for the rules)."""
    from neruba.logic.billing.worker import new_billing_state

    now = now or datetime.now(UTC)
    billing = _billing()
    request = fingerprint(body.model_dump(mode="json"), "subscriptions")
    for _attempt in range(ATTEMPTS):
        first = replay(billing, IDEMPOTENCY_SCOPE, idempotency_key, request)
        if first is not None:
            return dict(first)
        doc = _new_doc(repo, body, idempotency_key, now)
        guard = repo.subscription_guard(body.customer_id)
        if doc["id"] in guard.ids:
            return _made_before_records(repo, doc)
        _check_overlap(repo, doc, guard)
        created = {**doc, "revision": 1}
        audit = audit_item(
            by,
            "subscription.create",
            doc["id"],
            customer_id=body.customer_id,
            before=None,
            after={**_audit_view(doc), "start_at": doc["start_at"], "trial_end": doc["trial_end"]},
            at=now,
            reason=body.reason,
            ticket=body.ticket,
            idempotency_key=idempotency_key,
        )
        records = record_items(billing, audit, IDEMPOTENCY_SCOPE, idempotency_key, request, created)
        extra = [
            billing.state_put_item(new_billing_state(doc)),
            *defaults_items(repo, doc, created=True),
            *records,
            _event("subscription.created", doc, now),
        ]
        try:
            return repo.create_subscription(doc, guard, extra)
        except TransactionCancelledError:
            continue  # another write to this customer's subscriptions (or this key) landed: check again
    raise _busy()


def _made_before_records(repo: PlansRepository, doc: dict[str, Any]) -> dict[str, Any]:
    """The subscription a key created before idempotency records were kept (its id follows from the
    customer and the key): returned when it is on the same plan, else the key is taken."""
    existing = get_subscription(repo, doc["id"])
    check_same(existing["phases"][0]["plan_code"], doc["phases"][0]["plan_code"])
    return existing


def _busy() -> ConflictError:
    return ConflictError(
        "The customer's subscriptions kept changing; try again.", code="subscription_conflict"
    )


def _audit_view(sub: dict[str, Any]) -> dict[str, Any]:
    """A copy of the audited fields (the phases are changed in place after it is taken)."""
    return copy.deepcopy({k: sub.get(k) for k in AUDIT_FIELDS})


def _counted_up_to(now: datetime) -> datetime:
    """The latest time an event counted by now may have (events are accepted up to
    ``ingest_max_future_seconds`` ahead)."""
    from neruba.settings import get_settings

    return now + timedelta(seconds=get_settings().ingest_max_future_seconds)


def _advance_in(versions: list[Any]) -> bool:
    return any(terms_of(c) is not None for v in versions for c in v.document.get("charges") or [])


def _refuse_counted_hours(at: datetime, now: datetime, versions: list[Any]) -> None:
    """Refuse a change whose new phase would take an hour events may have been counted in already, when
    the plan it leaves or the one it takes bills a meter in advance (``invalid_change_time``; docs/pricing.md,
    "A plan change inside an hour"). The new phase rates from its first whole hour; an event of that hour
    or later counted before the change (up to ``ingest_max_future_seconds`` ahead of now) was billed, or
    not, by the phase in force then, and moving it to another phase would bill it again or never."""
    counted_up_to = _counted_up_to(now)
    if hour_after(at) > counted_up_to or not _advance_in(versions):
        return
    earliest = hour_after(counted_up_to + timedelta(microseconds=1))
    raise InvalidRequestError(
        "A plan change that starts or stops charges billed in advance takes over from a whole hour no "
        "event may have been counted in yet (events are billed, or not, when counted, by the phase in "
        f"force then): date it later than {iso_z(earliest - timedelta(hours=1))}, so that it takes over "
        f"from {iso_z(earliest)} on.",
        code="invalid_change_time",
        param="at",
    )


def _default_time(now: datetime, versions: list[Any]) -> datetime:
    """When a change gives no ``at``: now, unless the plans bill in advance and the next hour starts too
    soon for no event of it to be counted yet (the last minutes of an hour): then the hour after it."""
    if not _advance_in(versions) or hour_after(now) > _counted_up_to(now):
        return now
    return hour_after(_counted_up_to(now) + timedelta(microseconds=1))


def change_plan(
    repo: PlansRepository,
    subscription_id: str,
    change: PlanChange,
    now: datetime | None = None,
    by: Actor = SYSTEM,
) -> dict[str, Any]:
    """Move a subscription to another plan version from ``at`` on (usage before stays on the old version).

    The new phase records when the change was made (``created_at``): an advance fee billed before that
    instant followed the old phases (``domain.phases.prepaid_phase``)."""
    from neruba.domain.periods import period_containing

    now = now or datetime.now(UTC)
    for _attempt in range(ATTEMPTS):
        sub = get_subscription(repo, subscription_id, now)
        before = _audit_view(sub)
        _still_active(sub)
        at = (change.at or now).astimezone(UTC)
        terms = Timeline.of(sub)
        anchor = terms.anchor.astimezone(UTC)
        if now < anchor:
            raise InvalidRequestError(
                "The subscription has not started yet.", code="subscription_not_started"
            )
        start, end = period_containing(anchor, terms.every, now)
        if not start <= at < end:
            raise InvalidRequestError(
                "A plan change takes effect within the current period.",
                code="invalid_change_time",
                param="at",
            )
        version = plan_version_of(repo, change.plan_code, change.plan_version)
        if version.currency != terms.currency or version.interval != terms.every:
            raise InvalidRequestError(
                "The new plan must have the same currency and interval.",
                code="incompatible_plan",
                param="plan_code",
            )
        if at < terms.phases[-1].start:
            raise InvalidRequestError(
                "A change cannot precede the subscription's last phase (from "
                f"{iso_z(terms.phases[-1].start)}, perhaps a change made earlier for a later time): date it "
                "at or after that.",
                code="invalid_change_time",
                param="at",
            )
        current = terms.phases[-1]
        versions = [repo.version(current.plan_code, current.plan_version), version]
        if change.at is None:
            at = _default_time(now, versions)
            if at >= end:
                raise InvalidRequestError(
                    f"A change touching charges billed in advance made now would take over at {iso_z(at)}, "
                    "after the current period: change the plan once the next period has begun.",
                    code="invalid_change_time",
                    param="at",
                )
        _refuse_counted_hours(at, now, versions)
        sub["phases"][-1]["end_at"] = iso(at)
        sub["phases"].append(
            {
                "plan_code": change.plan_code,
                "plan_version": version.version,
                "start_at": iso(at),
                "end_at": None,
                "created_at": iso(now),
            }
        )
        guard = repo.subscription_guard(sub["customer_id"])
        _check_overlap(repo, sub, guard)
        audit = audit_item(
            by,
            "subscription.change_plan",
            subscription_id,
            customer_id=sub["customer_id"],
            before=before,
            after=_audit_view(sub),
            at=now,
            reason=change.reason,
            ticket=change.ticket,
        )
        event = _event("subscription.updated", sub, now, previous_attributes={"phases": before["phases"]})
        try:
            return _save(repo, sub, guard, [audit, event], before["phases"])
        except TransactionCancelledError:
            continue
    raise _busy()


def cancel(
    repo: PlansRepository,
    subscription_id: str,
    body: Cancellation,
    now: datetime | None = None,
    by: Actor = SYSTEM,
) -> dict[str, Any]:
    """Cancel now, or at the end of the current period (billing ends it then).

    Canceling now ends the billing state in the same transaction, so its final window is billed at the
    end; it drops the phases that had not begun (a future-dated plan change) and ends the one in force now
    (``domain.phases.end_phases``)."""
    from neruba.domain.phases import end_phases

    now = now or datetime.now(UTC)
    billing = _billing()
    for _attempt in range(ATTEMPTS):
        sub = get_subscription(repo, subscription_id, now)
        before = _audit_view(sub)
        _still_active(sub)
        if body.at_period_end and sub.get("cancel_at_period_end"):
            return sub  # already ends at its period end: nothing changes, nothing more to audit
        sub["canceled_at"] = iso(now)
        extra: list[dict[str, Any]] = []
        if body.at_period_end:
            sub["cancel_at_period_end"] = True
        else:
            sub["status"] = "canceled"
            sub["ended_at"] = iso(now)
            sub["cancel_at_period_end"] = False  # it ended now, not at the period end
            sub["phases"] = end_phases(sub["phases"], now)
            state = billing.state(subscription_id)
            end_state = billing.end_item(state, now) if state else None
            extra += [end_state] if end_state else []
        extra.append(
            audit_item(
                by,
                "subscription.cancel",
                subscription_id,
                customer_id=sub["customer_id"],
                before=before,
                after=_audit_view(sub),
                at=now,
                reason=body.reason,
                ticket=body.ticket,
            )
        )
        extra.append(_event("subscription.canceled", sub, now, reason=body.reason))
        try:
            return _save(repo, sub, None, extra, before["phases"])
        except TransactionCancelledError:
            continue  # the billing state moved meanwhile: read both again
    raise _busy()


def _event(event_type: str, sub: dict[str, Any], now: datetime, **more: Any) -> dict[str, Any]:
    """The outbox action of a subscription event (``logic.webhooks``), for the change's own transaction."""
    from neruba.logic.webhooks.outbox import event_action

    data = {k: v for k, v in sub.items() if k != "revision"}
    return event_action(event_type, str(sub["customer_id"]), {**data, **more}, now)


def _still_active(sub: dict[str, Any]) -> None:
    """409 ``subscription_canceled`` for a subscription that ended (or was canceled) already."""
    if sub["status"] != "active":
        raise ConflictError(
            "The subscription is canceled; it accepts no more changes.",
            code="subscription_canceled",
            param="subscription_id",
        )


def _save(
    repo: PlansRepository,
    sub: dict[str, Any],
    guard: SubscriptionGuard | None,
    extra: list[dict[str, Any]],
    before_phases: list[dict[str, Any]],
) -> dict[str, Any]:
    """Store a changed subscription whose phases are well-formed (``domain.phases.check_phases``), with the
    other writes of its transaction (``before_phases``: its phases as read, for its defaults record)."""
    from neruba.domain.phases import check_phases

    check_phases(sub["phases"])
    extra = [*extra, *defaults_items(repo, sub, before_phases=before_phases)]
    try:
        return repo.save_subscription(sub, guard, extra)
    except CatalogConflictError as exc:
        raise ConflictError(str(exc), code="subscription_conflict") from exc
