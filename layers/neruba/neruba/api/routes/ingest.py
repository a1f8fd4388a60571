"""``POST /v1/events`` (ingest scope)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, require_scope
from neruba.errors import InvalidRequestError
from neruba.models.events import IngestRequest, IngestResponse
from neruba.observability import metrics
from neruba.settings import get_settings

if TYPE_CHECKING:
    from neruba.models.catalog import Meter

router = APIGatewayRouter()


def _meters(codes: set[str]) -> Mapping[str, Meter]:
    """The known meters among ``codes``, from the process's catalog cache (meters change rarely; 60 s
    TTL, as the worker's)."""
    meters = bootstrap.ingest_api_catalog().lookup(set(), codes).meters
    return {code: meters[code] for code in codes if code in meters}


@router.post(
    "/v1/events",
    summary="Send usage events",
    tags=["events"],
    security=BEARER_SECURITY,
    middlewares=[require_scope("ingest")],
    responses={
        202: {
            "description": "Each event queued or rejected",
            "content": {"application/json": {"model": IngestResponse}},
        },
        400: {
            "description": "Every event was rejected (details per event), or the body is not JSON or names a "
            "key twice"
        },
        401: {"description": "Missing or unknown API key"},
        403: {"description": "The key lacks the ingest scope"},
        413: {"description": "The body is over 256 KiB"},
        415: {"description": "The body is declared as another media type than JSON"},
        422: {"description": "The body is not {events: [1..100 objects]}"},
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
        meters=_meters,
    )
    metrics.add_metric(name="IngestEventsQueued", unit="Count", value=result.queued)
    metrics.add_metric(name="IngestEventsRejected", unit="Count", value=result.rejected)
    if result.queued == 0:
        details = [
            {
                "param": f"events.{s.index}" + (f".{s.error.param}" if s.error.param else ""),
                "code": s.error.code,
                "message": s.error.message,
            }
            for s in result.events
            if s.error is not None
        ]
        raise InvalidRequestError(
            "No event was queued; see details.", code="all_events_rejected", details=details
        )
    return json_response(result.model_dump(mode="json"), status=202)
