"""POST /webhooks/stripe: verify, store once, queue (no processing in the request)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import stripe_webhook
from neruba.settings import get_settings

app = build_resolver(stripe_webhook.router)
_resolve = make_handler(app)


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Count an oversized body as a webhook outcome, then answer through the resolver (413 there)."""
    from neruba.api.resolver import body_size

    if body_size(event) > get_settings().max_body_bytes:
        stripe_webhook.webhook_outcome("too_large")
    return _resolve(event, context)
