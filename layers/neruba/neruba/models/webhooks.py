"""Outgoing webhooks: endpoint requests and answers, the delivery message, the event envelope.

Event types are :data:`EVENT_TYPES` (their payloads: ``models.webhook_events``).

Example:
    >>> EndpointCreate(url="https://example.com/hook", enabled_events=["invoice.finalized"]).description
    ''
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    create_model,
)

from neruba.models.fields import AuditedReason, Description, TicketText
from neruba.models.views import Closed, Page, Timestamp
from neruba.models.webhook_events import PAYLOADS

EVENT_TYPES: tuple[str, ...] = tuple(PAYLOADS)
if TYPE_CHECKING:
    EventType = str
else:
    EventType = Literal[EVENT_TYPES]  # every type in models.webhook_events.PAYLOADS

MAX_URL = 2048
MAX_OVERLAP_SECONDS = 7 * 86_400


def url_problem(url: str) -> str | None:
    """Why an endpoint URL cannot be posted to whatever its host (the rule the body and every attempt
    apply), or None: no whitespace or control character anywhere, and a port, when given, in 1..65535."""
    from urllib.parse import urlsplit

    if any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in url):
        return "must not contain whitespace or control characters"
    try:
        port = urlsplit(url).port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65535:
        return "must name a port from 1 to 65535"
    return None


def _postable(url: str) -> str:
    problem = url_problem(url)
    if problem is not None:
        raise ValueError(problem)
    return url


EndpointUrl = Annotated[str, Field(min_length=8, max_length=MAX_URL), AfterValidator(_postable)]


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    """``value`` in UTC when it falls in [1970, 3000); an offset that pushes it out of what a datetime
    can hold is out of range too."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError("must fall between 1970-01-01 and 3000-01-01 (UTC)")
    return utc


def _text(value: Any) -> Any:
    if not isinstance(value, str | datetime):  # a number would be read as seconds since 1970
        raise ValueError("must be an RFC 3339 date-time with an offset (e.g. 2026-01-31T12:00:00Z)")
    return value


Since = Annotated[AwareDatetime, BeforeValidator(_text), AfterValidator(_in_range)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointCreate(_Request):
    url: EndpointUrl = Field(examples=["https://example.com/neruba"])
    enabled_events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    description: Description = ""


class EndpointUpdate(_Request):
    url: EndpointUrl | None = None
    enabled_events: list[EventType] | None = Field(default=None, min_length=1, max_length=len(EVENT_TYPES))
    description: Description | None = None
    enabled: StrictBool | None = None


class SecretRotation(_Request):
    overlap_seconds: StrictInt = Field(
        default=86_400,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="How long the current secret keeps signing next to the new one (at most 7 days).",
    )


class ResendRequest(_Request):
    """Resend one event (``event_id``) or every delivery that failed since ``failed_since``."""

    event_id: str | None = Field(default=None, pattern=r"^evt_[0-9a-f]{24}$")
    failed_since: Since | None = Field(
        default=None,
        description="RFC 3339 date-time with an offset, between 1970 and 3000.",
        examples=["2026-01-31T12:00:00Z"],
    )
    endpoint_id: str | None = Field(default=None, pattern=r"^we_[0-9a-f]{20}$")
    reason: AuditedReason | None = Field(
        default=None, description="Why the deliveries are sent again (audited)."
    )
    ticket: TicketText | None = Field(default=None, description="Support or incident ticket.")


class DeliveryMessage(_Request):
    """One message of WebhookDeliveryQueue: try ``attempt`` of delivering ``event_id`` to ``endpoint_id``
    once ``due_at`` has come (SQS delays stop at 15 minutes, so a longer wait is several hops)."""

    event_id: str
    endpoint_id: str
    attempt: int = Field(ge=1)
    due_at: str


# ---------------------------------------------------------------- answers


class Endpoint(Closed):
    """A webhook endpoint. ``secret`` is shown only in the answers of create and rotate (and retries)."""

    id: str = Field(examples=["we_0123456789abcdef0123"])
    object: Literal["webhook_endpoint"]
    url: str
    enabled_events: list[EventType]
    description: str
    enabled: bool
    status: Literal["enabled", "disabled"]
    disabled_reason: str | None = None
    secret: str | None = Field(
        default=None,
        description="whsec_...: in the answer of the create or rotate that made it, and again to a retry "
        "with its Idempotency-Key while the secret signs; null elsewhere.",
    )
    secret_hint: str = Field(description="The last four characters of the newest secret.")
    secrets_active: int = Field(description="How many secrets sign now (2 during a rotation's overlap).")
    failing_since: Timestamp | None = None
    created_at: Timestamp
    updated_at: Timestamp


class EndpointDeleted(Closed):
    id: str
    object: Literal["webhook_endpoint"]
    deleted: Literal[True]


class EndpointList(Page[Endpoint]):
    """Webhook endpoints, oldest first."""


class Attempt(Closed):
    endpoint_id: str
    attempt: int
    at: Timestamp
    status_code: int = Field(description="The HTTP status; 0 when no answer came (timeout, refused).")
    latency_ms: int
    response_excerpt: str = Field(max_length=500)
    error: str | None = None


class Delivery(Closed):
    endpoint_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_at: Timestamp | None = None
    delivered_at: Timestamp | None = None
    failed_at: Timestamp | None = None


class ResendResult(Closed):
    object: Literal["webhook_resend"]
    resent: int = Field(description="Deliveries put back on the queue.")
    deliveries: list[dict[str, str]]


# ---------------------------------------------------------------- event payloads (OpenAPI ``webhooks``)


class _EventBase(Closed):
    id: str = Field(pattern=r"^evt_[0-9a-f]{24}$", description="Unique per event: drop an id already seen.")
    object: Literal["event"]
    created: Timestamp
    customer_id: str = Field(description="The customer the event concerns (``_global`` for none).")
    sequence: int = Field(ge=1, description="Increases with each event of the customer (gaps possible).")


def _event_model(event_type: str, payload: type[BaseModel], summary: str) -> type[BaseModel]:
    name = "".join(part.capitalize() for part in event_type.replace(".", "_").split("_")) + "Event"
    fields: dict[str, Any] = {
        "type": (Literal.__getitem__(event_type), ...),
        "data": (dict[Literal["object"], payload], ...),  # type: ignore[valid-type]
    }
    return create_model(name, __base__=_EventBase, __doc__=summary, **fields)


EVENT_MODELS: dict[str, type[BaseModel]] = {
    event_type: _event_model(event_type, payload, summary)
    for event_type, (payload, summary) in PAYLOADS.items()
}

# the body of any documented event (one model per type, as the OpenAPI document's webhooks section shows)
EventPayload = Union[tuple(EVENT_MODELS.values())]  # type: ignore[valid-type]  # noqa: UP007


class EventView(Closed):
    """An event as sent (``payload``, the exact body) with its deliveries and attempt log."""

    id: str
    object: Literal["event"]
    type: EventType
    customer_id: str
    sequence: int
    created: Timestamp
    payload: EventPayload = Field(  # type: ignore[valid-type]
        description="The exact body sent, one of the event payloads of the webhooks section."
    )
    deliveries: list[Delivery]
    attempts: list[Attempt]


class WebhookEventSummary(Closed):
    """One event of a customer's list; its deliveries and attempts are on ``/admin/webhook-events/{id}``."""

    id: str
    object: Literal["event"]
    type: EventType
    customer_id: str
    sequence: int = Field(description="The customer's event number (the list's order, newest first).")
    created: Timestamp


class WebhookEventList(Page[WebhookEventSummary]):
    """A customer's webhook events, newest sequence number first."""
