"""Reading usage (read scope): a stored event, outcome counts, aggregated usage."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import READ, answer, errors_only, scoped_responses
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY
from neruba.models.fields import CODE_PATTERN, EXTERNAL_ID_PATTERN, Instant
from neruba.models.views import OutcomeCounts, StoredEvent, Usage

router = APIGatewayRouter()
ERRORS = scoped_responses(
    "read",
    {
        422: {"description": "A parameter is invalid"},
    },
)


@router.get(
    "/v1/events/<transaction_id>",
    summary="Retrieve an event and its outcomes",
    tags=["events"],
    security=BEARER_SECURITY,
    middlewares=READ,
    responses={
        200: answer(StoredEvent, "The stored event"),
        **ERRORS,
        **errors_only({404: "No such event (event_not_found)"}),
    },
)
def get_event(
    transaction_id: Annotated[str, Path(min_length=1, max_length=256)],
    customer_id: Annotated[str, Query(pattern=EXTERNAL_ID_PATTERN)],
) -> Response[str]:
    """The stored event and every outcome recorded under its key, each with its request id and time."""
    from neruba.logic.ingest.reads import event_view

    return json_response(event_view(bootstrap.usage(), customer_id, transaction_id))


@router.get(
    "/v1/ingest/outcomes",
    summary="Count ingest outcomes over time",
    tags=["events"],
    security=BEARER_SECURITY,
    middlewares=READ,
    responses={
        200: answer(OutcomeCounts, "Counts per bucket"),
        **ERRORS,
        **errors_only({400: "Bad time range (invalid_time_range, time_range_too_long)"}),
    },
)
def get_outcomes(
    start: Annotated[Instant, Query(alias="from")],
    end: Annotated[Instant, Query(alias="to")],
    granularity: Annotated[Literal["minute", "hour"], Query()] = "hour",
) -> Response[str]:
    """Outcome counts per minute (at most a day) or per hour (at most 31 days)."""
    from neruba.logic.ingest.reads import outcome_counts

    return json_response(outcome_counts(bootstrap.usage(), start, end, granularity))


@router.get(
    "/v1/customers/<customer_id>/usage",
    summary="Aggregated usage of a meter",
    tags=["usage"],
    security=BEARER_SECURITY,
    middlewares=READ,
    responses={
        200: answer(Usage, "Usage per bucket"),
        **ERRORS,
        **errors_only(
            {
                400: "Bad time range or group_by (invalid_time_range, time_range_too_long, invalid_group_by)",
                404: "No such customer or meter (customer_not_found, meter_not_found)",
            }
        ),
    },
)
def get_usage(
    customer_id: Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)],
    meter: Annotated[str, Query(pattern=CODE_PATTERN)],
    start: Annotated[Instant, Query(alias="from")],
    end: Annotated[Instant, Query(alias="to")],
    granularity: Annotated[Literal["hour", "day", "period"], Query()] = "day",
    group_by: Annotated[str | None, Query(max_length=64)] = None,
) -> Response[str]:
    """Quantity per hour, per day, or per billing period (``period``: the periods of the customer's
    subscription, keyed by their start; the whole range when there is none), optionally per group value."""
    from neruba.logic.ingest.reads import usage_view

    view = usage_view(
        bootstrap.usage(),
        bootstrap.plans(),
        customer_id,
        meter,
        start,
        end,
        granularity,
        group_by,
    )
    return json_response(view)
