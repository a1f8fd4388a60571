"""Voiding and amending accepted events (admin scope), audited as ``event.void`` / ``event.amend``; an
``Idempotency-Key`` is required and makes a retry return the first answer (and finish the correction)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba.api.params import ADMIN, IdempotencyKey, answer, scoped_responses
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.models.events import EventAmendIn, EventVoidIn
from neruba.models.views import EventVoidResult

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "admin",
    {
        400: {
            "description": "idempotency_key_required; an amend's corrected event breaks an ingest rule (the "
            "codes of POST /v1/events: timestamp_too_old, missing_property, ...) or changes nothing "
            "(amend_changes_nothing)"
        },
        404: {"description": "No such event (event_not_found)"},
        409: {
            "description": "event_already_voided, event_not_accepted, event_not_counted_yet, "
            "event_billed_in_advance, event_too_old_to_void, event_void_amount_limits, event_void_conflict, "
            "idempotency_conflict"
        },
        422: {"description": "The body does not match the schema"},
    },
)
TransactionId = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")]


def _route(path: str, summary: str) -> Callable[..., Any]:
    return router.post(
        path,
        summary=summary,
        tags=["events"],
        security=BEARER_SECURITY,
        middlewares=ADMIN,
        responses={200: answer(EventVoidResult, "The voided event"), **ERRORS},
    )


@_route("/admin/events/<transaction_id>/void", "Void an accepted event")
def void_event(
    transaction_id: TransactionId,
    body: Annotated[EventVoidIn, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """Its usage stops counting (every aggregation recomputed from the surviving events); an invoiced
    period is corrected on the next invoice, or by a correction invoice or credit note after the end
    (docs/billing.md, "Voiding and amending events")."""
    from neruba.logic.ingest.voids import VoidRequest
    from neruba.logic.ingest.voids import void_event as void

    request = VoidRequest(body.customer_id, transaction_id, body.reason, body.ticket)
    actor = current_principal(router).actor
    return json_response(void(request, actor, idempotency_key, request_id_of(router)))


@_route("/admin/events/<transaction_id>/amend", "Amend an accepted event (void it, count a corrected copy)")
def amend_event(
    transaction_id: TransactionId,
    body: Annotated[EventAmendIn, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """The event is voided and a corrected copy (other properties or timestamp) is counted in its place,
    in one action; the copy's ``amends`` names the original, whose ``void.amended_by`` names the copy."""
    from neruba.logic.ingest.voids import VoidRequest
    from neruba.logic.ingest.voids import void_event as void

    request = VoidRequest(
        body.customer_id,
        transaction_id,
        body.reason,
        body.ticket,
        properties=body.properties,
        timestamp=body.timestamp,
        amend=True,
    )
    actor = current_principal(router).actor
    return json_response(void(request, actor, idempotency_key, request_id_of(router)))
