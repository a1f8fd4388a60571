"""Reading usage (read scope): a stored event, a customer's events, outcome counts, aggregated usage."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import READ, Cursor, Limit, answer, errors_only, only_query, scoped_responses
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY
from neruba.models.fields import CODE_PATTERN, EXTERNAL_ID_PATTERN, Instant
from neruba.models.views import EventList, OutcomeCounts, StoredEvent, Usage

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
    "/v1/events",
    summary="List a customer's events",
    tags=["events"],
    security=BEARER_SECURITY,
    middlewares=[*READ, only_query("customer_id", "meter", "from", "to", "limit", "starting_after")],
    responses={
        200: answer(EventList, "Counted events, by hour of their timestamp"),
        **ERRORS,
        **errors_only(
            {
                400: "Bad time range (invalid_time_range, time_range_too_long), a cursor this list did not "
                "return for these filters (invalid_cursor), a parameter the route does not take "
                "(unknown_parameter)",
                404: "No such customer or meter (customer_not_found, meter_not_found)",
            }
        ),
    },
)
def list_events(
    customer_id: Annotated[str, Query(pattern=EXTERNAL_ID_PATTERN)],
    start: Annotated[Instant, Query(alias="from")],
    end: Annotated[Instant, Query(alias="to")],
    meter: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    limit: Limit = 20,
    starting_after: Cursor = None,
) -> Response[str]:
    """The customer's counted events whose timestamp is in [from, to) (at most 31 days), of one meter or
    of all, ordered by the hour of their timestamp, then meter; each as ``GET /v1/events/{id}`` shows it."""
    from neruba.logic.ingest.reads import list_events as list_page

    return json_response(
        list_page(bootstrap.usage(), bootstrap.plans(), customer_id, meter, start, end, limit, starting_after)
    )


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
