"""Receiving Stripe webhooks: verify the signature on the raw bytes, store the event once, queue it.

Nothing is processed in the request: a verified event is stored (``STRIPE#{event_id}``, conditional on
the id) and its id is sent to the Stripe events queue. A repeat delivery answers 200 and changes nothing
(while the event is still ``received`` its id is queued again, which is harmless: processing is
idempotent).

Example:
    >>> verify_signature(b"{}", None, ["whsec_x"])  # doctest: +SKIP
    Traceback (most recent call last):
    InvalidSignatureError: ...
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from neruba import jsonutil
from neruba.errors import InvalidRequestError, ServiceUnavailableError

if TYPE_CHECKING:
    from neruba.dal.stripe_events import StripeEventsRepository

TOLERANCE_SECONDS = 300
ID_MAX = 255

WebhookOutcome = Literal["accepted", "duplicate"]


class InvalidSignatureError(InvalidRequestError):
    """The Stripe-Signature header is missing, malformed, wrong for every secret, or out of tolerance."""

    default_code = "invalid_signature"


class InvalidPayloadError(InvalidRequestError):
    """The body is signed correctly but is not a usable Stripe event."""

    default_code = "invalid_payload"


def _timestamp(header: str) -> int:
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                return int(value)
            except ValueError:
                break
    raise InvalidSignatureError("The Stripe-Signature header has no valid timestamp.")


def verify_signature(
    raw: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check ``header`` against ``raw`` with each secret in turn (rotation); raise InvalidSignatureError.

    The timestamp must be within ``tolerance`` seconds of ``now`` in either direction (the stripe library
    checks only the past).
    """
    import stripe

    if not header:
        raise InvalidSignatureError("The Stripe-Signature header is missing.")
    if not secrets:
        raise ServiceUnavailableError("No Stripe webhook secret is configured.", code="stripe_not_configured")
    current = time.time() if now is None else now
    signed_at = _timestamp(header)
    if abs(current - signed_at) > tolerance:
        raise InvalidSignatureError("The Stripe-Signature timestamp is outside the tolerance window.")
    for secret in secrets:
        try:
            # tolerance=None: the window (past and future) was checked above against our clock
            stripe.WebhookSignature.verify_header(raw, header, secret, tolerance=None)
        except stripe.SignatureVerificationError:
            continue
        return
    raise InvalidSignatureError("The Stripe-Signature header does not match the body.")


def parse_event(raw: bytes) -> dict[str, Any]:
    """The event as a dict; raise InvalidPayloadError when it is not a Stripe event."""
    try:
        event = jsonutil.loads_untrusted(raw.decode("utf-8"))
    except jsonutil.DuplicateKeyError as exc:
        raise InvalidPayloadError(
            f"The body names '{exc.key}' twice in one object.", code="duplicate_key"
        ) from exc
    except (UnicodeDecodeError, ValueError) as exc:  # nesting too deep included (loads_untrusted)
        raise InvalidPayloadError("The body is not JSON.", code="invalid_json") from exc
    if not isinstance(event, dict):
        raise InvalidPayloadError("The body is not a JSON object.")
    for name in ("id", "type"):
        value = event.get(name)
        if not isinstance(value, str) or not value or len(value) > ID_MAX:
            raise InvalidPayloadError(f"The event has no valid '{name}'.", code="missing_field", param=name)
    if not event["id"].startswith("evt_"):
        raise InvalidPayloadError("The event id must start with 'evt_'.", code="invalid_event_id", param="id")
    created = event.get("created")
    if created is not None and (not isinstance(created, int) or isinstance(created, bool) or created < 0):
        raise InvalidPayloadError("The event 'created' must be a Unix time.", param="created")
    return event


@dataclass(frozen=True, slots=True)
class Received:
    """The answer to one webhook delivery."""

    event_id: str
    outcome: WebhookOutcome


def body_digest(raw: bytes) -> str:
    """SHA-256 of a body, to record a rejected body without storing it."""
    return hashlib.sha256(raw).hexdigest()


def receive(
    raw: bytes,
    header: str | None,
    *,
    secrets: Sequence[str],
    events: StripeEventsRepository,
    queue_url: str,
    now: datetime | None = None,
) -> Received:
    """Verify, store once and queue one delivery (see the module docstring)."""
    from neruba.dal.clients import client

    at = now or datetime.now(UTC)
    verify_signature(raw, header, secrets, now=at.timestamp())
    repo = events
    try:
        event = parse_event(raw)
    except InvalidPayloadError as exc:
        repo.put_rejected(body_digest(raw), exc.code, len(raw), at)
        raise
    existing = repo.put_new(event, raw, at)
    if existing is not None and existing.status != "received":
        return Received(event["id"], "duplicate")
    # new, or stored but never processed (e.g. the queue send failed last time): queue it (again)
    client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps({"event_id": event["id"]}))
    return Received(event["id"], "accepted" if existing is None else "duplicate")
