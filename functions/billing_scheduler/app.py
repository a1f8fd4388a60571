"""EventBridge schedule -> one billing run: lease, enqueue due windows, finalize drafts, record the run."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba.dal.locks import LockRepository
from neruba.dal.plans import PlansRepository
from neruba.logic.billing.scheduler import RunOptions, run_billing
from neruba.logic.billing.worker import Billing
from neruba.observability import logger, metrics
from neruba.settings import get_settings

_ctx: Billing | None = None


def billing() -> Billing:
    """The billing context of this container (tests replace ``_ctx`` to inject collaborators)."""
    global _ctx
    if _ctx is None:
        _ctx = Billing.from_settings()
    return _ctx


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    run = run_billing(
        billing(),
        LockRepository(settings.billing_table),
        PlansRepository(settings.catalog_table),
        RunOptions(trigger="schedule"),
    )
    logger.info("billing run", extra={"run_id": run["id"], "status": run["status"]})
    return run
