"""Catalog use cases: customers, meters, plans with immutable versions (subscriptions:
``logic.catalog.subscriptions``).

Errors are the API's: 404 ``*_not_found``, 409 ``*_exists`` / ``*_conflict``, 400 for rule breaks. Every
write is audited (``dal.audit``, action ``customer.create``, ``meter.create``, ...) in the transaction of
the write itself; a customer's records are under the customer, meters' and plans' under ``_global``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from neruba import bootstrap
from neruba.dal.catalog import CatalogConflictError, CatalogNotFoundError
from neruba.dal.plans import PlansRepository, PlanVersion
from neruba.domain.advance import ADVANCE_AGGREGATIONS, ADVANCE_MODELS, can_decrease
from neruba.domain.event_rules import digest, rule_of
from neruba.domain.pricing import MAX_LINE_MINOR, filter_price, over_line_limit
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic.idempotency import Actor as Actor
from neruba.logic.idempotency import audit_put, fingerprint, record_items, replay
from neruba.models.catalog import (
    AMOUNT_MODELS,
    ChargeIn,
    Customer,
    CustomerUpdate,
    Meter,
    PlanCreate,
    PlanVersionIn,
)
from neruba.validation import param_path

MAX_PAGE = 100


SYSTEM = Actor()


def audit_item(by: Actor, action: str, target: str, **record: Any) -> dict[str, Any]:
    """The audit record of a catalog write, as a transaction action (``logic.idempotency.audit_put``)."""
    return audit_put(bootstrap.audit(), by, action, target, **record)


def page(repo: PlansRepository, kind: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """A Stripe-style list page: ``{object: list, data, has_more, next_cursor}``."""
    docs, next_cursor = repo.list_docs(kind, limit, cursor)  # a foreign cursor: InvalidCursorError (400)
    return {"object": "list", "data": docs, "has_more": next_cursor is not None, "next_cursor": next_cursor}


def create_customer(
    repo: PlansRepository, customer: Customer, by: Actor = SYSTEM, idempotency_key: str | None = None
) -> dict[str, Any]:
    """A new customer; ``Idempotency-Key`` as for :func:`create_plan` (a retry is not ``customer_exists``)."""
    request = fingerprint(customer.model_dump(mode="json"), "customers")
    first = _first_answer("customer.create", idempotency_key, request)
    if first is not None:
        return first
    now = datetime.now(UTC)
    stored = customer.model_copy(update={"created_at": customer.created_at or now})
    after = stored.model_dump(mode="json")
    audit = audit_item(
        by,
        "customer.create",
        customer.external_id,
        customer_id=customer.external_id,
        before=None,
        after=after,
        at=now,
        idempotency_key=idempotency_key,
    )
    from neruba.logic.webhooks.outbox import event_action

    created = event_action("customer.created", customer.external_id, after, now)
    records = _records(audit, "customer.create", idempotency_key, request, after)
    try:
        stored = repo.create_customer(stored, [*records, created])
    except CatalogConflictError as exc:
        first = _first_answer("customer.create", idempotency_key, request)  # the same key won meanwhile
        if first is not None:
            return first
        raise ConflictError(
            f"Customer {customer.external_id!r} exists.", code="customer_exists", param="external_id"
        ) from exc
    return stored.model_dump(mode="json")


def customer_updated(before: Customer, after: Customer, now: datetime) -> list[dict[str, Any]]:
    """The ``customer.updated`` outbox action of a change (none when nothing changed, so a repeated
    update writes no second event): the customer after, and the changed fields' values before."""
    from neruba.logic.webhooks.outbox import event_action

    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    changed = sorted(k for k in new if new[k] != old.get(k))
    if not changed:
        return []
    data = {**new, "previous_attributes": {k: old.get(k) for k in changed}}
    return [event_action("customer.updated", after.external_id, data, now)]


def get_customer(repo: PlansRepository, external_id: str) -> Customer:
    customer = repo.get_customer(external_id)
    if customer is None:
        raise NotFoundError(f"No customer {external_id!r}.", code="customer_not_found", param="customer_id")
    return customer


def update_customer(
    repo: PlansRepository, external_id: str, update: CustomerUpdate, by: Actor = SYSTEM
) -> dict[str, Any]:
    def audit(before: Customer, after: Customer) -> Sequence[dict[str, Any]]:
        old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
        changed = sorted(k for k in new if new[k] != old.get(k))
        now = datetime.now(UTC)
        return [
            audit_item(
                by,
                "customer.update",
                external_id,
                customer_id=external_id,
                before={k: old.get(k) for k in changed},
                after={k: new[k] for k in changed},
                at=now,
            ),
            *customer_updated(before, after, now),
        ]

    try:
        return repo.update_customer(external_id, update.model_dump(exclude_unset=True), audit).model_dump(
            mode="json"
        )
    except CatalogNotFoundError as exc:
        raise NotFoundError(f"No customer {external_id!r}.", code="customer_not_found") from exc
    except CatalogConflictError as exc:
        raise ConflictError(str(exc), code="customer_conflict") from exc


def create_meter(
    repo: PlansRepository, meter: Meter, by: Actor = SYSTEM, idempotency_key: str | None = None
) -> dict[str, Any]:
    """A new meter; ``Idempotency-Key`` as for :func:`create_plan` (a retry is not 409 ``meter_exists``)."""
    request = fingerprint(meter.model_dump(mode="json"), "meters")
    first = _first_answer("meter.create", idempotency_key, request)
    if first is not None:
        return first
    now = datetime.now(UTC)
    stored = meter.model_copy(update={"created_at": meter.created_at or now})
    after = stored.model_dump(mode="json")
    audit = audit_item(
        by, "meter.create", meter.code, before=None, after=after, at=now, idempotency_key=idempotency_key
    )
    try:
        created = repo.create_meter(stored, _records(audit, "meter.create", idempotency_key, request, after))
    except CatalogConflictError as exc:
        first = _first_answer("meter.create", idempotency_key, request)  # the same key won meanwhile
        if first is not None:
            return first
        raise ConflictError(f"Meter {meter.code!r} exists.", code="meter_exists", param="code") from exc
    return created.model_dump(mode="json")


def _records(
    audit: dict[str, Any], action: str, key: str | None, request: str, answer: Any
) -> list[dict[str, Any]]:
    """The audit action and, with a key, the record of the answer (``logic.idempotency.record_items``)."""
    return record_items(bootstrap.billing_records(), audit, action, key, request, answer)


def _first_answer(action: str, key: str | None, request: str) -> dict[str, Any] | None:
    """The stored answer of ``key`` for this catalog write (409 ``idempotency_conflict`` for another body)."""
    first = replay(bootstrap.billing_records(), action, key, request)
    return None if first is None else dict(first)


def get_meter(repo: PlansRepository, code: str) -> Meter:
    meter = repo.get_meter(code)
    if meter is None:
        raise NotFoundError(f"No meter {code!r}.", code="meter_not_found", param="code")
    return meter


def _check_fees(body: PlanVersionIn) -> None:
    """The fixed fee and the minimum commitment each bill at most their amount on one line, so neither may
    be over the line limit every usage line and advance event is held to (``domain.pricing``)."""
    amounts = {
        "fixed_fee.amount": body.fixed_fee.amount if body.fixed_fee else None,
        "minimum_commitment": body.minimum_commitment,
    }
    for param, amount in amounts.items():
        if amount is not None and over_line_limit(amount, body.currency):
            raise InvalidRequestError(
                f"{param} is over what one invoice line may bill ({MAX_LINE_MINOR} minor units of"
                f" {body.currency}).",
                code="amount_too_large",
                param=param,
            )


def _check_charges(repo: PlansRepository, body: PlanVersionIn) -> None:
    """Every charge names an existing meter (the charge's own shape is checked by its model), and the
    plan's fees fit on a line (:func:`_check_fees`)."""
    _check_fees(body)
    for index, charge in enumerate(body.charges):
        meter = repo.get_meter(charge.meter_code)
        if meter is None:
            raise InvalidRequestError(
                f"No meter {charge.meter_code!r}.",
                code="meter_not_found",
                param=param_path("charges", index, "meter_code"),
            )
        if charge.model in AMOUNT_MODELS and meter.aggregation != "sum":
            raise InvalidRequestError(
                f"A {charge.model} charge prices an amount: meter {charge.meter_code!r} must sum a property"
                f" (its aggregation is {meter.aggregation}).",
                code="charge_needs_sum_meter",
                param=f"charges.{index}.model",
            )
        _check_advance(charge, meter, index)
        for number, price in enumerate(charge.filters):
            ungrouped = sorted(set(price.values) - set(meter.group_by))
            if ungrouped:
                raise InvalidRequestError(
                    f"A charge filter can only match properties its meter groups by: meter"
                    f" {charge.meter_code!r} does not group by {', '.join(ungrouped)}.",
                    code="filter_not_grouped",
                    param=f"charges.{index}.filters.{number}.values",
                )


def _check_advance(charge: ChargeIn, meter: Meter, index: int) -> None:
    """A pay-in-advance charge prices each event on its own: a model whose price of n units is known
    from n alone, on a meter whose events each change a count (docs/pricing.md, "Pay-in-advance
    charges")."""
    if not charge.pay_in_advance:
        return
    refusal = None
    if charge.model not in ADVANCE_MODELS:
        refusal = (
            f"a {charge.model} charge cannot be billed in advance (use {', '.join(sorted(ADVANCE_MODELS))})"
        )
        param = "model"
    elif meter.aggregation not in ADVANCE_AGGREGATIONS:
        refusal = (
            f"meter {meter.code!r} aggregates by {meter.aggregation}; a charge billed in advance needs a"
            f" {', '.join(sorted(ADVANCE_AGGREGATIONS))} meter"
        )
        param = "meter_code"
    elif charge.filters or charge.pricing_unit is not None:
        refusal = "a charge billed in advance has one price: no filters and no pricing_unit"
        param = "filters" if charge.filters else "pricing_unit"
    elif charge.zero_usage_flat_fee:
        refusal = (
            "a charge billed in advance bills each event's change of price, and a first tier's flat fee"
            " due with no usage (zero_usage_flat_fee) is in the price of 0 units, so no event would ever"
            " bill it: bill a recurring amount with the plan's fixed_fee"
        )
        param = "zero_usage_flat_fee"
    elif charge.on_removal in ("credit", "refund") and not can_decrease(
        meter.aggregation, meter.allow_negative
    ):
        refusal = (
            f"on_removal {charge.on_removal} gives back what a decrease removes, but meter {meter.code!r}"
            f" ({meter.aggregation}) never decreases: billed in advance it takes on_removal none, or a sum"
            " meter with allow_negative: true"
        )
        param = "on_removal"
    if refusal is not None:
        raise InvalidRequestError(
            f"charges[{index}]: {refusal}.",
            code="advance_not_supported",
            param=param_path("charges", index, param),
        )


def _register_advance_meters(repo: PlansRepository, body: PlanVersionIn) -> None:
    """Mark the meters some charge bills in advance, so the ingest worker sends their events to billing
    as they are counted (before the version is published: a mark of a version that then fails to
    publish only sends events billing records as not billed)."""
    for charge in body.charges:
        if charge.pay_in_advance:
            repo.register_advance_meter(charge.meter_code)


def _register_event_rules(repo: PlansRepository, body: PlanVersionIn) -> None:
    """Register on each meter the per-event rules of the charges (and filters) that price it, before the
    version is published, so ingest prices the meter's events by them (docs/pricing.md, "Per-event
    minimum and maximum"). A rule of a version that then fails to publish only adds unused sums."""
    for charge in body.charges:
        dumped = charge.model_dump(mode="json")
        prices = [dumped] + [filter_price(dumped, index) for index in range(len(dumped["filters"]))]
        rules = {digest(rule): rule for rule in map(rule_of, prices) if rule is not None}
        repo.register_event_rules(charge.meter_code, rules)


def _plan_audit(
    by: Actor, action: str, key: str | None = None, request: str = "", answer: Callable[[Any], Any] = dict
) -> Callable[[dict[str, Any]], Sequence[dict[str, Any]]]:
    """The audit record of a published version (``after`` is the version's document) and, with an
    ``Idempotency-Key``, the record of the answer ``answer(doc)``, both in the publication's transaction."""

    def actions(doc: dict[str, Any]) -> Sequence[dict[str, Any]]:
        at = datetime.now(UTC)
        audit = audit_item(by, action, str(doc["code"]), before=None, after=doc, at=at, idempotency_key=key)
        return _records(audit, action, key, request, answer(doc))

    return actions


def create_plan(
    repo: PlansRepository, body: PlanCreate, by: Actor = SYSTEM, idempotency_key: str | None = None
) -> dict[str, Any]:
    """Version 1 of a new plan. With an ``Idempotency-Key`` a retry of the same body gets the first answer
    (not 409 ``plan_exists``), another body 409 ``idempotency_conflict``; a refused body stores nothing."""
    request = fingerprint(_version_doc(body), "plans")
    first = _first_answer("plan.create", idempotency_key, request)
    if first is not None:
        return first
    _check_charges(repo, body)
    _check_defaults(body)
    try:
        repo.plan(body.code)
    except CatalogNotFoundError:
        pass
    else:
        raise ConflictError(
            f"Plan {body.code!r} exists; publish a new version instead.", code="plan_exists", param="code"
        )
    _register_event_rules(repo, body)
    _register_advance_meters(repo, body)
    extra = _plan_audit(by, "plan.create", idempotency_key, request, lambda doc: {**doc, "versions": [1]})
    _publish(repo, body.code, _version_doc(body, exclude={"code"}), extra)
    return repo.plan(body.code).document


def publish_version(
    repo: PlansRepository,
    code: str,
    body: PlanVersionIn,
    by: Actor = SYSTEM,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """The next version of plan ``code``; ``Idempotency-Key`` as for :func:`create_plan`."""
    request = fingerprint(_version_doc(body), f"plans/{code}/versions")
    first = _first_answer("plan.publish_version", idempotency_key, request)
    if first is not None:
        return first
    get_plan(repo, code)
    _check_charges(repo, body)
    _check_defaults(body)
    _register_event_rules(repo, body)
    _register_advance_meters(repo, body)
    extra = _plan_audit(by, "plan.publish_version", idempotency_key, request)
    version = _publish(repo, code, _version_doc(body), extra)
    return repo.version(code, version).document


def _version_doc(body: PlanVersionIn, exclude: set[str] | None = None) -> dict[str, Any]:
    """The version as stored (and fingerprinted): ``defaults`` only when the version sets some, so a
    version without them reads as before they existed."""
    doc = body.model_dump(mode="json", exclude=exclude)
    if doc.get("defaults") is None:
        doc.pop("defaults", None)
    return doc


def _check_defaults(body: PlanVersionIn) -> None:
    """The version's defaults follow the rules of a customer's limits (400 with their codes)."""
    from neruba.logic.limits.settings import validated_defaults

    validated_defaults(body.defaults)


def _publish(
    repo: PlansRepository, code: str, doc: dict[str, Any], extra: Callable[[dict[str, Any]], Any]
) -> int:
    """``repo.publish``; 409 ``plan_conflict`` when the plan (or the key's record) kept changing."""
    try:
        return repo.publish(code, doc, extra)
    except CatalogConflictError as exc:
        raise ConflictError(
            f"Plan {code!r} kept changing; try again.", code="plan_conflict", param="code"
        ) from exc


def get_plan(repo: PlansRepository, code: str, version: int | None = None) -> dict[str, Any]:
    try:
        return repo.plan(code).document if version is None else repo.version(code, version).document
    except CatalogNotFoundError as exc:
        raise NotFoundError(str(exc).capitalize() + ".", code="plan_not_found", param="plan_code") from exc


def plan_version_of(repo: PlansRepository, code: str, version: int | None) -> PlanVersion:
    """One version of a plan (the latest when ``version`` is None), or 404."""
    try:
        return repo.version(code, version)
    except CatalogNotFoundError as exc:
        raise NotFoundError(str(exc).capitalize() + ".", code="plan_not_found", param="plan_code") from exc


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
    return state_at({**stored.document, "revision": stored.revision}, now or datetime.now(UTC))


def list_subscriptions(
    repo: PlansRepository, customer_id: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    """A customer's subscriptions as they stand at ``now`` (404 for an unknown customer)."""
    from neruba.domain.phases import state_at

    get_customer(repo, customer_id)
    moment = now or datetime.now(UTC)
    return [state_at(sub.document, moment) for sub in repo.customer_subscriptions(customer_id)]
