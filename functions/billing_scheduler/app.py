"""EventBridge schedule -> one billing run: lease, enqueue due windows, finalize drafts, record the run."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba import bootstrap
from neruba.logic.billing.scheduler import RunOptions, run_billing
from neruba.observability import logger, metrics


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = run_billing(
        bootstrap.billing(),
        bootstrap.locks(),
        bootstrap.plans(),
        RunOptions(trigger="schedule"),
    )
    logger.info("billing run", extra={"run_id": run.id, "status": run.status})
    return run.document
