"""Operator money actions (admin scope): grants, voids, adjustments, refunds, disputes, auto top-up,
and the audit trail. Every POST needs an ``Idempotency-Key`` header and a ``reason``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import ADMIN, Cursor, CustomerId, IdempotencyKey, Limit, answer, scoped_responses
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.models.fields import AUDIT_PARTITION_PATTERN
from neruba.models.ledger import (
    AutoTopUpRuleIn,
    BalanceAdjustment,
    DisputeClose,
    DisputeCreate,
    GrantCreate,
    GrantVoid,
    RefundCreate,
)
from neruba.models.views import (
    AuditRecordList,
    AutoTopUp,
    BalanceAdjusted,
    CreditGrant,
    Dispute,
    Refund,
)

if TYPE_CHECKING:
    from neruba.logic.ledger.admin import Operator, Stores

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "admin",
    {
        400: {
            "description": "A rule is broken, e.g. currency_mismatch, idempotency_key_required,"
            " adjustment_direction_invalid, payment_invoice_mismatch"
        },
        404: {
            "description": "No such customer, grant, dispute, invoice or payment (customer_not_found,"
            " invoice_not_found, payment_not_found, ...)"
        },
        409: {
            "description": "idempotency_conflict, the resource changed or is closed, invoice_not_paid,"
            " refund_exceeds_refundable, dispute_exceeds_refundable, cash_would_go_negative"
        },
        422: {"description": "The body does not match the schema (e.g. no reason)"},
    },
)


def _route(method: str, path: str, summary: str, model: Any, status: int = 200) -> Callable[..., Any]:
    """``status``: the success status; a created resource (201) is also the answer to a retry with the same
    Idempotency-Key."""
    text = "Created (also the answer to a retry with the same Idempotency-Key)" if status == 201 else "OK"
    register: Callable[..., Callable[..., Any]] = getattr(router, method)
    return register(
        path,
        summary=summary,
        tags=["ledger admin"],
        security=BEARER_SECURITY,
        middlewares=ADMIN,
        responses={status: answer(model, text), **ERRORS},
    )


def _context(idempotency_key: str | None) -> tuple[Stores, Operator]:
    from neruba.logic.ledger.admin import Operator, Stores
    from neruba.logic.limits.balance import customer_and_watch

    stores = Stores(
        ledger=bootstrap.ledger(),
        audit=bootstrap.audit(),
        customer=bootstrap.catalog().get_customer,
        invoice=bootstrap.invoices().get,
        balance_watch=bootstrap.balance_watches(),  # the void's: no read for a customer without levels
        customer_watch=lambda customer_id: customer_and_watch(bootstrap.catalog(), customer_id),
    )
    return stores, Operator(current_principal(router).actor, request_id_of(router), idempotency_key)


@_route("post", "/admin/customers/<customer_id>/credit-grants", "Grant credits", CreditGrant, 201)
def grant_credits(
    customer_id: CustomerId, body: Annotated[GrantCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    """Purchased credit is paid money held as a liability; promotional credit costs only when spent."""
    from neruba.logic.ledger import admin as ledger_admin

    return json_response(ledger_admin.grant_credits(*_context(idempotency_key), customer_id, body), 201)


@_route("post", "/admin/credit-grants/<grant_id>/void", "Void a grant's unused remainder", CreditGrant)
def void_grant(
    grant_id: Annotated[str, Path(pattern=r"^cg_[0-9a-f]{24}$")],
    body: Annotated[GrantVoid, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    from neruba.logic.ledger import admin as ledger_admin

    return json_response(ledger_admin.void_grant(*_context(idempotency_key), grant_id, body))


@_route(
    "post",
    "/admin/customers/<customer_id>/balance-adjustments",
    "Correct a balance with a reason code",
    BalanceAdjusted,
    201,
)
def adjust_balance(
    customer_id: CustomerId,
    body: Annotated[BalanceAdjustment, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """Positive ``amount_minor`` lowers the amount due, negative raises it. ``goodwill``, ``refund`` and
    ``dispute`` only lower it (a negative amount is 400 ``adjustment_direction_invalid``); ``correction``
    goes both ways."""
    from neruba.logic.ledger import admin as ledger_admin

    return json_response(ledger_admin.adjust(*_context(idempotency_key), customer_id, body), 201)


@_route(
    "post",
    "/admin/customers/<customer_id>/refunds",
    "Record a refund against an invoice or payment",
    Refund,
    201,
)
def create_refund(
    customer_id: CustomerId, body: Annotated[RefundCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    """Only from a paid payment (or paid invoice) of the customer, in its currency, never more than is
    still refundable (paid - refunded - disputed)."""
    from neruba.logic.ledger import admin as ledger_admin

    return json_response(ledger_admin.refund(*_context(idempotency_key), customer_id, body), 201)


@_route(
    "post",
    "/admin/customers/<customer_id>/disputes",
    "Record a dispute against an invoice or payment",
    Dispute,
    201,
)
def create_dispute(
    customer_id: CustomerId, body: Annotated[DisputeCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    from neruba.logic.ledger import admin as ledger_admin

    return json_response(ledger_admin.open_dispute(*_context(idempotency_key), customer_id, body), 201)


@_route("post", "/admin/disputes/<dispute_id>/close", "Close a dispute (won or lost)", Dispute)
def close_dispute(
    dispute_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,128}$")],
    body: Annotated[DisputeClose, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """Idempotent by dispute: closing again with the same outcome returns the closed dispute; another
    outcome is 409 ``dispute_closed``."""
    from neruba.logic.ledger import admin as ledger_admin

    return json_response(ledger_admin.close_dispute(*_context(idempotency_key), dispute_id, body))


@_route("put", "/admin/customers/<customer_id>/auto-top-up", "Set the auto top-up rule", AutoTopUp)
def put_auto_top_up(customer_id: CustomerId, body: Annotated[AutoTopUpRuleIn, Body()]) -> Response[str]:
    from neruba.logic.ledger import admin as ledger_admin

    return json_response(ledger_admin.put_auto_top_up(*_context(None), customer_id, body))


@_route("get", "/admin/audit", "Audit records of a customer, newest first", AuditRecordList)
def list_audit(
    customer_id: Annotated[str, Query(pattern=AUDIT_PARTITION_PATTERN)],
    limit: Limit = 20,
    starting_after: Cursor = None,
) -> Response[str]:
    from neruba.logic.ledger.reads import audit_records

    return json_response(audit_records(customer_id, limit, starting_after))
