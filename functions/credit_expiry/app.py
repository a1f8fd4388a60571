"""Scheduled credit expiry: post the expiry of every grant whose expires_at has passed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba import bootstrap
from neruba.logic.ledger.credits import expire_due
from neruba.observability import logger, metrics


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """EventBridge schedule: expire due grants (each posting effective exactly at its expires_at)."""
    report = expire_due(bootstrap.ledger(), balance_watch=bootstrap.balance_watches())
    metrics.add_metric(name="CreditGrantsExpired", unit="Count", value=len(report["expired"]))
    for grant_id in report["expired"]:
        logger.info("credit grant expired", extra={"grant_id": grant_id})
    return report
