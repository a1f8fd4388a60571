"""Usage limits of a customer (admin scope): hard caps, soft caps, alerts and entitlements, audited as
``customer.limits``; an ``Idempotency-Key`` makes a retry return the first answer."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba.api.params import ADMIN, IdempotencyKey, answer, scoped_responses
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.models.fields import EXTERNAL_ID_PATTERN
from neruba.models.limits import UsageLimits, UsageLimitsIn

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "admin",
    {
        400: {
            "description": "A rule of the limits is broken (meter_not_found, limit_aggregation_unsupported,"
            " duplicate_meter, duplicate_alert, duplicate_feature, limit_empty, soft_cap_above_hard_cap,"
            " amount_limit_unsupported)"
        },
        404: {"description": "No such customer (customer_not_found)"},
        409: {"description": "idempotency_conflict, or the limits kept changing (limits_conflict)"},
        422: {"description": "The body does not match the schema"},
    },
)


@router.put(
    "/v1/customers/<customer_id>/limits",
    summary="Set a customer's usage limits",
    tags=["limits"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={200: answer(UsageLimits, "The limits as set, with the current period's usage"), **ERRORS},
)
def put_limits(
    customer_id: Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)],
    body: Annotated[UsageLimitsIn, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """Replace every usage limit of the customer (docs/limits.md, "Usage caps and alerts"). The worker
    applies them from its next batch; usage counted before stays counted."""
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits as put

    by = Actor(current_principal(router).actor, request_id_of(router))
    return json_response(put(customer_id, body, idempotency_key, by))
