"""Catalog writes (admin scope): customers, meters, plans and versions, subscriptions. Each write is
audited (``GET /admin/audit``) with the calling key as actor."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import ADMIN, IdempotencyKey, answer, scoped_responses
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.models.catalog import (
    Cancellation,
    CustomerArchive,
    CustomerCreate,
    CustomerUpdate,
    Meter,
    PlanChange,
    PlanCreate,
    PlanVersionIn,
    SubscriptionCreate,
)
from neruba.models.fields import CODE_PATTERN, EXTERNAL_ID_PATTERN
from neruba.models.views import CustomerView, MeterView, Plan, PlanVersion, Subscription

if TYPE_CHECKING:
    from neruba.logic.catalog.entries import Actor

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "admin",
    {
        400: {"description": "A rule of the catalog is broken (see error.code)"},
        404: {"description": "A referenced resource does not exist"},
        409: {
            "description": "The resource exists or changed meanwhile; subscription_overlap (details name "
            "the subscription already charging the meter or plan); idempotency_conflict; "
            "subscription_canceled (a canceled subscription accepts no changes); customer_archived (an "
            "archived customer takes no new subscription)"
        },
        422: {"description": "The body does not match the schema"},
    },
)


def _by() -> Actor:
    """The calling key and request, recorded as the audit actor."""
    from neruba.logic.catalog.entries import Actor

    return Actor(current_principal(router).actor, request_id_of(router))


def _admin_route(
    method: str, path: str, summary: str, tag: str, model: Any, status: int = 200
) -> Callable[..., Any]:
    register: Callable[..., Callable[..., Any]] = getattr(router, method)
    return register(
        path,
        summary=summary,
        tags=[tag],
        security=BEARER_SECURITY,
        middlewares=ADMIN,
        responses={status: answer(model, "Created" if status == 201 else "OK"), **ERRORS},
    )


@_admin_route("post", "/v1/customers", "Create a customer", "customers", CustomerView, 201)
def create_customer(
    body: Annotated[CustomerCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    """``Idempotency-Key`` as for ``POST /v1/plans``: a retry gets the first 201, not ``customer_exists``."""
    from neruba.logic.catalog import entries as catalog
    from neruba.models.catalog import Customer

    customer = Customer.model_validate(body.model_dump())
    created = catalog.create_customer(bootstrap.plans(), customer, _by(), idempotency_key)
    return json_response(created, status=201)


@_admin_route("post", "/v1/customers/<customer_id>/archive", "Archive a customer", "customers", CustomerView)
def archive_customer(
    customer_id: Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)], body: Annotated[CustomerArchive, Body()]
) -> Response[str]:
    """Mark the customer archived (``archived_at``; archiving again changes nothing) and cancel each of its
    active subscriptions at that time, as ``POST /v1/subscriptions/{id}/cancel`` with ``at_period_end:
    false`` does (the final window is billed). Its events, invoices and ledger stay readable; new usage
    is refused per event and new subscriptions with 409, both ``customer_archived``."""
    from neruba.logic.catalog.archive import archive_customer as archive

    return json_response(archive(bootstrap.plans(), customer_id, body, by=_by()))


@_admin_route("patch", "/v1/customers/<customer_id>", "Update a customer", "customers", CustomerView)
def update_customer(
    customer_id: Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)], body: Annotated[CustomerUpdate, Body()]
) -> Response[str]:
    from neruba.logic.catalog import entries as catalog

    return json_response(catalog.update_customer(bootstrap.plans(), customer_id, body, _by()))


@_admin_route("post", "/v1/meters", "Create a meter", "meters", MeterView, 201)
def create_meter(body: Annotated[Meter, Body()], idempotency_key: IdempotencyKey = None) -> Response[str]:
    """``Idempotency-Key`` as for ``POST /v1/plans``: a retry gets the first 201, not ``meter_exists``."""
    from neruba.logic.catalog import entries as catalog

    created = catalog.create_meter(bootstrap.plans(), body, _by(), idempotency_key)
    return json_response(created, status=201)


@_admin_route("post", "/v1/plans", "Create a plan (version 1)", "plans", Plan, 201)
def create_plan(body: Annotated[PlanCreate, Body()], idempotency_key: IdempotencyKey = None) -> Response[str]:
    """Send an ``Idempotency-Key`` header: a retry with the same key and body returns the first answer,
    the same key with another body is 409 ``idempotency_conflict``."""
    from neruba.logic.catalog import entries as catalog

    created = catalog.create_plan(bootstrap.plans(), body, _by(), idempotency_key)
    return json_response(created, status=201)


@_admin_route(
    "post", "/v1/plans/<plan_code>/versions", "Publish a new plan version", "plans", PlanVersion, 201
)
def publish_version(
    plan_code: Annotated[str, Path(pattern=CODE_PATTERN)],
    body: Annotated[PlanVersionIn, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """``Idempotency-Key`` as for ``POST /v1/plans``: a retried publication is not a second version."""
    from neruba.logic.catalog import entries as catalog

    published = catalog.publish_version(bootstrap.plans(), plan_code, body, _by(), idempotency_key)
    return json_response(published, status=201)


@_admin_route(
    "post", "/v1/subscriptions", "Subscribe a customer to a plan", "subscriptions", Subscription, 201
)
def create_subscription(
    body: Annotated[SubscriptionCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    """Refused (409 ``subscription_overlap``) when another subscription of the customer charges one of the
    plan's meters, or is on the same plan, over an overlapping time; move a customer between plans with a
    plan change instead. Send an ``Idempotency-Key`` header: a retry with the same key and body returns
    the first answer, the same key with another body is 409 ``idempotency_conflict``."""
    from neruba.logic.catalog import subscriptions

    created = subscriptions.create_subscription(bootstrap.plans(), body, idempotency_key, by=_by())
    return json_response(created, status=201)


@_admin_route(
    "post", "/v1/subscriptions/<subscription_id>/change-plan", "Change plan", "subscriptions", Subscription
)
def change_plan(
    subscription_id: Annotated[str, Path(pattern=r"^sub_[0-9a-f]{20}$")], body: Annotated[PlanChange, Body()]
) -> Response[str]:
    """From ``at`` on, usage is rated under the new version; the fixed fee is prorated by time. Refused
    (409 ``subscription_overlap``) when the new plan charges a meter another subscription charges then."""
    from neruba.logic.catalog import subscriptions

    return json_response(subscriptions.change_plan(bootstrap.plans(), subscription_id, body, by=_by()))


@_admin_route(
    "post",
    "/v1/subscriptions/<subscription_id>/cancel",
    "Cancel a subscription",
    "subscriptions",
    Subscription,
)
def cancel_subscription(
    subscription_id: Annotated[str, Path(pattern=r"^sub_[0-9a-f]{20}$")],
    body: Annotated[Cancellation, Body()],
) -> Response[str]:
    from neruba.logic.catalog import subscriptions

    return json_response(subscriptions.cancel(bootstrap.plans(), subscription_id, body, by=_by()))
