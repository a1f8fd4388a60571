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
from neruba.models.fields import CODE_PATTERN, EXTERNAL_ID_PATTERN
from neruba.models.limits import EntitlementGrant, EntitlementGrantIn, UsageLimits, UsageLimitsIn

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


GRANT_ERRORS = scoped_responses(
    "admin",
    {
        400: {
            "description": "The feature is not metered (feature_not_metered), the expiry is not after now "
            "(invalid_expiry), or the Idempotency-Key is missing (idempotency_key_required)"
        },
        404: {"description": "No such customer (customer_not_found) or feature (feature_not_found)"},
        409: {"description": "idempotency_conflict, or the grants kept changing (limits_conflict)"},
        422: {"description": "The body does not match the schema"},
    },
)


@router.post(
    "/v1/customers/<customer_id>/entitlements/<feature>/grants",
    summary="Raise a metered entitlement's limit",
    tags=["limits"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={201: answer(EntitlementGrant, "The grant, with the entitlement as it stands"), **GRANT_ERRORS},
)
def grant_entitlement(
    customer_id: Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)],
    feature: Annotated[str, Path(pattern=CODE_PATTERN)],
    body: Annotated[EntitlementGrantIn, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """Add ``amount`` to a metered feature's limit until ``expires_at`` (default: the current period's
    end); docs/limits.md, "Entitlement grants". Needs an Idempotency-Key; audited."""
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.grants import grant

    by = Actor(current_principal(router).actor, request_id_of(router))
    return json_response(grant(customer_id, feature, body, idempotency_key, by), status=201)
