"""Catalog use cases: customers, meters, plans with immutable versions, subscriptions.

Errors are the API's: 404 ``*_not_found``, 409 ``*_exists`` / ``*_conflict``, 400 for rule breaks.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from neruba.dal.catalog import CatalogConflictError, CatalogNotFoundError, InvalidCursorError
from neruba.dal.plans import PlansRepository
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.models.catalog import (
    Cancellation,
    Customer,
    CustomerUpdate,
    Meter,
    PlanChange,
    PlanCreate,
    PlanVersionIn,
    SubscriptionCreate,
)

MAX_PAGE = 100


def page(repo: PlansRepository, kind: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """A Stripe-style list page: ``{object: list, data, has_more, next_cursor}``."""
    try:
        docs, next_cursor = repo.list_docs(kind, limit, cursor)
    except InvalidCursorError as exc:
        raise InvalidRequestError(
            "The cursor is not one this API returned.", code="invalid_cursor", param="starting_after"
        ) from exc
    return {"object": "list", "data": docs, "has_more": next_cursor is not None, "next_cursor": next_cursor}


def create_customer(repo: PlansRepository, customer: Customer) -> dict[str, Any]:
    try:
        stored = repo.create_customer(customer)
    except CatalogConflictError as exc:
        raise ConflictError(
            f"Customer {customer.external_id!r} exists.", code="customer_exists", param="external_id"
        ) from exc
    return stored.model_dump(mode="json")


def get_customer(repo: PlansRepository, external_id: str) -> Customer:
    customer = repo.get_customer(external_id)
    if customer is None:
        raise NotFoundError(f"No customer {external_id!r}.", code="customer_not_found", param="customer_id")
    return customer


def update_customer(repo: PlansRepository, external_id: str, update: CustomerUpdate) -> dict[str, Any]:
    try:
        return repo.update_customer(external_id, update.model_dump(exclude_unset=True)).model_dump(
            mode="json"
        )
    except CatalogNotFoundError as exc:
        raise NotFoundError(f"No customer {external_id!r}.", code="customer_not_found") from exc
    except CatalogConflictError as exc:
        raise ConflictError(str(exc), code="customer_conflict") from exc


def create_meter(repo: PlansRepository, meter: Meter) -> dict[str, Any]:
    try:
        return repo.create_meter(meter).model_dump(mode="json")
    except CatalogConflictError as exc:
        raise ConflictError(f"Meter {meter.code!r} exists.", code="meter_exists", param="code") from exc


def get_meter(repo: PlansRepository, code: str) -> Meter:
    meter = repo.get_meter(code)
    if meter is None:
        raise NotFoundError(f"No meter {code!r}.", code="meter_not_found", param="code")
    return meter


def _check_charges(repo: PlansRepository, body: PlanVersionIn) -> None:
    """Every charge names an existing meter (the charge's own shape is checked by its model)."""
    for index, charge in enumerate(body.charges):
        if repo.get_meter(charge.meter_code) is None:
            raise InvalidRequestError(
                f"No meter {charge.meter_code!r}.",
                code="meter_not_found",
                param=f"charges.{index}.meter_code",
            )


def create_plan(repo: PlansRepository, body: PlanCreate) -> dict[str, Any]:
    _check_charges(repo, body)
    try:
        repo.plan(body.code)
    except CatalogNotFoundError:
        pass
    else:
        raise ConflictError(
            f"Plan {body.code!r} exists; publish a new version instead.", code="plan_exists", param="code"
        )
    repo.publish(body.code, body.model_dump(mode="json", exclude={"code"}))
    return repo.plan(body.code)


def publish_version(repo: PlansRepository, code: str, body: PlanVersionIn) -> dict[str, Any]:
    get_plan(repo, code)
    _check_charges(repo, body)
    version = repo.publish(code, body.model_dump(mode="json"))
    return repo.version(code, version)


def get_plan(repo: PlansRepository, code: str, version: int | None = None) -> dict[str, Any]:
    try:
        return repo.plan(code) if version is None else repo.version(code, version)
    except CatalogNotFoundError as exc:
        raise NotFoundError(str(exc).capitalize() + ".", code="plan_not_found", param="plan_code") from exc


def _plan_version(repo: PlansRepository, code: str, version: int | None) -> dict[str, Any]:
    """One version of a plan (the latest when ``version`` is None), or 404."""
    try:
        return repo.version(code, version)
    except CatalogNotFoundError as exc:
        raise NotFoundError(str(exc).capitalize() + ".", code="plan_not_found", param="plan_code") from exc


def create_subscription(
    repo: PlansRepository, body: SubscriptionCreate, idempotency_key: str | None, now: datetime | None = None
) -> dict[str, Any]:
    """Subscribe a customer to a plan version; with an Idempotency-Key a retry returns the same one."""
    now = now or datetime.now(UTC)
    customer = get_customer(repo, body.customer_id)
    version = _plan_version(repo, body.plan_code, body.plan_version)
    if version["currency"] != customer.currency:
        raise InvalidRequestError(
            f"Plan currency {version['currency']} differs from the customer's {customer.currency}.",
            code="currency_mismatch",
            param="plan_code",
        )
    start = (body.start_at or now).astimezone(UTC)
    if body.trial_end is not None and body.trial_end <= start:
        raise InvalidRequestError(
            "trial_end must be after start_at.", code="invalid_trial", param="trial_end"
        )
    seed = f"{body.customer_id}:{idempotency_key}" if idempotency_key else secrets.token_hex(16)
    doc = {
        "id": "sub_" + hashlib.sha256(seed.encode()).hexdigest()[:20],
        "customer_id": body.customer_id,
        "status": "active",
        "currency": version["currency"],
        "interval": version["interval"],
        "start_at": start.isoformat(),
        "trial_end": body.trial_end.astimezone(UTC).isoformat() if body.trial_end else None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "phases": [
            {
                "plan_code": body.plan_code,
                "plan_version": version["version"],
                "start_at": start.isoformat(),
                "end_at": None,
            }
        ],
        "created_at": now.isoformat(),
    }
    try:
        created = repo.create_subscription(doc)
    except Exception as exc:
        existing = _existing_same(repo, doc, exc)
        if existing is None:
            raise
        created = existing
    _start_billing(created)
    return created


def _start_billing(subscription: dict[str, Any]) -> None:
    """Give a new subscription its billing state now (idempotent: a retried create finds it there), so
    its opening window is due at its start without waiting for billing's backfill."""
    from neruba.dal.billing import BillingRepository
    from neruba.logic.billing_worker import ensure_billing_state
    from neruba.settings import get_settings

    ensure_billing_state(BillingRepository(get_settings().billing_table), subscription)


def _existing_same(repo: PlansRepository, doc: dict[str, Any], exc: Exception) -> dict[str, Any] | None:
    """On a retried create (same Idempotency-Key), the subscription it made; 409 if the key made another."""
    from neruba.dal.dynamo import is_condition_failure

    if not is_condition_failure(exc):
        return None
    existing = repo.subscription(doc["id"])
    same = (existing["customer_id"], existing["phases"][0]["plan_code"]) == (
        doc["customer_id"],
        doc["phases"][0]["plan_code"],
    )
    if not same:
        raise ConflictError(
            "This Idempotency-Key was used for another subscription.", code="idempotency_conflict"
        )
    return existing


def get_subscription(
    repo: PlansRepository, subscription_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """The subscription as it stands at ``now`` (``domain.phases.state_at``: one canceled at period end
    reads ``canceled`` with its ``ended_at`` once that end has passed)."""
    from neruba.domain.phases import state_at

    try:
        stored = repo.subscription(subscription_id)
    except CatalogNotFoundError as exc:
        raise NotFoundError(f"No subscription {subscription_id!r}.", code="subscription_not_found") from exc
    return state_at(stored, now or datetime.now(UTC))


def list_subscriptions(
    repo: PlansRepository, customer_id: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    """A customer's subscriptions as they stand at ``now`` (404 for an unknown customer)."""
    from neruba.domain.phases import state_at

    get_customer(repo, customer_id)
    moment = now or datetime.now(UTC)
    return [state_at(sub, moment) for sub in repo.customer_subscriptions(customer_id)]


def _still_active(sub: dict[str, Any]) -> None:
    """409 ``subscription_canceled`` for a subscription that ended (or was canceled) already."""
    if sub["status"] != "active":
        raise ConflictError(
            "The subscription is canceled; it accepts no more changes.",
            code="subscription_canceled",
            param="subscription_id",
        )


def change_plan(
    repo: PlansRepository, subscription_id: str, change: PlanChange, now: datetime | None = None
) -> dict[str, Any]:
    """Move a subscription to another plan version from ``at`` on (usage before stays on the old version).

    The new phase records when the change was made (``created_at``): an advance fee billed before that
    instant followed the old phases (``domain.phases.prepaid_phase``)."""
    from neruba.domain.periods import period_containing

    now = now or datetime.now(UTC)
    sub = get_subscription(repo, subscription_id, now)
    _still_active(sub)
    at = (change.at or now).astimezone(UTC)
    anchor = datetime.fromisoformat(sub["start_at"])
    if now < anchor:
        raise InvalidRequestError("The subscription has not started yet.", code="subscription_not_started")
    start, end = period_containing(anchor, sub["interval"], now)
    if not start <= at < end:
        raise InvalidRequestError(
            "A plan change takes effect within the current period.", code="invalid_change_time", param="at"
        )
    version = _plan_version(repo, change.plan_code, change.plan_version)
    if version["currency"] != sub["currency"] or version["interval"] != sub["interval"]:
        raise InvalidRequestError(
            "The new plan must have the same currency and interval.",
            code="incompatible_plan",
            param="plan_code",
        )
    current = sub["phases"][-1]
    if at < datetime.fromisoformat(current["start_at"]):
        raise InvalidRequestError(
            "A change cannot precede the current phase.", code="invalid_change_time", param="at"
        )
    current["end_at"] = at.isoformat()
    sub["phases"].append(
        {
            "plan_code": change.plan_code,
            "plan_version": version["version"],
            "start_at": at.isoformat(),
            "end_at": None,
            "created_at": now.astimezone(UTC).isoformat(),
        }
    )
    return _save(repo, sub)


def cancel(
    repo: PlansRepository, subscription_id: str, body: Cancellation, now: datetime | None = None
) -> dict[str, Any]:
    """Cancel now, or at the end of the current period (billing ends it then).

    Canceling now drops the phases that had not begun (a future-dated plan change) and ends the one in
    force now (``domain.phases.end_phases``)."""
    from neruba.domain.phases import end_phases

    now = now or datetime.now(UTC)
    sub = get_subscription(repo, subscription_id, now)
    _still_active(sub)
    sub["canceled_at"] = now.isoformat()
    if body.at_period_end:
        sub["cancel_at_period_end"] = True
    else:
        sub["status"] = "canceled"
        sub["ended_at"] = now.isoformat()
        sub["phases"] = end_phases(sub["phases"], now)
    saved = _save(repo, sub)
    if not body.at_period_end:
        _end_billing(subscription_id, now)
    return saved


def _end_billing(subscription_id: str, ended_at: datetime) -> None:
    """Billing's final window of a subscription canceled now ends (and is due) at ``ended_at``."""
    from neruba.dal.billing import BillingRepository
    from neruba.settings import get_settings

    BillingRepository(get_settings().billing_table).set_end(subscription_id, ended_at)


def _save(repo: PlansRepository, sub: dict[str, Any]) -> dict[str, Any]:
    """Store a changed subscription whose phases are well-formed (``domain.phases.check_phases``)."""
    from neruba.domain.phases import check_phases

    check_phases(sub["phases"])
    try:
        return repo.save_subscription(sub)
    except CatalogConflictError as exc:
        raise ConflictError(str(exc), code="subscription_conflict") from exc
