"""Scheduled consistency sweep: adopt uncounted events and repair aggregate drift, then store a report."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba.dal.catalog import CatalogCache, CatalogRepository
from neruba.dal.ops import OpsRepository
from neruba.dal.usage import UsageRepository
from neruba.logic.sweep import SETTLE, UsageSweepReport, sweep_usage
from neruba.observability import logger, metrics
from neruba.settings import get_settings

WINDOW = timedelta(hours=2)


def run_sweep(start: datetime, end: datetime, now: datetime | None = None) -> UsageSweepReport:
    """Sweep the batches processed in [start, end) and store the report; returns it."""
    settings = get_settings()
    started = datetime.now(UTC)
    lookup = CatalogCache(CatalogRepository(settings.catalog_table), ttl_seconds=0).lookup
    report = sweep_usage(UsageRepository(settings.usage_table), lookup, start, end, now=now)
    sweep_id = uuid.uuid4().hex
    OpsRepository(settings.ops_table).put_sweep_report(sweep_id, started.isoformat(), report.as_dict())
    metrics.add_metric(name="SweepRepairs", unit="Count", value=report.repaired)
    for repair in report.repairs:
        logger.warning("sweep repaired usage", extra={"sweep_id": sweep_id, **repair})
    return report


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """EventBridge schedule: sweep the window that settled since the last two hours."""
    end = datetime.now(UTC) - SETTLE
    report = run_sweep(end - WINDOW, end)
    return report.as_dict()
