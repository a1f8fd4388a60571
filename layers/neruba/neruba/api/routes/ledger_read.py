"""Balances, the ledger and credit grants of a customer (read scope)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba.api.params import READ, Cursor, CustomerId, Limit, answer, scoped_responses
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY
from neruba.models.views import Balance, CreditGrantList, PostingList

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "read",
    {
        400: {"description": "Bad cursor (invalid_cursor)"},
        404: {"description": "No such customer"},
        422: {"description": "A parameter is invalid"},
    },
)


def _route(path: str, summary: str, model: Any) -> Callable[..., Any]:
    return router.get(
        path,
        summary=summary,
        tags=["ledger"],
        security=BEARER_SECURITY,
        middlewares=READ,
        responses={200: answer(model, "OK"), **ERRORS},
    )


@_route(
    "/v1/customers/<customer_id>/balance", "A customer's balance: amount due, credit, paid to date", Balance
)
def get_balance(customer_id: CustomerId) -> Response[str]:
    """Derived from the ledger: ``amount_due_minor`` (receivable; negative when overpaid),
    ``credit_available_minor`` and ``credit_available_by_grant`` (prepaid credit usable now: never credit
    past its ``expires_at``), ``credit_expired_unposted_minor`` (expired credit the expiry job has not
    posted yet), ``paid_to_date_minor`` (cash received net of refunds and disputed funds)."""
    from neruba.logic.ledger.reads import balance

    return json_response(balance(customer_id))


@_route("/v1/customers/<customer_id>/ledger", "A customer's ledger postings, newest first", PostingList)
def list_postings(customer_id: CustomerId, limit: Limit = 20, starting_after: Cursor = None) -> Response[str]:
    """Each posting with its entries, reason, source (invoice, payment, grant, operator, stripe, expiry),
    source id and actor."""
    from neruba.logic.ledger.reads import postings

    return json_response(postings(customer_id, limit, starting_after))


@_route("/v1/customers/<customer_id>/credit-grants", "A customer's credit grants", CreditGrantList)
def list_grants(customer_id: CustomerId, limit: Limit = 20, starting_after: Cursor = None) -> Response[str]:
    """Oldest effective first, a page at a time."""
    from neruba.logic.ledger.reads import grants

    return json_response(grants(customer_id, limit, starting_after))
