"""Backfills (admin scope): open, hold events, preview, commit, cancel, revert, read (docs/billing.md,
"Backfills")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import ADMIN, IdempotencyKey, answer, scoped_responses
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.models.backfills import (
    BackfillAction,
    BackfillCreate,
    BackfillEventsResult,
    BackfillList,
    BackfillPreview,
    BackfillView,
)
from neruba.models.events import IngestRequest

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "admin",
    {
        400: {"description": "A rule is broken (see error.code)"},
        404: {"description": "No such backfill, customer or meter"},
        409: {
            "description": "The backfill is not in a state that allows this, or the Idempotency-Key was used "
            "for another request"
        },
        422: {"description": "The body does not match the schema"},
    },
)
BACKFILL_ID = r"^bf_[0-9a-f]{24}$"
BackfillId = Annotated[str, Path(pattern=BACKFILL_ID)]


def _route(method: str, path: str, summary: str, model: Any, status: int = 200) -> Callable[..., Any]:
    register: Callable[..., Callable[..., Any]] = getattr(router, method)
    responses = {status: answer(model, "Created" if status == 201 else "OK"), **ERRORS}
    return register(
        path,
        summary=summary,
        tags=["backfills"],
        security=BEARER_SECURITY,
        middlewares=ADMIN,
        responses=responses,
    )


@_route("post", "/admin/backfills", "Open a backfill", BackfillView, 201)
def open_backfill(
    body: Annotated[BackfillCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    """Needs an Idempotency-Key. Customers, meters and a range up to 400 days back, not in the future."""
    from neruba.logic.billing import backfills

    actor = current_principal(router).actor
    doc = backfills.open_backfill(bootstrap.billing(), body, actor, idempotency_key, request_id_of(router))
    return json_response(doc, status=201)


@_route("get", "/admin/backfills", "List backfills (oldest first)", BackfillList)
def list_backfills(
    status: Annotated[
        Literal["open", "committing", "committed", "reverting", "reverted", "cancelled"] | None, Query()
    ] = None,
) -> Response[str]:
    from neruba.logic.billing import backfills

    return json_response(backfills.list_backfills(bootstrap.billing(), status))


@_route("get", "/admin/backfills/<backfill_id>", "Read a backfill", BackfillView)
def get_backfill(backfill_id: BackfillId) -> Response[str]:
    from neruba.logic.billing import backfills

    return json_response(backfills.get_backfill(bootstrap.billing(), backfill_id).document)


@_route(
    "post", "/admin/backfills/<backfill_id>/events", "Send events into an open backfill", BackfillEventsResult
)
def send_backfill_events(backfill_id: BackfillId, body: Annotated[IngestRequest, Body()]) -> Response[str]:
    """The body of ``POST /v1/events``, validated the same way, and inside the backfill's customers,
    meters and range. Held apart until the commit; each transaction_id is held once."""
    from neruba.logic import idempotency
    from neruba.logic.billing import backfills

    by = idempotency.Actor(current_principal(router).actor, request_id_of(router))
    result = backfills.hold_events(bootstrap.billing(), backfill_id, list(body.events), by=by)
    statuses = [{**s, "error": s["error"].model_dump() if s["error"] else None} for s in result["events"]]
    return json_response({**result, "events": statuses})


@_route("get", "/admin/backfills/<backfill_id>/preview", "Preview what a backfill changes", BackfillPreview)
def preview_backfill(backfill_id: BackfillId) -> Response[str]:
    """Per invoice whose window holds a held event: the amount billed now and after the commit."""
    from neruba.logic.billing import backfill_preview

    return json_response(backfill_preview.preview(bootstrap.billing(), backfill_id))


@_route("post", "/admin/backfills/<backfill_id>/commit", "Commit a backfill", BackfillView)
def commit_backfill(
    backfill_id: BackfillId, body: Annotated[BackfillAction, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    """Needs an Idempotency-Key. Counts the held events once and corrects the invoices they change. The
    answer's status is ``committed``, or ``committing`` when a step is left: send the commit again."""
    from neruba.logic.billing import backfill_commit

    actor = current_principal(router).actor
    doc = backfill_commit.commit_backfill(
        bootstrap.billing(), backfill_id, body, actor, idempotency_key, request_id_of(router)
    )
    return json_response(doc)


@_route("post", "/admin/backfills/<backfill_id>/cancel", "Cancel an open backfill", BackfillView)
def cancel_backfill(
    backfill_id: BackfillId, body: Annotated[BackfillAction, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    """Needs an Idempotency-Key. Its held events are never counted."""
    from neruba.logic.billing import backfills

    actor = current_principal(router).actor
    doc = backfills.cancel_backfill(
        bootstrap.billing(), backfill_id, body, actor, idempotency_key, request_id_of(router)
    )
    return json_response(doc)


@_route("post", "/admin/backfills/<backfill_id>/revert", "Revert a committed backfill", BackfillView)
def revert_backfill(
    backfill_id: BackfillId, body: Annotated[BackfillAction, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    """Needs an Idempotency-Key. Voids the events the commit counted, gives back those a replace voided,
    and corrects the invoices it corrected, whatever their age. The answer's status is ``reverted``, or
    ``reverting`` when a step is left: send it again."""
    from neruba.logic.billing import backfill_revert

    actor = current_principal(router).actor
    doc = backfill_revert.revert_backfill(
        bootstrap.billing(), backfill_id, body, actor, idempotency_key, request_id_of(router)
    )
    return json_response(doc)
