"""Billing operations (admin scope): billing runs and invoice reruns, audited and idempotent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import ADMIN, Cursor, CustomerId, IdempotencyKey, Limit, answer, scoped_responses
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.models.billing import (
    BillingRunRequest,
    CreditNoteCreate,
    InvoiceVoid,
    OneOffChargeCreate,
    OneOffChargeVoid,
    RerunRequest,
)
from neruba.models.views import (
    BillingRun,
    BillingRunList,
    CreditNote,
    InvoiceRerun,
    InvoiceVoidResult,
    OneOffCharge,
    OneOffChargeList,
)

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "admin",
    {
        400: {"description": "A rule is broken (see error.code)"},
        404: {"description": "No such run, invoice or customer"},
        409: {
            "description": "Another run holds the lock, the Idempotency-Key was used for another request, "
            "or the state refuses it (a one-off charge void or invoiced already)"
        },
        422: {"description": "The body does not match the schema"},
    },
)
RUN_ID = r"^run_[0-9a-f]{20}$"
INVOICE_ID = r"^in_[0-9a-f]{24}$"
CHARGE_ID = r"^ooc_[0-9a-f]{24}$"


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


@_route("get", "/admin/billing-runs", "List billing runs (newest first)", BillingRunList)
def list_runs(
    limit: Limit = 20,
    starting_after: Cursor = None,
) -> Response[str]:
    runs, cursor = bootstrap.billing().billing.runs(limit, starting_after)
    return json_response(
        {
            "object": "list",
            "data": [run.document for run in runs],
            "has_more": cursor is not None,
            "next_cursor": cursor,
        }
    )


@_route("get", "/admin/billing-runs/<run_id>", "Retrieve a billing run", BillingRun)
def get_run(run_id: Annotated[str, Path(pattern=RUN_ID)]) -> Response[str]:
    from neruba.errors import NotFoundError

    run = bootstrap.billing().billing.run(run_id)
    if run is None:
        raise NotFoundError(f"No billing run {run_id!r}.", code="billing_run_not_found", param="run_id")
    return json_response(run.document)


@_route(
    "post",
    "/admin/billing-runs",
    "Run billing now (all due windows, one customer, or as of a time)",
    BillingRun,
    201,
)
def create_run(
    body: Annotated[BillingRunRequest, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    from neruba.logic.billing import admin as invoices
    from neruba.observability import logger

    if body.customer_id:
        logger.append_keys(customer_id=body.customer_id)
    actor = current_principal(router).actor
    run = invoices.trigger_run(bootstrap.billing(), body, actor, idempotency_key, request_id_of(router))
    return json_response(run, status=201)


@_route(
    "post",
    "/admin/invoices/<invoice_id>/rerun",
    "Recompute a draft, or correct a finalized invoice",
    InvoiceRerun,
)
def rerun_invoice(
    invoice_id: Annotated[str, Path(pattern=INVOICE_ID)],
    body: Annotated[RerunRequest, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """A draft is recomputed in place; a finalized invoice is never edited: the difference becomes
    adjustment lines on the subscription's next invoice."""
    from neruba.logic.billing import admin as invoices
    from neruba.observability import logger

    logger.append_keys(invoice_id=invoice_id)
    actor = current_principal(router).actor
    result = invoices.rerun_invoice(
        bootstrap.billing(), invoice_id, body, actor, idempotency_key, request_id_of(router)
    )
    return json_response(result)


@_route(
    "post",
    "/admin/customers/<customer_id>/one-off-charges",
    "Add a one-off charge (invoiced now, or on the next invoice)",
    OneOffCharge,
    201,
)
def create_one_off_charge(
    customer_id: CustomerId,
    body: Annotated[OneOffChargeCreate, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """Needs an Idempotency-Key. ``invoice_now`` issues an invoice of its own at once; ``next_invoice``
    leaves the charge pending until the next invoice of one of the customer's subscriptions carries it."""
    from neruba.logic.billing import one_off
    from neruba.observability import logger

    logger.append_keys(customer_id=customer_id)
    actor = current_principal(router).actor
    charge = one_off.create_charge(
        bootstrap.billing(), customer_id, body, actor, idempotency_key, request_id_of(router)
    )
    return json_response(charge, status=201)


@_route(
    "get",
    "/admin/customers/<customer_id>/one-off-charges",
    "List a customer's one-off charges",
    OneOffChargeList,
)
def list_one_off_charges(
    customer_id: CustomerId,
    status: Annotated[Literal["pending", "invoiced", "void"] | None, Query()] = None,
) -> Response[str]:
    from neruba.logic.billing import one_off

    return json_response(one_off.list_charges(bootstrap.billing(), customer_id, status))


@_route(
    "post",
    "/admin/customers/<customer_id>/one-off-charges/<charge_id>/void",
    "Void a pending one-off charge",
    OneOffCharge,
)
def void_one_off_charge(
    customer_id: CustomerId,
    charge_id: Annotated[str, Path(pattern=CHARGE_ID)],
    body: Annotated[OneOffChargeVoid, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """Only before an invoice carries it; an invoiced charge is corrected by a credit note."""
    from neruba.logic.billing import one_off

    actor = current_principal(router).actor
    charge = one_off.void_charge(
        bootstrap.billing(), customer_id, charge_id, body, actor, idempotency_key, request_id_of(router)
    )
    return json_response(charge)


@_route("post", "/admin/invoices/<invoice_id>/credit-notes", "Credit a finalized invoice", CreditNote, 201)
def create_credit_note(
    invoice_id: Annotated[str, Path(pattern=INVOICE_ID)],
    body: Annotated[CreditNoteCreate, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """Needs an Idempotency-Key. Whole invoice (no lines) or by line, never more than what is still
    creditable after earlier credit notes, refunds and disputes; numbered CN-."""
    from neruba.logic.billing import credit_notes
    from neruba.observability import logger

    logger.append_keys(invoice_id=invoice_id)
    actor = current_principal(router).actor
    note = credit_notes.create_credit_note(
        bootstrap.billing(), invoice_id, body, actor, idempotency_key, request_id_of(router)
    )
    return json_response(note, status=201)


@_route(
    "post",
    "/admin/invoices/<invoice_id>/void",
    "Void an unpaid invoice and issue its replacement",
    InvoiceVoidResult,
)
def void_invoice(
    invoice_id: Annotated[str, Path(pattern=INVOICE_ID)],
    body: Annotated[InvoiceVoid, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """Needs an Idempotency-Key. A finalized invoice that received nothing and has no credit note; the
    replacement has a new number and the same lines, or lines rated again from the usage stored now."""
    from neruba.logic.billing import void
    from neruba.observability import logger

    logger.append_keys(invoice_id=invoice_id)
    actor = current_principal(router).actor
    result = void.void_invoice(
        bootstrap.billing(), invoice_id, body, actor, idempotency_key, request_id_of(router)
    )
    return json_response(result)
