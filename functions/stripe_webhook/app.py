"""POST /webhooks/stripe: verify, store once, queue (no processing in the request)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import stripe_webhook
from neruba.errors import NerubaError, PayloadTooLargeError

app = build_resolver(stripe_webhook.router)


def _count_rejection(error: NerubaError) -> None:
    """A body refused before the route runs (over the size limit, not UTF-8) is still a webhook outcome."""
    stripe_webhook.webhook_outcome(
        "too_large" if isinstance(error, PayloadTooLargeError) else "invalid_payload"
    )


lambda_handler = make_handler(app, on_rejected=_count_rejection)
