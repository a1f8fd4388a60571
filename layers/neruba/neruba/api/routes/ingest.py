"""``POST /v1/events`` (ingest scope)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import answer, errors_only
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, require_scope
from neruba.errors import InvalidRequestError
from neruba.models.events import IngestRequest, IngestResponse
from neruba.observability import metrics
from neruba.settings import get_settings

if TYPE_CHECKING:
    from neruba.models.catalog import Customer, Meter

router = APIGatewayRouter()


def _catalog(customer_ids: set[str], codes: set[str]) -> tuple[Mapping[str, Customer], Mapping[str, Meter]]:
    """The known customers and meters among these, from the container's catalog cache (found entries are
    kept 60 s; a missing one is read again on every request, so it is seen as soon as it is created)."""
    found = bootstrap.ingest_api_catalog().lookup(customer_ids, codes)
    return found.customers, found.meters


@router.post(
    "/v1/events",
    summary="Send usage events",
    tags=["events"],
    security=BEARER_SECURITY,
    middlewares=[require_scope("ingest")],
    responses={
        202: answer(IngestResponse, "Each event queued or rejected, in request order"),
        **errors_only(
            {
                400: "Every event was rejected (all_events_rejected, details per event), or the body is not "
                "JSON (invalid_json) or names a key twice (duplicate_key)",
                401: "Missing or unknown API key (unauthorized)",
                403: "The key lacks the ingest scope (insufficient_scope)",
                413: "The body is over 256 KiB (payload_too_large)",
                415: "The body is declared as another media type than JSON (unsupported_media_type)",
                422: "The body is not {events: [1..100 objects]} (validation_error)",
                500: "Something went wrong on our side (internal_error); quote the request_id",
            }
        ),
    },
)
def send_events(body: Annotated[IngestRequest, Body()]) -> Response[str]:
    """Validate each event on its own and queue the valid ones; the answer lists every event's status.

    Outcomes (accepted, duplicate, conflict, replay, failed) are decided by the ingest worker and can be
    read at ``GET /v1/events/{transaction_id}``.
    """
    from neruba.dal.queue import send_batch
    from neruba.logic.ingest.api import accept_events

    settings = get_settings()
    request_id = request_id_of(router) or "unknown"
    result = accept_events(
        body.events,
        request_id=request_id,
        send=lambda messages: send_batch(settings.ingest_queue_url, messages),
        max_age_days=settings.ingest_max_age_days,
        max_future_seconds=settings.ingest_max_future_seconds,
        catalog=_catalog,
    )
    metrics.add_metric(name="IngestEventsQueued", unit="Count", value=result.queued)
    metrics.add_metric(name="IngestEventsRejected", unit="Count", value=result.rejected)
    if result.queued == 0:
        details = [
            {"param": s.error.param, "code": s.error.code, "message": s.error.message}
            for s in result.events
            if s.error is not None
        ]
        raise InvalidRequestError(
            "No event was queued; see details.", code="all_events_rejected", details=details
        )
    return json_response(result.model_dump(mode="json"), status=202)
