"""SQS StripeSyncQueue -> push finalized invoices to Stripe, resuming from the stored sync record."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba.observability import logger, metrics

# every failed message is reported (ReportBatchItemFailures), a whole batch's too: retried, then
# dead-lettered, without an invocation error; each failure logged at WARNING with its traceback
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False, logger=logger)


def handle_record(record: SQSRecord) -> str:
    """Sync the invoice named by one message; raising fails just this message (retried, then DLQ)."""
    from neruba import bootstrap
    from neruba.logic.stripe.sync import sync_message

    return sync_message(record.body, bootstrap.invoice_source())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
