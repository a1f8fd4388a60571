"""Usage events: what clients send, what the ingest queue carries, what ingest answers.

Example:
    >>> event = {"transaction_id": "t1", "customer_id": "acme", "code": "api_calls"}
    >>> UsageEventIn.model_validate(event).timestamp is None
    True
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from neruba.models.fields import CODE_PATTERN, EXTERNAL_ID_PATTERN, AuditedReason, RequiredTicket
from neruba.timefmt import parse_input_time
from neruba.validation import required_because

MAX_EVENTS_PER_REQUEST = 100
MAX_PROPERTIES = 50
MAX_PROPERTY_TEXT = 1_024
PROPERTY_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

# Numbers (and numeric text) must be storable: at most 38 significant digits, magnitude 1E-130 to below
# 1E+126 (neruba.domain.numbers); checked per event by logic.ingest.api with its own error codes.
PropertyValue = (
    StrictBool
    | StrictInt
    | Annotated[Decimal, Field(allow_inf_nan=False)]
    | Annotated[StrictStr, Field(max_length=MAX_PROPERTY_TEXT)]
)
Outcome = Literal["accepted", "duplicate", "conflict", "replay", "failed", "over_limit"]
OUTCOMES: tuple[Outcome, ...] = ("accepted", "duplicate", "conflict", "replay", "failed", "over_limit")


class UsageEventIn(BaseModel):
    """One usage event as a client sends it. Unknown fields are rejected, not dropped."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f]+$",
        description="The client's idempotency key.",
        examples=["req_7f3c9a12-0001"],
    )
    customer_id: str = Field(
        pattern=EXTERNAL_ID_PATTERN, description="The customer's external_id.", examples=["acme"]
    )
    code: str = Field(pattern=CODE_PATTERN, description="The meter's event code.", examples=["tokens"])
    timestamp: datetime | None = Field(
        default=None, description="RFC 3339 with offset; defaults to now.", examples=["2026-01-31T12:00:00Z"]
    )
    properties: dict[Annotated[str, Field(pattern=PROPERTY_NAME_PATTERN)], PropertyValue] = Field(
        default_factory=dict,
        max_length=MAX_PROPERTIES,
        description="What the meter aggregates, filters or groups by: numbers, text or booleans.",
        examples=[{"tokens": 1250, "model": "large"}],
    )

    @field_validator("timestamp", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        return rfc3339(value)


def rfc3339(value: Any) -> Any:
    """A timestamp field's text as an aware datetime (None stays None), or the rule it breaks."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("timestamp must be an RFC 3339 string")
    try:
        parsed = parse_input_time(value)
    except ValueError:
        raise ValueError("timestamp must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset, e.g. 2026-01-31T12:00:00Z")
    return parsed


EventItemSchema = Annotated[
    Any, WithJsonSchema(UsageEventIn.model_json_schema())
]  # each validated on its own


class IngestRequest(BaseModel):
    """``POST /v1/events`` body: 1 to 100 events, each validated on its own."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "transaction_id": "req_7f3c9a12-0001",
                            "customer_id": "acme",
                            "code": "tokens",
                            "timestamp": "2026-01-31T12:00:00Z",
                            "properties": {"tokens": 1250, "model": "large"},
                        },
                        {
                            "transaction_id": "req_7f3c9a12-0002",
                            "customer_id": "acme",
                            "code": "storage_gb",
                            "timestamp": "2026-01-31T12:00:05Z",
                            "properties": {"gb": "12.5"},
                        },
                    ]
                }
            ]
        },
    )

    events: list[EventItemSchema] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class EventError(BaseModel):
    """Why one event was rejected."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Machine-readable code of the rule.", examples=["unknown_customer"])
    message: str = Field(description="For people; names the field and the rule.")
    param: str | None = Field(
        default=None,
        description="The field at fault, as a path in the request body (as in a 400's details).",
        examples=["events.1.customer_id"],
    )


class EventStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    transaction_id: str | None
    status: Literal["queued", "rejected"]
    error: EventError | None = None


class IngestResponse(BaseModel):
    """What ingest answers (202): each event queued or rejected, in request order."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "request_id": "c0ffee00-1d2b-4a7e-9f00-5e1a7c3b2d10",
                    "queued": 1,
                    "rejected": 1,
                    "events": [
                        {
                            "index": 0,
                            "transaction_id": "req_7f3c9a12-0001",
                            "status": "queued",
                            "error": None,
                        },
                        {
                            "index": 1,
                            "transaction_id": "req_7f3c9a12-0002",
                            "status": "rejected",
                            "error": {
                                "code": "invalid_timestamp",
                                "message": "timestamp needs a UTC offset, e.g. 2026-01-31T12:00:00Z.",
                                "param": "events.1.timestamp",
                            },
                        },
                    ],
                }
            ]
        },
    )

    request_id: str | None
    queued: int
    rejected: int
    events: list[EventStatus]


TICKET_REQUIRED = (
    "voiding or amending an event requires a ticket (the support or finance ticket asking for it), "
    "unlike the other admin bodies, where ticket is optional"
)


class EventVoidIn(BaseModel):
    """``POST /admin/events/{transaction_id}/void``: take an accepted event's usage back out.

    Unlike the other admin bodies, ``ticket`` is required here (docs/api.md, "ticket on admin bodies"); a
    body without one, or with ``ticket: null``, is told so in the 422's message for ``ticket``."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(pattern=EXTERNAL_ID_PATTERN, description="The event's customer.")
    reason: AuditedReason = Field(description="Why the event is voided (audited, shown on the event).")
    ticket: RequiredTicket = Field(
        description="The support or finance ticket asking for it (audited). Required here, unlike the "
        "optional ticket of the other admin bodies."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _ticket_required(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            raise required_because(exc, "ticket", TICKET_REQUIRED) from None


class EventAmendIn(EventVoidIn):
    """``POST /admin/events/{transaction_id}/amend``: void the event and count a corrected copy of it.
    Unset fields keep the original's value; at least one must change."""

    properties: dict[Annotated[str, Field(pattern=PROPERTY_NAME_PATTERN)], PropertyValue] | None = Field(
        default=None,
        max_length=MAX_PROPERTIES,
        description="The corrected copy's properties, whole (the quantity is the meter's property).",
    )
    timestamp: datetime | None = Field(
        default=None, description="The corrected copy's timestamp, RFC 3339 with offset."
    )

    @field_validator("timestamp", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        return rfc3339(value)
