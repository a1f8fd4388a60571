"""Outgoing webhooks (admin scope): endpoints, secret rotation, events with their attempts, resend.

docs/webhooks.md describes the signature, the event types and the delivery rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import ADMIN, Cursor, IdempotencyKey, Limit, answer, only_query, scoped_responses
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.logic.idempotency import Actor
from neruba.models.fields import EXTERNAL_ID_PATTERN, AwareInstant
from neruba.models.webhooks import (
    Endpoint,
    EndpointCreate,
    EndpointDeleted,
    EndpointList,
    EndpointUpdate,
    EventType,
    EventView,
    ResendRequest,
    ResendResult,
    SecretRotation,
    WebhookEventList,
)

router = APIGatewayRouter()
ENDPOINT_ID = r"^we_[0-9a-f]{20}$"
EVENT_ID = r"^evt_[0-9a-f]{24}$"
# a customer's external id, or ``_global``: the events of no customer (a DLQ arrival, a failed billing run)
EVENTS_OF = "^(_global|" + EXTERNAL_ID_PATTERN.strip("^$") + ")$"
ERRORS = scoped_responses(
    "admin",
    {
        400: {
            "description": "A URL refused, a bad cursor (invalid_cursor) or resend request, 'from' "
            "after 'to' (invalid_range), a query parameter the route does not take (unknown_parameter; "
            "see error.code)"
        },
        404: {"description": "No such endpoint or event (also the endpoint_id a resend names)"},
        409: {"description": "The Idempotency-Key was used for another request, or the endpoint changed"},
        422: {"description": "The body or a parameter does not match the schema"},
    },
)


def _route(
    method: str, path: str, summary: str, model: Any, status: int = 200, query: tuple[str, ...] = ()
) -> Callable[..., Any]:
    """A webhooks route; one with ``query`` refuses any other query parameter (400 unknown_parameter)."""
    register: Callable[..., Callable[..., Any]] = getattr(router, method)
    return register(
        path,
        summary=summary,
        tags=["webhooks"],
        security=BEARER_SECURITY,
        middlewares=[*ADMIN, only_query(*query)] if query else ADMIN,
        responses={status: answer(model, "Created" if status == 201 else "OK"), **ERRORS},
    )


def _actor() -> Actor:
    return Actor(current_principal(router).actor, request_id_of(router))


def _now() -> datetime:
    return datetime.now(UTC)


@_route(
    "post",
    "/admin/webhook-endpoints",
    "Create a webhook endpoint (the answer shows its secret)",
    Endpoint,
    201,
)
def create_endpoint(
    body: Annotated[EndpointCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    from neruba.logic.webhooks import endpoints

    created = endpoints.create(bootstrap.webhooks(), body, _actor(), _now(), idempotency_key)
    return json_response(created, status=201)


@_route("get", "/admin/webhook-endpoints", "List webhook endpoints", EndpointList,
        query=("limit", "starting_after"))  # fmt: skip
def list_endpoints(limit: Limit = 20, starting_after: Cursor = None) -> Response[str]:
    from neruba.logic.webhooks import endpoints

    return json_response(endpoints.list_page(bootstrap.webhooks(), limit, starting_after, _now()))


@_route("get", "/admin/webhook-endpoints/<endpoint_id>", "One webhook endpoint", Endpoint)
def get_endpoint(endpoint_id: Annotated[str, Path(pattern=ENDPOINT_ID)]) -> Response[str]:
    from neruba.logic.webhooks import endpoints

    return json_response(endpoints.get(bootstrap.webhooks(), endpoint_id, _now()))


@_route(
    "post", "/admin/webhook-endpoints/<endpoint_id>", "Change an endpoint's URL, types or state", Endpoint
)
def update_endpoint(
    endpoint_id: Annotated[str, Path(pattern=ENDPOINT_ID)], body: Annotated[EndpointUpdate, Body()]
) -> Response[str]:
    from neruba.logic.webhooks import endpoints

    return json_response(endpoints.update(bootstrap.webhooks(), endpoint_id, body, _actor(), _now()))


@_route("delete", "/admin/webhook-endpoints/<endpoint_id>", "Delete a webhook endpoint", EndpointDeleted)
def delete_endpoint(endpoint_id: Annotated[str, Path(pattern=ENDPOINT_ID)]) -> Response[str]:
    from neruba.logic.webhooks import endpoints

    return json_response(endpoints.delete(bootstrap.webhooks(), endpoint_id, _actor(), _now()))


@_route(
    "post",
    "/admin/webhook-endpoints/<endpoint_id>/rotate-secret",
    "A new signing secret; the current one keeps signing during the overlap",
    Endpoint,
)
def rotate_secret(
    endpoint_id: Annotated[str, Path(pattern=ENDPOINT_ID)],
    body: Annotated[SecretRotation, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    from neruba.logic.webhooks import endpoints

    hooks = bootstrap.webhooks()
    return json_response(endpoints.rotate(hooks, endpoint_id, body, _actor(), _now(), idempotency_key))


@_route("get", "/admin/webhook-events", "A customer's webhook events, newest first", WebhookEventList,
        query=("customer_id", "type", "from", "to", "limit", "starting_after"))  # fmt: skip
def list_events(
    customer_id: Annotated[str, Query(pattern=EVENTS_OF)],
    type_: Annotated[EventType | None, Query(alias="type")] = None,
    from_: Annotated[AwareInstant | None, Query(alias="from")] = None,
    to: Annotated[AwareInstant | None, Query()] = None,
    limit: Limit = 20,
    starting_after: Cursor = None,
) -> Response[str]:
    """``customer_id``'s events (``_global``: the events of no customer) by sequence number, newest
    first, of one ``type`` and created between ``from`` and ``to`` when given (those filters apply after
    the read: a page can come back short, with ``has_more`` and a cursor)."""
    from neruba.logic.webhooks import events

    hooks = bootstrap.webhooks()
    return json_response(events.list_page(hooks, customer_id, type_, from_, to, limit, starting_after))


@_route(
    "get", "/admin/webhook-events/<event_id>", "One event as sent, its deliveries and attempts", EventView
)
def get_event(event_id: Annotated[str, Path(pattern=EVENT_ID)]) -> Response[str]:
    from neruba.logic.webhooks import endpoints

    return json_response(endpoints.event(bootstrap.webhooks(), event_id))


@_route("post", "/admin/webhook-resends", "Send one event, or every delivery failed since a time, again",
        ResendResult)  # fmt: skip
def resend(body: Annotated[ResendRequest, Body()], idempotency_key: IdempotencyKey = None) -> Response[str]:
    from neruba.logic.webhooks import endpoints

    return json_response(endpoints.resend(bootstrap.webhooks(), body, _actor(), _now(), idempotency_key))
