"""``POST /v1/events``: validate each event on its own, queue the valid ones in batches.

Example:
    >>> result = accept_events([{"transaction_id": "t1", "customer_id": "acme", "code": "calls"}],
    ...                        request_id="r1", send=lambda bodies: [])  # doctest: +SKIP
    >>> result.queued  # doctest: +SKIP
    1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from neruba import jsonutil
from neruba.domain.ingest import (
    InvalidPropertyError,
    matches_filters,
    meter_value,
    property_number_problems,
    time_window_error,
)
from neruba.domain.numbers import MESSAGES as NUMBER_RULES
from neruba.models.catalog import Customer, Meter
from neruba.models.events import EventError, EventStatus, IngestResponse, UsageEventIn
from neruba.timefmt import iso
from neruba.validation import describe, param_path, within_path

Sender = Callable[[Sequence[tuple[str, str]]], list[str]]
CatalogLookup = Callable[[set[str], set[str]], tuple[Mapping[str, Customer], Mapping[str, Meter]]]
"""The customers and meters known among some external ids and codes (unknown ones are left out)."""

_MESSAGES = {
    "timestamp_too_old": "The timestamp is older than the accepted window ({days} days).",
    "timestamp_in_future": "The timestamp is more than {seconds} seconds ahead of now.",
}


def _error_from_validation(exc: ValidationError) -> EventError:
    first = describe(exc.errors())[0]
    param = first.param
    # the event's own field the path starts with (its first segment: `properties` of properties["a.b"])
    field = (param or "").split(".", 1)[0].split("[", 1)[0]
    kind = first.code
    if kind == "missing":
        code = "missing_field"
    elif kind == "extra_forbidden":
        code = "unknown_field"
    elif field == "properties":
        code = "too_many_properties" if kind == "too_long" and param == field else "invalid_property"
    elif field == "timestamp":
        code = "invalid_timestamp"
    else:
        code = "invalid_field"
    return EventError(code=code, message=first.message, param=param)


def validate_event(
    raw: Any, now: datetime, max_age_days: int, max_future_seconds: int, *, window: bool = True
) -> tuple[UsageEventIn | None, EventError | None]:
    """One event: the model, or the first thing wrong with it (``window`` False: the time window is left
    to the caller, which checks its own rules first with :func:`window_error`)."""
    if not isinstance(raw, dict):
        return None, EventError(code="invalid_event", message="Each event must be a JSON object.")
    try:
        event = UsageEventIn.model_validate(raw)
    except ValidationError as exc:
        return None, _error_from_validation(exc)
    for name, code in property_number_problems(event.properties)[:1]:
        param = param_path("properties", name)
        message = f"'{param}' holds a number that cannot be stored: {NUMBER_RULES[code]}."
        return None, EventError(code=code, message=message, param=param)
    error = window_error(event, now, max_age_days, max_future_seconds) if window else None
    return (None, error) if error is not None else (event, None)


def window_error(
    event: UsageEventIn, now: datetime, max_age_days: int, max_future_seconds: int
) -> EventError | None:
    """``timestamp_too_old`` / ``timestamp_in_future`` for an event outside the accepted window."""
    if event.timestamp is None:
        return None
    problem = time_window_error(event.timestamp, now, max_age_days, max_future_seconds)
    if not problem:
        return None
    message = _MESSAGES[problem].format(days=max_age_days, seconds=max_future_seconds)
    return EventError(code=problem, message=message, param="timestamp")


def catalog_error(
    event: UsageEventIn, customers: Mapping[str, Customer], meters: Mapping[str, Meter]
) -> EventError | None:
    """What the catalog refuses the event for, with the same codes the worker parks an event with:
    ``unknown_customer``, ``customer_archived``, ``unknown_meter``, then the rules of
    :func:`meter_error`. The worker checks them all again when it processes the message (the catalog may
    change in between, and messages can reach the queue by other means)."""
    if event.customer_id not in customers:
        return EventError(
            code="unknown_customer",
            message=f"No customer '{event.customer_id}': create it, then send the event again.",
            param="customer_id",
        )
    if customers[event.customer_id].archived_at is not None:
        return EventError(
            code="customer_archived",
            message=f"Customer '{event.customer_id}' is archived; it takes no new usage.",
            param="customer_id",
        )
    meter = meters.get(event.code)
    if meter is None:
        return EventError(
            code="unknown_meter",
            message=f"No meter with code '{event.code}': create it, then send the event again.",
            param="code",
        )
    return meter_error(event, meter)


def meter_error(event: UsageEventIn, meter: Meter) -> EventError | None:
    """The rule the event's meter refuses it by, when the event passes the meter's filters:
    ``missing_property`` (the aggregated property is absent), ``negative_value`` (a negative value on a
    meter that allows none) or ``invalid_property`` (the aggregated property is not a number: a boolean,
    text that is not plain ASCII numeric text, NaN)."""
    if not meter.field or not matches_filters(meter.filters, event.properties):
        return None
    try:
        meter_value(meter.aggregation, meter.field, event.properties, allow_negative=meter.allow_negative)
    except InvalidPropertyError as exc:
        if exc.code in ("missing_property", "negative_value", "invalid_property"):
            param = param_path("properties", meter.field)
            return EventError(code=exc.code, message=_sentence(str(exc)), param=param)
    return None


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def queue_message(event: UsageEventIn, request_id: str, index: int, now: datetime) -> str:
    """The ingest queue message for one valid event."""
    at = (event.timestamp or now).astimezone(UTC)
    body = {
        "v": 1,
        "rid": request_id,
        "i": index,
        "rt": iso(now),
        "e": {
            "transaction_id": event.transaction_id,
            "customer_id": event.customer_id,
            "code": event.code,
            "timestamp": iso(at),
            "client_timestamp": event.timestamp.isoformat() if event.timestamp else None,
            "properties": event.properties,
        },
    }
    return jsonutil.dumps(body)


def accept_events(
    raw_events: list[Any],
    *,
    request_id: str,
    send: Sender,
    now: datetime | None = None,
    max_age_days: int = 35,
    max_future_seconds: int = 300,
    catalog: CatalogLookup | None = None,
) -> IngestResponse:
    """Validate, queue the valid events, and say what happened to each.

    ``catalog`` looks up the events' customers and meters (:func:`catalog_error`); an event the catalog
    refuses is not queued. Without it, or when the lookup fails, those rules are left to the worker.
    Every error's ``param`` is a path in the request body (``events.3.customer_id``), as in a 400's details.
    """
    now = now or datetime.now(UTC)
    statuses: list[EventStatus] = []
    messages: list[tuple[str, str]] = []
    checked = [validate_event(raw, now, max_age_days, max_future_seconds) for raw in raw_events]
    valid = [event for event, _ in checked if event is not None]
    found = _lookup(catalog, {e.customer_id for e in valid}, {e.code for e in valid})
    for index, (raw, (event, error)) in enumerate(zip(raw_events, checked, strict=True)):
        transaction_id = raw.get("transaction_id") if isinstance(raw, dict) else None
        tx = transaction_id if isinstance(transaction_id, str) else None
        if event is not None and found is not None:
            error = catalog_error(event, *found)
        if event is None or error is not None:
            error = _at(index, error)
            statuses.append(EventStatus(index=index, transaction_id=tx, status="rejected", error=error))
            continue
        messages.append((str(index), queue_message(event, request_id, index, now)))
        statuses.append(EventStatus(index=index, transaction_id=tx, status="queued"))
    unsent = set(send(messages)) if messages else set()
    for status in statuses:
        if str(status.index) in unsent:
            status.status = "rejected"
            status.error = EventError(
                code="temporarily_unavailable",
                message="The event could not be queued; send it again.",
                param=param_path("events", status.index),
            )
    queued = sum(1 for s in statuses if s.status == "queued")
    return IngestResponse(
        request_id=request_id, queued=queued, rejected=len(statuses) - queued, events=statuses
    )


def _at(index: int, error: EventError | None) -> EventError | None:
    """The error with its ``param`` as a path in the request body: ``events.{index}[.field]``."""
    if error is None:
        return None
    param = within_path(param_path("events", index), error.param)
    return error.model_copy(update={"param": param})


def _lookup(
    catalog: CatalogLookup | None, customers: set[str], codes: set[str]
) -> tuple[Mapping[str, Customer], Mapping[str, Meter]] | None:
    if catalog is None or not (customers or codes):
        return None
    try:
        return catalog(customers, codes)
    except Exception:  # the catalog unreachable: queue anyway, the worker applies the same rules
        from neruba.observability import logger

        logger.warning("catalog lookup failed; catalog rules left to the worker", exc_info=True)
        return None
