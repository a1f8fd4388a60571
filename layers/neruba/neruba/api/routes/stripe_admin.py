"""Operator routes on Stripe events (admin scope): list, inspect, replay (audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import ADMIN, IdempotencyKey, Limit, answer, scoped_responses
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.models.fields import AwareInstant
from neruba.models.stripe import EVENT_ID_PATTERN, EventStatus, ReplayRequest
from neruba.models.views import StripeEvent, StripeEventList, StripeReplay

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "admin",
    {
        400: {"description": "A parameter breaks a rule (see error.code)"},
        404: {"description": "No such Stripe event"},
        409: {"description": "Idempotency-Key reused with another body"},
        422: {"description": "A parameter or the body is invalid"},
    },
)
EventId = Annotated[str, Path(pattern=EVENT_ID_PATTERN)]


@router.get(
    "/admin/stripe-events",
    summary="List stored Stripe events",
    tags=["stripe"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={200: answer(StripeEventList, "OK"), **ERRORS},
)
def list_stripe_events(
    type_: Annotated[str | None, Query(alias="type", min_length=1, max_length=100)] = None,
    status: Annotated[EventStatus | None, Query()] = None,
    from_: Annotated[AwareInstant | None, Query(alias="from")] = None,
    to: Annotated[AwareInstant | None, Query()] = None,
    limit: Limit = 20,
    starting_after: Annotated[str | None, Query(pattern=EVENT_ID_PATTERN)] = None,
) -> Response[str]:
    """Events created between ``from`` and ``to`` (default: the last 90 days), newest first, filtered by
    ``type`` and ``status`` (received, processed, ignored, failed, deferred)."""
    from neruba.logic.stripe.admin import list_events

    start: datetime | None = from_
    return json_response(
        list_events(
            bootstrap.stripe_events(),
            event_type=type_,
            status=status,
            start=start,
            end=to,
            limit=limit,
            starting_after=starting_after,
        )
    )


@router.get(
    "/admin/stripe-events/<event_id>",
    summary="Retrieve a stored Stripe event with its payload and processing history",
    tags=["stripe"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={200: answer(StripeEvent, "OK"), **ERRORS},
)
def get_stripe_event(event_id: EventId) -> Response[str]:
    from neruba.logic.stripe.admin import get_event

    return json_response(get_event(bootstrap.stripe_events(), event_id))


@router.post(
    "/admin/stripe-events/<event_id>/replay",
    summary="Process a stored Stripe event again (audited; effects are idempotent)",
    tags=["stripe"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={200: answer(StripeReplay, "The replay's outcome"), **ERRORS},
)
def replay_stripe_event(
    event_id: EventId,
    body: Annotated[ReplayRequest, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """Runs the processing now and answers with its outcome. Replaying an event that was already processed
    posts nothing new (every posting is keyed by Stripe ids); a deferred event is processed if what it
    waits for has arrived. An audit record names the caller, the reason and the status before and after."""
    from neruba.logic.stripe.admin import replay

    return json_response(
        replay(
            bootstrap.stripe_events(),
            bootstrap.stripe_processor(),
            event_id,
            actor=current_principal(router).actor,
            reason=body.reason,
            ticket=body.ticket,
            request_id=request_id_of(router),
            idempotency_key=idempotency_key,
        )
    )
