"""Consistency sweeps (admin scope): run the checks now over a bounded window, read the reports.

``POST /admin/sweeps`` runs synchronously inside the API's time limit, so its window is at most
``MAX_API_WINDOW``; longer windows go through ``neruba sweep`` (no time limit) or the schedule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import ADMIN, Limit, answer, scoped_responses
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.errors import InvalidRequestError, NotFoundError
from neruba.models.ops import SweepRequest
from neruba.models.views import Sweep, SweepList

router = APIGatewayRouter()
MAX_API_WINDOW = timedelta(hours=6)
DEFAULT_WINDOW = timedelta(hours=2)
SWEEP_ID_PATTERN = r"^swp_[0-9a-f]{20}$"
ERRORS = scoped_responses(
    "admin",
    {
        400: {"description": "Unknown check, bad window or cursor (see error.code)"},
        404: {"description": "No such sweep"},
        422: {"description": "The body or a parameter does not match the schema"},
    },
)


def _window(body: SweepRequest, now: datetime) -> tuple[datetime, datetime]:
    end = body.to or now
    start = body.from_ or end - DEFAULT_WINDOW
    if start >= end:
        raise InvalidRequestError("'from' must be before 'to'.", code="invalid_window", param="from")
    if end - start > MAX_API_WINDOW:
        hours = int(MAX_API_WINDOW.total_seconds() // 3600)
        raise InvalidRequestError(
            f"The API sweeps at most {hours} hours at a time; use `neruba sweep` for longer windows.",
            code="window_too_large",
            param="from",
        )
    return start.astimezone(UTC), end.astimezone(UTC)


@router.post(
    "/admin/sweeps",
    summary="Run the consistency sweep now",
    tags=["operations"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={201: answer(Sweep, "The sweep ran; its report"), **ERRORS},
)
def create_sweep(body: Annotated[SweepRequest, Body()]) -> Response[str]:
    """Runs the named checks (default: every registered check) over ``[from, to)`` and returns the report
    (what each check checked, found and repaired). Every sweep is also readable at ``/admin/sweeps/{id}``."""
    from neruba.logic.sweeps.runner import UnknownCheckError, check_names, run_sweep

    start, end = _window(body, datetime.now(UTC))
    actor = current_principal(router).actor
    try:
        report = run_sweep(
            bootstrap.ops(), body.checks, start, end, trigger="api", actor=actor, billing=bootstrap.billing
        )
    except UnknownCheckError as exc:
        raise InvalidRequestError(
            f"Unknown check(s): {exc.args[0]}. Known: {', '.join(check_names())}.",
            code="unknown_check",
            param="checks",
        ) from exc
    return json_response(report, status=201)


@router.get(
    "/admin/sweeps",
    summary="List sweeps (newest first)",
    tags=["operations"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={200: answer(SweepList, "OK"), **ERRORS},
)
def list_sweeps(
    limit: Limit = 20,
    starting_after: Annotated[str | None, Query(pattern=SWEEP_ID_PATTERN)] = None,
) -> Response[str]:
    from neruba.dal.ops import InvalidSweepCursorError

    try:
        found, has_more = bootstrap.ops().list_sweeps(limit, starting_after)
    except InvalidSweepCursorError as exc:
        raise InvalidRequestError(
            "starting_after is not a sweep id.", code="invalid_cursor", param="starting_after"
        ) from exc
    next_cursor = found[-1].id if has_more and found else None
    data = [summary.document for summary in found]
    return json_response({"object": "list", "data": data, "has_more": has_more, "next_cursor": next_cursor})


@router.get(
    "/admin/sweeps/<sweep_id>",
    summary="One sweep's report",
    tags=["operations"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={200: answer(Sweep, "OK"), **ERRORS},
)
def get_sweep(sweep_id: Annotated[str, Path(pattern=SWEEP_ID_PATTERN)]) -> Response[str]:
    report = bootstrap.ops().get_sweep_report(sweep_id)
    if report is None:
        raise NotFoundError(f"No sweep {sweep_id}.", code="sweep_not_found", param="sweep_id")
    return json_response(report.document)
