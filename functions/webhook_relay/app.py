"""Schedule -> fan outbox items out to WebhookDeliveryQueue, one message per (event, endpoint)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba.observability import logger, metrics


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from datetime import UTC, datetime

    from neruba import bootstrap
    from neruba.logic.webhooks import relay_once

    counts = relay_once(bootstrap.webhooks(), datetime.now(UTC))
    logger.info("webhook relay", extra=counts)
    return counts
