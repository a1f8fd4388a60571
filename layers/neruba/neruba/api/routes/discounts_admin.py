"""Coupons, discounts, tax rates and customers' tax jurisdictions (admin scope): audited and idempotent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import ADMIN, Cursor, CustomerId, IdempotencyKey, Limit, answer, scoped_responses
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.models.discounts import (
    ArchiveRequest,
    Coupon,
    CouponCreate,
    CouponList,
    Discount,
    DiscountCreate,
    DiscountList,
    JurisdictionSet,
    TaxJurisdiction,
    TaxRate,
    TaxRateCreate,
    TaxRateList,
)
from neruba.models.fields import CODE_PATTERN, EXTERNAL_ID_PATTERN, PlainInteger

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "admin",
    {
        400: {"description": "A rule is broken (see error.code)"},
        404: {
            "description": "No such coupon, discount, tax rate, customer, subscription, plan or plan version"
        },
        409: {
            "description": "The Idempotency-Key was used for another request, or the coupon, discount or "
            "tax rate is archived or removed already"
        },
        422: {"description": "The body does not match the schema"},
    },
)
COUPON_ID = r"^co_[0-9a-f]{24}$"
DISCOUNT_ID = r"^di_[0-9a-f]{24}$"
TAX_RATE_ID = r"^txr_[0-9a-f]{24}$"


def _route(method: str, path: str, summary: str, model: Any, status: int = 200) -> Callable[..., Any]:
    register: Callable[..., Callable[..., Any]] = getattr(router, method)
    return register(
        path,
        summary=summary,
        tags=["billing"],
        security=BEARER_SECURITY,
        middlewares=ADMIN,
        responses={status: answer(model, "Created" if status == 201 else "OK"), **ERRORS},
    )


def _who() -> tuple[str, str | None]:
    return current_principal(router).actor, request_id_of(router)


@_route("post", "/admin/coupons", "Create a coupon (fixed amount or percentage)", Coupon, 201)
def create_coupon(
    body: Annotated[CouponCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    """Needs an Idempotency-Key."""
    from neruba.logic.billing import coupons

    actor, request_id = _who()
    result = coupons.create_coupon(bootstrap.billing(), body, actor, idempotency_key, request_id)
    return json_response(result, status=201)


@_route("get", "/admin/coupons", "List coupons (in id order, a page at a time)", CouponList)
def list_coupons(limit: Limit = 20, starting_after: Cursor = None) -> Response[str]:
    from neruba.logic.billing import coupons

    return json_response(coupons.list_coupons(bootstrap.billing(), limit, starting_after))


@_route("get", "/admin/coupons/<coupon_id>", "Retrieve a coupon", Coupon)
def get_coupon(coupon_id: Annotated[str, Path(pattern=COUPON_ID)]) -> Response[str]:
    from neruba.logic.billing import coupons

    return json_response(coupons.get_coupon(bootstrap.billing(), coupon_id))


@_route("post", "/admin/coupons/<coupon_id>/archive", "Archive a coupon (attached discounts stay)", Coupon)
def archive_coupon(
    coupon_id: Annotated[str, Path(pattern=COUPON_ID)],
    body: Annotated[ArchiveRequest, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    from neruba.logic.billing import coupons

    actor, request_id = _who()
    return json_response(
        coupons.archive_coupon(bootstrap.billing(), coupon_id, body, actor, idempotency_key, request_id)
    )


@_route(
    "post",
    "/admin/discounts",
    "Attach a coupon to a customer, a subscription or a plan version",
    Discount,
    201,
)
def create_discount(
    body: Annotated[DiscountCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    """Needs an Idempotency-Key; exactly one target."""
    from neruba.logic.billing import coupons

    actor, request_id = _who()
    result = coupons.create_discount(bootstrap.billing(), body, actor, idempotency_key, request_id)
    return json_response(result, status=201)


@_route("get", "/admin/discounts", "List the discounts of a customer or of a plan version", DiscountList)
def list_discounts(
    customer_id: Annotated[str | None, Query(pattern=EXTERNAL_ID_PATTERN)] = None,
    plan_code: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    plan_version: Annotated[int | None, PlainInteger, Query(ge=1)] = None,
    limit: Limit = 20,
    starting_after: Cursor = None,
) -> Response[str]:
    """In id order, a page at a time."""
    from neruba.logic.billing import coupons

    return json_response(
        coupons.list_discounts(
            bootstrap.billing(), customer_id, plan_code, plan_version, limit, starting_after
        )
    )


@_route("get", "/admin/discounts/<discount_id>", "Retrieve a discount", Discount)
def get_discount(discount_id: Annotated[str, Path(pattern=DISCOUNT_ID)]) -> Response[str]:
    from neruba.logic.billing import coupons

    return json_response(coupons.get_discount(bootstrap.billing(), discount_id))


@_route("post", "/admin/discounts/<discount_id>/remove", "Remove a discount from later invoices", Discount)
def remove_discount(
    discount_id: Annotated[str, Path(pattern=DISCOUNT_ID)],
    body: Annotated[ArchiveRequest, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    from neruba.logic.billing import coupons

    actor, request_id = _who()
    return json_response(
        coupons.remove_discount(bootstrap.billing(), discount_id, body, actor, idempotency_key, request_id)
    )


@_route("post", "/admin/tax-rates", "Create a tax rate (inclusive or exclusive)", TaxRate, 201)
def create_tax_rate(
    body: Annotated[TaxRateCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    from neruba.logic.billing import coupons

    actor, request_id = _who()
    result = coupons.create_tax_rate(bootstrap.billing(), body, actor, idempotency_key, request_id)
    return json_response(result, status=201)


@_route("get", "/admin/tax-rates", "List tax rates (in id order, a page at a time)", TaxRateList)
def list_tax_rates(limit: Limit = 20, starting_after: Cursor = None) -> Response[str]:
    from neruba.logic.billing import coupons

    return json_response(coupons.list_tax_rates(bootstrap.billing(), limit, starting_after))


@_route("post", "/admin/tax-rates/<tax_rate_id>/archive", "Archive a tax rate", TaxRate)
def archive_tax_rate(
    tax_rate_id: Annotated[str, Path(pattern=TAX_RATE_ID)],
    body: Annotated[ArchiveRequest, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    from neruba.logic.billing import coupons

    actor, request_id = _who()
    return json_response(
        coupons.archive_tax_rate(bootstrap.billing(), tax_rate_id, body, actor, idempotency_key, request_id)
    )


@_route(
    "get", "/admin/customers/<customer_id>/tax-jurisdiction", "A customer's tax jurisdiction", TaxJurisdiction
)
def get_jurisdiction(customer_id: CustomerId) -> Response[str]:
    from neruba.logic.billing import coupons

    return json_response(coupons.jurisdiction(bootstrap.billing(), customer_id))


@_route(
    "put",
    "/admin/customers/<customer_id>/tax-jurisdiction",
    "Set a customer's tax jurisdiction",
    TaxJurisdiction,
)
def set_jurisdiction(
    customer_id: CustomerId, body: Annotated[JurisdictionSet, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    from neruba.logic.billing import coupons

    actor, request_id = _who()
    return json_response(
        coupons.set_jurisdiction(bootstrap.billing(), customer_id, body, actor, idempotency_key, request_id)
    )
