"""Catalog reads (read scope): customers, meters, plans, subscriptions, the upcoming invoice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import READ, Cursor, Limit, answer, scoped_responses
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY
from neruba.models.fields import CODE_PATTERN, EXTERNAL_ID_PATTERN, PlainInteger
from neruba.models.views import (
    CustomerList,
    CustomerView,
    MeterList,
    MeterView,
    Plan,
    PlanList,
    PlanVersion,
    Subscription,
    SubscriptionList,
    UpcomingInvoice,
)

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "read",
    {
        400: {"description": "Bad cursor (invalid_cursor)"},
        404: {"description": "No such resource"},
        422: {"description": "A parameter is invalid"},
    },
)


def _page(kind: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """One list page of ``kind`` (a cursor of another list is 400 invalid_cursor, checked in dal.catalog)."""
    from neruba.logic.catalog.entries import page

    return page(bootstrap.plans(), kind, limit, cursor)


def _read_route(path: str, summary: str, tag: str, model: Any) -> Callable[..., Any]:
    return router.get(
        path,
        summary=summary,
        tags=[tag],
        security=BEARER_SECURITY,
        middlewares=READ,
        responses={200: answer(model, "OK"), **ERRORS},
    )


@_read_route("/v1/customers", "List customers", "customers", CustomerList)
def list_customers(limit: Limit = 20, starting_after: Cursor = None) -> Response[str]:
    return json_response(_page("customer", limit, starting_after))


@_read_route("/v1/customers/<customer_id>", "Retrieve a customer", "customers", CustomerView)
def get_customer(customer_id: Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)]) -> Response[str]:
    from neruba.logic.catalog.entries import get_customer as fetch

    return json_response(fetch(bootstrap.plans(), customer_id).model_dump(mode="json"))


@_read_route(
    "/v1/customers/<customer_id>/subscriptions",
    "List a customer's subscriptions",
    "subscriptions",
    SubscriptionList,
)
def list_subscriptions(customer_id: Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)]) -> Response[str]:
    from neruba.logic.catalog.entries import list_subscriptions as fetch

    return json_response(
        {
            "object": "list",
            "data": fetch(bootstrap.plans(), customer_id),
            "has_more": False,
            "next_cursor": None,
        }
    )


@_read_route("/v1/meters", "List meters", "meters", MeterList)
def list_meters(limit: Limit = 20, starting_after: Cursor = None) -> Response[str]:
    return json_response(_page("meter", limit, starting_after))


@_read_route("/v1/meters/<code>", "Retrieve a meter", "meters", MeterView)
def get_meter(code: Annotated[str, Path(pattern=CODE_PATTERN)]) -> Response[str]:
    from neruba.logic.catalog.entries import get_meter as fetch

    return json_response(fetch(bootstrap.plans(), code).model_dump(mode="json"))


@_read_route("/v1/plans", "List plans (latest versions)", "plans", PlanList)
def list_plans(limit: Limit = 20, starting_after: Cursor = None) -> Response[str]:
    return json_response(_page("plan", limit, starting_after))


@_read_route("/v1/plans/<plan_code>", "Retrieve a plan", "plans", Plan)
def get_plan(plan_code: Annotated[str, Path(pattern=CODE_PATTERN)]) -> Response[str]:
    from neruba.logic.catalog.entries import get_plan as fetch

    return json_response(fetch(bootstrap.plans(), plan_code))


@_read_route("/v1/plans/<plan_code>/versions/<version>", "Retrieve one plan version", "plans", PlanVersion)
def get_plan_version(
    plan_code: Annotated[str, Path(pattern=CODE_PATTERN)], version: Annotated[int, PlainInteger, Path(ge=1)]
) -> Response[str]:
    from neruba.logic.catalog.entries import get_plan as fetch

    return json_response(fetch(bootstrap.plans(), plan_code, version))


@_read_route("/v1/subscriptions/<subscription_id>", "Retrieve a subscription", "subscriptions", Subscription)
def get_subscription(subscription_id: Annotated[str, Path(pattern=r"^sub_[0-9a-f]{20}$")]) -> Response[str]:
    from neruba.logic.catalog.entries import get_subscription as fetch

    return json_response(fetch(bootstrap.plans(), subscription_id))


@_read_route(
    "/v1/customers/<customer_id>/upcoming-invoice",
    "Preview the upcoming invoice (current period to date, before credits)",
    "invoices",
    UpcomingInvoice,
)
def get_upcoming_invoice(customer_id: Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)]) -> Response[str]:
    from neruba.logic.billing.upcoming import upcoming_invoice

    ctx = bootstrap.billing()
    preview = upcoming_invoice(
        bootstrap.plans(), bootstrap.usage(), customer_id, billing=ctx.billing, late=ctx
    )
    return json_response(preview)
