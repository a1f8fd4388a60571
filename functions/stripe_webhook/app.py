"""POST /webhooks/stripe: verify, store once, queue (no processing in the request)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import stripe_webhook
from neruba.errors import NerubaError, PayloadTooLargeError, UnsupportedMediaTypeError

app = build_resolver(stripe_webhook.router)


def _count_rejection(error: NerubaError) -> None:
    """A body refused before the route runs (over the size limit, not UTF-8, not declared as JSON) is
    still a webhook outcome."""
    if isinstance(error, PayloadTooLargeError):
        outcome = "too_large"
    elif isinstance(error, UnsupportedMediaTypeError):
        outcome = "unsupported_media_type"
    else:
        outcome = "invalid_payload"
    stripe_webhook.webhook_outcome(outcome)


lambda_handler = make_handler(app, on_rejected=_count_rejection)
