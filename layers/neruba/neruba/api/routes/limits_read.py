"""A customer's usage limits and entitlements (read scope)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba.api.params import READ, answer, scoped_responses
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY
from neruba.models.fields import CODE_PATTERN, EXTERNAL_ID_PATTERN
from neruba.models.limits import Entitlement, EntitlementList, UsageLimits

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "read",
    {
        404: {"description": "No such customer or feature (customer_not_found, feature_not_found)"},
        422: {"description": "A parameter is invalid"},
    },
)
CustomerId = Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)]


def _get(path: str, summary: str, model: type) -> Callable[..., Any]:
    return router.get(
        path,
        summary=summary,
        tags=["limits"],
        security=BEARER_SECURITY,
        middlewares=READ,
        responses={200: answer(model, "OK"), **ERRORS},
    )


@_get("/v1/customers/<customer_id>/limits", "A customer's usage limits and current usage", UsageLimits)
def get_limits(customer_id: CustomerId) -> Response[str]:
    from neruba.logic.limits.settings import get_limits as fetch

    return json_response(fetch(customer_id))


@_get("/v1/customers/<customer_id>/entitlements", "A customer's entitlements", EntitlementList)
def list_entitlements(customer_id: CustomerId) -> Response[str]:
    """Every feature: access, usage, limit, remaining and reset time (at most two DynamoDB reads)."""
    from neruba.logic.limits.entitlements import entitlements

    return json_response(entitlements(customer_id))


@_get("/v1/customers/<customer_id>/entitlements/<feature>", "Check one entitlement", Entitlement)
def get_entitlement(
    customer_id: CustomerId, feature: Annotated[str, Path(pattern=CODE_PATTERN)]
) -> Response[str]:
    """May the customer use ``feature`` now (at most two DynamoDB reads)."""
    from neruba.logic.limits.entitlements import entitlement

    return json_response(entitlement(customer_id, feature))
