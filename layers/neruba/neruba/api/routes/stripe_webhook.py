"""``POST /webhooks/stripe``: Stripe's signed event deliveries (no API key; the signature is the auth)."""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import answer, errors_only
from neruba.api.responses import json_response
from neruba.errors import ServiceUnavailableError
from neruba.models.views import WebhookReceipt
from neruba.observability import logger
from neruba.settings import get_settings

router = APIGatewayRouter()


def raw_body(event: dict[str, Any]) -> bytes:
    """The exact bytes Stripe sent (API Gateway may hand them over base64-encoded).

    Example:
        >>> raw_body({"body": "eyJhIjoxfQ==", "isBase64Encoded": True})
        b'{"a":1}'
    """
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return str(body).encode("utf-8")


def header(event: dict[str, Any], name: str) -> str | None:
    """A request header, whatever its case."""
    wanted = name.lower()
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == wanted:
            return str(value)
    return None


def webhook_outcome(outcome: str) -> None:
    """Emit ``WebhookOutcome`` with dimension ``outcome`` (accepted, duplicate, bad_signature, ...)."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name="WebhookOutcome", unit=MetricUnit.Count, value=1, namespace="Neruba") as metric:
        metric.add_dimension(name="outcome", value=outcome)


@router.post(
    "/webhooks/stripe",
    summary="Receive a Stripe event (signed with Stripe-Signature)",
    tags=["stripe"],
    responses={
        200: answer(WebhookReceipt, "Stored and queued, or already received (duplicate)"),
        **errors_only(
            {
                400: "Missing or invalid signature (invalid_signature), or a signed body that is not a "
                "Stripe event (invalid_payload)",
                413: "The body is over the size limit (payload_too_large)",
                415: "The body is declared as another media type than JSON (unsupported_media_type)",
                422: "The request does not match the schema (validation_error)",
                500: "Something went wrong on our side (internal_error); quote the request_id",
                503: "Stripe is not configured or storage is unavailable; Stripe retries",
            }
        ),
    },
)
def receive_stripe_event() -> Response[str]:
    """Verify ``Stripe-Signature`` on the raw body with any configured secret, store the event once, queue
    it for processing. A repeat delivery answers 200 and changes nothing."""
    from neruba.logic.stripe.secrets import StripeConfigError, load_config
    from neruba.logic.stripe.webhook import InvalidPayloadError, InvalidSignatureError, receive

    settings = get_settings()
    raw_event = router.current_event.raw_event
    try:
        secrets = load_config().webhook_secrets
    except StripeConfigError as exc:
        logger.error("stripe is not configured", extra={"problem": str(exc)})
        webhook_outcome("not_configured")
        raise ServiceUnavailableError("Stripe is not configured.", code="stripe_not_configured") from exc
    try:
        received = receive(
            raw_body(raw_event),
            header(raw_event, "Stripe-Signature"),
            secrets=secrets,
            events=bootstrap.stripe_events(),
            queue_url=settings.stripe_events_queue_url,
        )
    except InvalidSignatureError as exc:
        logger.warning("stripe webhook rejected", extra={"reason": exc.code, "detail": exc.message})
        webhook_outcome("bad_signature")
        raise
    except InvalidPayloadError as exc:
        logger.warning("stripe webhook payload rejected", extra={"reason": exc.code})
        webhook_outcome("invalid_payload")
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("botocore"):
            logger.exception("stripe webhook storage failed")
            webhook_outcome("unavailable")
            raise ServiceUnavailableError("Storage is unavailable; retry later.", code="unavailable") from exc
        raise
    logger.info(
        "stripe webhook received", extra={"stripe_event_id": received.event_id, "outcome": received.outcome}
    )
    webhook_outcome(received.outcome)
    return json_response(
        {"received": True, "id": received.event_id, "duplicate": received.outcome != "accepted"}
    )
