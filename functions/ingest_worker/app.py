"""SQS ingest queue -> exactly-once metering, reporting partial batch failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba import bootstrap
from neruba.dal.outcomes import moves_by
from neruba.logic.ingest.worker import IngestBatch
from neruba.observability import logger, metrics
from neruba.settings import get_settings

# every failed message is reported (ReportBatchItemFailures), a whole batch's too: retried, then
# dead-lettered, without an invocation error; each failure logged at WARNING with its traceback
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False, logger=logger)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event["Records"]
    now = datetime.now(UTC)
    batch = IngestBatch(
        usage=bootstrap.usage(),
        lookup=bootstrap.ingest_worker_catalog().lookup,
        now=now,
        deadline=now + timedelta(milliseconds=context.get_remaining_time_in_millis()),
        advance_queue_url=get_settings().billing_queue_url,
    )
    batch.begin(records)
    with moves_by(batch.attempt):  # refusals and parks name this attempt (dal/outcomes.py)
        try:
            with processor(records=records, handler=batch.process_record, lambda_context=context):
                processor.process()
        finally:
            failed = set(batch.finish())
    batch.report(metrics, logger)
    customers = batch.threshold_customers()
    if customers:  # a threshold evaluation each, by the billing worker (logic/billing/threshold.py)
        from neruba.logic.billing.threshold_invoices import enqueue_checks

        enqueue_checks(get_settings().billing_queue_url, customers)
    response = processor.response()
    known = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    response["batchItemFailures"] += [{"itemIdentifier": m} for m in sorted(failed - known)]
    return response
