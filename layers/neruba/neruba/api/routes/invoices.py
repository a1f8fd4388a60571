"""Invoice reads (read scope): list per customer, one invoice with its lines, and its explanation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import READ, Cursor, Limit, answer, only_query, scoped_responses
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY
from neruba.models.fields import EXTERNAL_ID_PATTERN, Instant
from neruba.models.views import (
    CreditNote,
    CreditNoteExplanation,
    CreditNoteList,
    Invoice,
    InvoiceCompleteness,
    InvoiceExplanation,
    InvoiceList,
)

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "read",
    {
        400: {"description": "Bad cursor (invalid_cursor)"},
        404: {"description": "No such invoice (invoice_not_found)"},
        422: {"description": "A parameter is invalid"},
    },
)
INVOICE_ID = r"^in_[0-9a-f]{24}$"
CREDIT_NOTE_ID = r"^cn_[0-9a-f]{24}$"
Status = Literal["draft", "finalized", "paid", "payment_failed", "void"]


def _read_route(path: str, summary: str, model: Any) -> Callable[..., Any]:
    return router.get(
        path,
        summary=summary,
        tags=["invoices"],
        security=BEARER_SECURITY,
        middlewares=READ,
        responses={200: answer(model, "OK"), **ERRORS},
    )


@router.get(
    "/v1/invoices",
    summary="List invoices, of a customer or of one status across customers",
    tags=["invoices"],
    security=BEARER_SECURITY,
    middlewares=[
        *READ,
        only_query("customer_id", "status", "period_from", "period_to", "limit", "starting_after"),
    ],
    responses={
        200: answer(InvoiceList, "Invoices, newest period first"),
        **scoped_responses(
            "read",
            {
                400: {
                    "description": "Neither customer_id nor status (filter_required), period bounds without "
                    "an offset or not in order (invalid_time_range), a cursor this list did not return for "
                    "these filters (invalid_cursor), a parameter the route does not take (unknown_parameter)"
                },
                422: {"description": "A parameter is invalid"},
            },
        ),
    },
)
def list_invoices(
    customer_id: Annotated[str | None, Query(pattern=EXTERNAL_ID_PATTERN)] = None,
    status: Annotated[Status | None, Query()] = None,
    period_from: Annotated[Instant | None, Query()] = None,
    period_to: Annotated[Instant | None, Query()] = None,
    limit: Limit = 20,
    starting_after: Cursor = None,
) -> Response[str]:
    """A customer's invoices (optionally of one status), or every customer's invoices of one status;
    ``period_from``/``period_to`` keep the invoices whose period starts in [from, to)."""
    from neruba.logic.billing import invoices
    from neruba.observability import logger

    if customer_id:
        logger.append_keys(customer_id=customer_id)
    return json_response(
        invoices.list_invoices(
            bootstrap.invoices(), customer_id, status, limit, starting_after, period=(period_from, period_to)
        )
    )


@_read_route("/v1/invoices/<invoice_id>", "Retrieve an invoice with its lines", Invoice)
def get_invoice(invoice_id: Annotated[str, Path(pattern=INVOICE_ID)]) -> Response[str]:
    from neruba.logic.billing import invoices
    from neruba.observability import logger

    logger.append_keys(invoice_id=invoice_id)
    return json_response(invoices.public(invoices.get_invoice(bootstrap.invoices(), invoice_id)))


@_read_route("/v1/invoices/<invoice_id>/explain", "Explain each line of an invoice", InvoiceExplanation)
def explain_invoice(invoice_id: Annotated[str, Path(pattern=INVOICE_ID)]) -> Response[str]:
    """For each line: the meter, the aggregate, the hours and events behind it, the price version and
    tiers, the credits applied; adjustment lines reference the invoice and line they correct, and cite the
    events voided or amended in the corrected period; each line names the credit notes that took it back
    (with the correction each settled) and the ledger postings that book it."""
    from neruba.logic.billing import explain_links
    from neruba.observability import logger

    logger.append_keys(invoice_id=invoice_id)
    voided = bootstrap.voids().voided_between
    return json_response(explain_links.explain_invoice(bootstrap.billing(), invoice_id, voided))


@_read_route("/v1/invoices/<invoice_id>/credit-notes", "List an invoice's credit notes", CreditNoteList)
def list_credit_notes(invoice_id: Annotated[str, Path(pattern=INVOICE_ID)]) -> Response[str]:
    from neruba.logic.billing import credit_notes

    return json_response(credit_notes.list_for_invoice(bootstrap.billing(), invoice_id))


@_read_route("/v1/credit-notes/<credit_note_id>", "Retrieve a credit note", CreditNote)
def get_credit_note(credit_note_id: Annotated[str, Path(pattern=CREDIT_NOTE_ID)]) -> Response[str]:
    from neruba.logic.billing import credit_notes

    return json_response(credit_notes.get_credit_note(bootstrap.billing(), credit_note_id))


@_read_route(
    "/v1/credit-notes/<credit_note_id>/explain",
    "Explain a credit note: the lines it credits and its ledger entries",
    CreditNoteExplanation,
)
def explain_credit_note(credit_note_id: Annotated[str, Path(pattern=CREDIT_NOTE_ID)]) -> Response[str]:
    from neruba.logic.billing import credit_notes

    return json_response(
        credit_notes.explain(bootstrap.billing(), credit_note_id, bootstrap.voids().voided_between)
    )


@_read_route(
    "/v1/invoices/<invoice_id>/completeness",
    "Which hours were complete at finalization, and the late events applied since",
    InvoiceCompleteness,
)
def invoice_completeness(invoice_id: Annotated[str, Path(pattern=INVOICE_ID)]) -> Response[str]:
    """Hours of the window closed for late events when the invoice was finalized (and those still open,
    until ``closes_at``); each late difference recorded since, with the invoice that billed it."""
    from neruba.logic.billing.completeness import completeness

    return json_response(completeness(bootstrap.billing(), invoice_id))
