"""Operator actions on coupons, discounts, tax rates and tax jurisdictions (admin scope).

Every write needs an ``Idempotency-Key`` and runs through the one operator mechanism
(``logic.idempotency``): the same key and body answer the first result and write nothing, another body
is 409 ``idempotency_conflict``, and the audit record (``coupon.create``, ``coupon.archive``,
``discount.create``, ``discount.remove``, ``tax_rate.create``, ``tax_rate.archive``,
``customer.tax_jurisdiction``) is written in the transaction of the change. Ids follow from the key.
Billing applies what is stored here (``logic.billing.discounts``); docs/billing.md, "Coupons and
discounts" and "Taxes", lists the rules and the error codes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neruba import bootstrap
from neruba.dal.discounts import DiscountsRepository, Stored, customer_partition, plan_partition
from neruba.dal.features import DISCOUNT, STRIPE_TAX
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.domain.numbers import canonical_text
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic import idempotency
from neruba.logic.billing.discounts import DELEGATED
from neruba.models.discounts import MAX_COUPON_MINOR
from neruba.timefmt import ts

if TYPE_CHECKING:
    from pydantic import BaseModel

    from neruba.logic.billing.context import Billing
    from neruba.models.discounts import (
        ArchiveRequest,
        CouponCreate,
        DiscountCreate,
        JurisdictionSet,
        TaxRateCreate,
    )

MAX_PERIODS = 1200
Build = Callable[[str], tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]]


def repo(ctx: Billing) -> DiscountsRepository:
    return ctx.billing.discounts


def _bad(message: str, code: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, code=code, param=param)


def _state(message: str, code: str, param: str) -> ConflictError:
    """The request is well formed but the object's state refuses it (archived, removed): 409, as an
    invoice or event voided twice."""
    return ConflictError(message, code=code, param=param)


def _operate(
    ctx: Billing,
    scope: str,
    action: str,
    body: BaseModel,
    target: str,
    actor: str,
    key: str | None,
    request_id: str | None,
    now: datetime,
    build: Build,
) -> dict[str, Any]:
    """Replay, or build (result, actions, audit fields) from the key and commit it with the audit and
    idempotency records; a lost race answers the winner's result."""
    key = idempotency.require_key(key)
    fingerprint = idempotency.fingerprint(body.model_dump(mode="json"), target)
    replayed = idempotency.replay(ctx.billing, scope, key, fingerprint)
    if replayed is not None:
        return dict(replayed)
    result, actions, audit_fields = build(key)
    reason, ticket = getattr(body, "reason", None), getattr(body, "ticket", None)
    audit = idempotency.audit_put(
        bootstrap.audit(),
        idempotency.Actor(actor, request_id),
        action,
        str(result.get("id") or target),
        reason=reason,
        ticket=ticket,
        at=now,
        idempotency_key=key,
        **audit_fields,
    )
    actions += idempotency.record_items(ctx.billing, audit, scope, key, fingerprint, result)
    try:
        commit(Transaction(actions))
    except Cancelled as exc:
        again = idempotency.replay(ctx.billing, scope, key, fingerprint)
        if again is not None:
            return dict(again)
        raise ConflictError(f"The {target} changed meanwhile; try again.", code="discount_conflict") from exc
    return result


# ---------------------------------------------------------------- coupons


def _coupon_terms(body: CouponCreate) -> dict[str, Any]:
    if (body.percent_off is None) == (body.amount_off_minor is None):
        raise _bad(
            "Give percent_off, or amount_off_minor and currency (one of the two).",
            "coupon_amount_required",
            "percent_off",
        )
    if body.amount_off_minor is not None:
        if body.currency is None:
            raise _bad("A fixed amount needs its currency.", "currency_required", "currency")
        if body.amount_off_minor <= 0:
            raise _bad("amount_off_minor must be positive.", "amount_not_positive", "amount_off_minor")
        if body.amount_off_minor > MAX_COUPON_MINOR:
            raise _bad(
                f"amount_off_minor is at most {MAX_COUPON_MINOR}.", "amount_too_large", "amount_off_minor"
            )
    elif body.currency is not None:
        raise _bad("A percentage coupon has no currency.", "currency_not_allowed", "currency")
    if body.duration == "repeating":
        if body.duration_periods is None:
            raise _bad(
                "A repeating coupon needs duration_periods.", "duration_periods_required", "duration_periods"
            )
        if not 1 <= body.duration_periods <= MAX_PERIODS:
            raise _bad(
                f"duration_periods is 1 to {MAX_PERIODS}.",
                "duration_periods_out_of_range",
                "duration_periods",
            )
    elif body.duration_periods is not None:
        raise _bad(
            "Only a repeating coupon takes duration_periods.",
            "duration_periods_not_allowed",
            "duration_periods",
        )
    return {
        "percent_off": None if body.percent_off is None else canonical_text(body.percent_off),
        "amount_off_minor": body.amount_off_minor,
        "currency": body.currency,
        "duration": body.duration,
        "duration_periods": body.duration_periods,
    }


def create_coupon(
    ctx: Billing,
    body: CouponCreate,
    actor: str,
    key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/coupons``."""
    now = now or datetime.now(UTC)
    terms = _coupon_terms(body)

    def build(k: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        doc = {
            "id": "co_" + idempotency.digest({"coupon": k}, 24),
            "object": "coupon",
            "name": body.name,
            **terms,
            "status": "active",
            "created_at": ts(now),
            "archived_at": None,
        }
        return doc, [repo(ctx).put_item("CPN", doc)], {"after": terms}

    return _operate(
        ctx, "coupon-create", "coupon.create", body, "coupons", actor, key, request_id, now, build
    )


def _page(
    read: Callable[[int, str | None], tuple[list[Stored], str | None]], limit: int, cursor: str | None
) -> dict[str, Any]:
    """A list page (``{object: list, data, has_more, next_cursor}``) of what ``read`` gives; a cursor
    another list (or this list with other filters) handed out is 400 ``invalid_cursor``."""
    found, next_cursor = read(limit, cursor)
    return {
        "object": "list",
        "data": [item.document for item in found],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }


def list_coupons(ctx: Billing, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
    """``GET /admin/coupons``: a page of coupons in id order."""
    return _page(repo(ctx).coupons_page, limit, cursor)


def get_coupon(ctx: Billing, coupon_id: str) -> dict[str, Any]:
    found = repo(ctx).coupon(coupon_id)
    if found is None:
        raise NotFoundError(f"No coupon {coupon_id!r}.", code="coupon_not_found", param="coupon_id")
    return found.document


def archive_coupon(
    ctx: Billing,
    coupon_id: str,
    body: ArchiveRequest,
    actor: str,
    key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/coupons/{id}/archive``: no new discount may use it; discounts already attached stay."""
    now = now or datetime.now(UTC)

    def build(k: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        doc = get_coupon(ctx, coupon_id)
        if doc["status"] == "archived":
            raise _state("The coupon is already archived.", "coupon_archived", "coupon_id")
        action = repo(ctx).status_item("CPN", coupon_id, "active", "archived", "archived_at", ts(now))
        result = {**doc, "status": "archived", "archived_at": ts(now)}
        return result, [action], {"before": {"status": "active"}, "after": {"status": "archived"}}

    return _operate(
        ctx, "coupon-archive", "coupon.archive", body, coupon_id, actor, key, request_id, now, build
    )


# ---------------------------------------------------------------- discounts


def _target(ctx: Billing, body: DiscountCreate) -> tuple[str, str, str, dict[str, Any]]:
    """(target, partition, currency, ids) of a discount request, or a 4xx."""
    plan = body.plan_code is not None or body.plan_version is not None
    by_customer = body.customer_id is not None or body.subscription_id is not None
    if plan == by_customer:
        raise _bad(
            "Attach the coupon to one of: customer_id, subscription_id, or plan_code and plan_version.",
            "discount_target_required",
            "customer_id",
        )
    if plan:
        if body.plan_code is None or body.plan_version is None:
            raise _bad(
                "A plan discount needs plan_code and plan_version.",
                "discount_target_required",
                "plan_version",
            )
        from neruba.dal.catalog import CatalogNotFoundError

        try:
            version = ctx.plans.version(body.plan_code, body.plan_version)
        except CatalogNotFoundError as exc:
            raise NotFoundError(
                f"No version {body.plan_version} of plan {body.plan_code!r}.",
                code="plan_version_not_found",
                param="plan_version",
            ) from exc
        ids = {
            "customer_id": None,
            "subscription_id": None,
            "plan_code": version.code,
            "plan_version": version.version,
        }
        return "plan", plan_partition(version.code, version.version), version.currency, ids
    customer_id = body.customer_id
    currency: str | None = None
    if body.subscription_id is not None:
        from neruba.dal.catalog import CatalogNotFoundError

        try:
            sub = ctx.plans.subscription(body.subscription_id)
        except CatalogNotFoundError as exc:
            raise NotFoundError(
                f"No subscription {body.subscription_id!r}.",
                code="subscription_not_found",
                param="subscription_id",
            ) from exc
        if customer_id is not None and customer_id != sub.customer_id:
            raise _bad(
                "The subscription belongs to another customer.",
                "subscription_customer_mismatch",
                "subscription_id",
            )
        customer_id, currency = sub.customer_id, sub.currency
    assert customer_id is not None
    customer = ctx.plans.get_customer(customer_id)
    if customer is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    target = "subscription" if body.subscription_id else "customer"
    ids = {
        "customer_id": customer_id,
        "subscription_id": body.subscription_id,
        "plan_code": None,
        "plan_version": None,
    }
    return target, customer_partition(customer_id), currency or customer.currency, ids


def _flag(ctx: Billing, ids: dict[str, Any]) -> dict[str, Any]:
    """The action flagging where a new discount is attached: its plan version, or its customer."""
    features = ctx.billing.features
    if ids.get("plan_code") is not None:
        return features.plan_item(str(ids["plan_code"]), int(ids["plan_version"]))
    return features.customer_item(str(ids["customer_id"]), DISCOUNT)


def create_discount(
    ctx: Billing,
    body: DiscountCreate,
    actor: str,
    key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/discounts``: the coupon's terms are copied onto the discount (archiving or changing
    nothing later alters it); its periods count from the first billing period it discounts after it."""
    now = now or datetime.now(UTC)

    def build(k: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        coupon = get_coupon(ctx, body.coupon_id)
        if coupon["status"] != "active":
            raise _state("An archived coupon cannot be attached.", "coupon_archived", "coupon_id")
        target, partition, currency, ids = _target(ctx, body)
        if coupon["currency"] is not None and coupon["currency"] != currency:
            raise _bad(
                f"The coupon is in {coupon['currency']}; the {target} is billed in {currency}.",
                "currency_mismatch",
                "coupon_id",
            )
        discount_id = "di_" + idempotency.digest({"discount": k}, 24)
        doc = {
            "id": discount_id,
            "object": "discount",
            "coupon_id": coupon["id"],
            "coupon": coupon,
            "target": target,
            **ids,
            "status": "active",
            "created_at": ts(now),
            "removed_at": None,
        }
        store = repo(ctx)
        actions = [
            store.put_item(partition, doc),
            store.put_item("DSCX", {"id": discount_id, "status": "active", "partition": partition}),
            _flag(ctx, ids),  # windows read the discounts it flags (dal.features)
        ]
        return (
            doc,
            actions,
            {"customer_id": ids["customer_id"], "after": {"coupon_id": coupon["id"], "target": target}},
        )

    return _operate(
        ctx, "discount-create", "discount.create", body, "discounts", actor, key, request_id, now, build
    )


def _discount(ctx: Billing, discount_id: str) -> tuple[str, dict[str, Any]]:
    store = repo(ctx)
    partition = store.partition_of(discount_id)
    found = store.discount(partition, discount_id) if partition else None
    if partition is None or found is None:
        raise NotFoundError(f"No discount {discount_id!r}.", code="discount_not_found", param="discount_id")
    return partition, found.document


def get_discount(ctx: Billing, discount_id: str) -> dict[str, Any]:
    return _discount(ctx, discount_id)[1]


def list_discounts(
    ctx: Billing,
    customer_id: str | None,
    plan_code: str | None,
    plan_version: int | None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A page of a customer's discounts (its own and its subscriptions'), or of a plan version's, in id
    order. A customer and a plan version are two lists: naming both is 400 ``conflicting_filters``."""
    if customer_id is not None and (plan_code is not None or plan_version is not None):
        raise _bad(
            "customer_id lists a customer's discounts and plan_code/plan_version a plan version's: "
            "pass one or the other.",
            "conflicting_filters",
            "plan_code" if plan_code is not None else "plan_version",
        )
    if (customer_id is None) == (plan_code is None or plan_version is None):
        raise _bad(
            "List the discounts of a customer_id, or of a plan_code and plan_version.",
            "discount_target_required",
            "customer_id",
        )
    if customer_id is not None:
        partition = customer_partition(customer_id)
    else:
        assert plan_code is not None and plan_version is not None
        partition = plan_partition(plan_code, plan_version)
    return _page(lambda n, after: repo(ctx).discounts_page(partition, n, after), limit, cursor)


def remove_discount(
    ctx: Billing,
    discount_id: str,
    body: ArchiveRequest,
    actor: str,
    key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/discounts/{id}/remove``: invoices billed after it apply it no more (a draft that
    carries it keeps it until finalized)."""
    now = now or datetime.now(UTC)

    def build(k: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        partition, doc = _discount(ctx, discount_id)
        if doc["status"] != "active":
            raise _state("The discount is already removed.", "discount_removed", "discount_id")
        action = repo(ctx).status_item(partition, discount_id, "active", "removed", "removed_at", ts(now))
        result = {**doc, "status": "removed", "removed_at": ts(now)}
        fields = {
            "customer_id": doc.get("customer_id"),
            "before": {"status": "active"},
            "after": {"status": "removed"},
        }
        return result, [action], fields

    return _operate(
        ctx, "discount-remove", "discount.remove", body, discount_id, actor, key, request_id, now, build
    )


# ---------------------------------------------------------------- tax rates


def create_tax_rate(
    ctx: Billing,
    body: TaxRateCreate,
    actor: str,
    key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/tax-rates``."""
    now = now or datetime.now(UTC)
    if body.state is not None and body.country is None:
        raise _bad("A state needs its country.", "state_needs_country", "state")
    if body.country is None and body.plan_code is None:
        raise _bad(
            "A tax rate applies to a country (and state), a plan_code, or both.",
            "tax_rate_target_required",
            "country",
        )
    if body.plan_code is not None:
        _known_plan(ctx, body.plan_code)

    def build(k: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        terms = {
            "display_name": body.display_name,
            "percentage": canonical_text(body.percentage),
            "inclusive": body.inclusive,
            "country": body.country,
            "state": body.state,
            "plan_code": body.plan_code,
        }
        doc = {
            "id": "txr_" + idempotency.digest({"tax_rate": k}, 24),
            "object": "tax_rate",
            **terms,
            "status": "active",
            "created_at": ts(now),
            "archived_at": None,
        }
        flag = ctx.billing.features.tax_rate_item()  # windows read the tax rates from now on
        return doc, [repo(ctx).put_item("TXR", doc), flag], {"after": terms}

    return _operate(
        ctx, "tax-rate-create", "tax_rate.create", body, "tax-rates", actor, key, request_id, now, build
    )


def _known_plan(ctx: Billing, plan_code: str) -> None:
    """404 ``plan_not_found`` for a plan the catalog does not have, as every route naming a plan."""
    from neruba.dal.catalog import CatalogNotFoundError

    try:
        ctx.plans.plan(plan_code)
    except CatalogNotFoundError as exc:
        raise NotFoundError(f"No plan {plan_code!r}.", code="plan_not_found", param="plan_code") from exc


def list_tax_rates(ctx: Billing, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
    """``GET /admin/tax-rates``: a page of tax rates in id order."""
    return _page(repo(ctx).tax_rates_page, limit, cursor)


def archive_tax_rate(
    ctx: Billing,
    tax_rate_id: str,
    body: ArchiveRequest,
    actor: str,
    key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/tax-rates/{id}/archive``: invoices billed after it no longer apply the rate."""
    now = now or datetime.now(UTC)

    def build(k: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        found = repo(ctx).tax_rate(tax_rate_id)
        if found is None:
            raise NotFoundError(
                f"No tax rate {tax_rate_id!r}.", code="tax_rate_not_found", param="tax_rate_id"
            )
        if found.status != "active":
            raise _state("The tax rate is already archived.", "tax_rate_archived", "tax_rate_id")
        action = repo(ctx).status_item("TXR", tax_rate_id, "active", "archived", "archived_at", ts(now))
        result = {**found.document, "status": "archived", "archived_at": ts(now)}
        return result, [action], {"before": {"status": "active"}, "after": {"status": "archived"}}

    return _operate(
        ctx, "tax-rate-archive", "tax_rate.archive", body, tax_rate_id, actor, key, request_id, now, build
    )


def jurisdiction(ctx: Billing, customer_id: str) -> dict[str, Any]:
    """``GET /admin/customers/{id}/tax-jurisdiction``: where the customer is taxed, the rates that apply."""
    from neruba.logic.billing.discounts import rates_for

    if ctx.plans.get_customer(customer_id) is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    store = repo(ctx)
    where = store.jurisdiction(customer_id) or {}
    applied = {str(r["id"]) for r in rates_for(store, customer_id)}
    rates = [r.document for r in store.tax_rates() if r.id in applied]
    return {
        "object": "tax_jurisdiction",
        "customer_id": customer_id,
        "country": where.get("country"),
        "state": where.get("state"),
        "provider": where.get("provider") or "neruba",
        "tax_rates": sorted(rates, key=lambda r: (r["created_at"], r["id"])),
    }


def set_jurisdiction(
    ctx: Billing,
    customer_id: str,
    body: JurisdictionSet,
    actor: str,
    key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``PUT /admin/customers/{id}/tax-jurisdiction``: invoices billed after it use the new place."""
    now = now or datetime.now(UTC)

    def build(k: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        before = jurisdiction(ctx, customer_id)
        place = {"country": body.country, "state": body.state, "provider": body.provider}
        doc = {**place, "updated_at": ts(now)}
        result = {**before, **place, "tax_rates": []}
        fields = {
            "customer_id": customer_id,
            "before": {k: before[k] for k in ("country", "state", "provider")},
            "after": place,
        }
        actions = [repo(ctx).jurisdiction_item(customer_id, doc)]
        if body.provider == DELEGATED:  # windows read the jurisdiction of this customer from now on
            actions.append(ctx.billing.features.customer_item(customer_id, STRIPE_TAX))
        return result, actions, fields

    result = _operate(
        ctx,
        "tax-jurisdiction",
        "customer.tax_jurisdiction",
        body,
        customer_id,
        actor,
        key,
        request_id,
        now,
        build,
    )
    return {**result, "tax_rates": jurisdiction(ctx, customer_id)["tax_rates"]}
