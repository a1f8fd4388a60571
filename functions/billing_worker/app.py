"""SQS billing queue -> one invoice per window (catch-up in order), reporting partial batch failures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba import bootstrap
from neruba.logic.billing.windows import invoice_id_for
from neruba.logic.billing.worker import process_job
from neruba.models.billing import BillingJob
from neruba.observability import logger, metrics

MAX_RECEIVES = 5  # BillingQueue's maxReceiveCount: the last attempt before the DLQ
# every failed message is reported (ReportBatchItemFailures), a whole batch's too: retried, then
# dead-lettered, without an invocation error; each failure logged at WARNING with its traceback
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False, logger=logger)


def _utcnow() -> datetime:
    return datetime.now(UTC)


clock: Callable[[], datetime] = _utcnow  # tests move time


BACKFILL_RESERVE_S = 20  # a backfill's run starts no unit of work this close to the invocation's Timeout


def backfill_deadline(context: LambdaContext | None) -> datetime:
    """When a backfill's run stops starting work: the invocation's remaining time (Timeout 60 s) less
    ``BACKFILL_RESERVE_S``, room for the unit under way and the message sent again."""
    remaining = context.get_remaining_time_in_millis() if context is not None else 60_000
    return datetime.now(UTC) + timedelta(milliseconds=remaining) - timedelta(seconds=BACKFILL_RESERVE_S)


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    if record.body.startswith('{"check":'):  # a threshold check after ingest (logic/billing/threshold.py)
        from neruba.logic.billing.threshold_invoices import handle_check

        handle_check(bootstrap.billing(), record.body, clock())
        return
    if record.body.startswith(
        '{"backfill":'
    ):  # the rest of a backfill's commit or revert (logic/billing/backfill_commit.py, backfill_revert.py)
        from neruba.logic.billing.backfill_budget import CommitIncompleteError, DeadlineReachedError
        from neruba.logic.billing.backfill_commit import enqueue
        from neruba.logic.billing.backfill_revert import resume
        from neruba.logic.billing.correction_waits import CarrierWaitError

        ctx = bootstrap.billing()
        try:
            status = resume(ctx, record.body, clock(), backfill_deadline(lambda_context))
        except DeadlineReachedError as exc:  # its progress is stored: the next invocation goes on
            if not enqueue(ctx, exc.backfill_id):  # a new message; unsent, SQS delivers this one again
                raise
            logger.info("backfill continues in the next invocation", extra={"backfill_id": exc.backfill_id})
            return
        except CommitIncompleteError as exc:
            if not isinstance(exc.__cause__, CarrierWaitError):
                raise  # SQS delivers it again
            # an invoice it corrects waits (a draft, an open dispute): days, maybe weeks; no retry storm
            # and no dead letter: the billing sweep sends it again every LAG (logic.sweeps.backfills)
            logger.warning("backfill waits", extra={"body": record.body, "reason": exc.__cause__.message})
            return
        logger.info("backfill resumed", extra={"status": status})
        return
    if record.body.startswith('{"advance"'):  # an event of a meter charged in advance (logic.ingest.advance)
        from neruba.logic.billing.advance import process_message
        from neruba.logic.ingest.advance import parse_message

        event = parse_message(record.body)
        logger.append_keys(customer_id=event["customer_id"], transaction_id=event["transaction_id"])
        item = process_message(bootstrap.billing(), event, clock())
        metrics.add_metric(name="AdvanceEventsBilled", unit="Count", value=1)
        logger.info(
            "advance event recorded",
            extra={"status": item.get("status"), "invoice_id": item.get("invoice_id")},
        )
        return
    job = BillingJob.model_validate_json(record.body)
    logger.append_keys(
        subscription_id=job.subscription_id,
        customer_id=job.customer_id,
        invoice_id=invoice_id_for(job.window_id),  # the job's own window; catch-up lines name theirs
        window_id=job.window_id,
        run_id=job.run_id,
    )
    try:
        outcome = process_job(bootstrap.billing(), job, clock())
    except Exception as exc:
        receives = int(record.attributes.approximate_receive_count or 1)
        if receives >= MAX_RECEIVES:
            from neruba.logic.billing.failures import job_failed

            metrics.add_metric(name="BillingWindowsFailed", unit="Count", value=1)
            job_failed(bootstrap.billing(), job, exc, clock(), f"{record.message_id}#{receives}")
        logger.exception("billing job failed", extra={"receives": receives})
        raise
    if outcome.invoiced:
        metrics.add_metric(name="BillingWindowsInvoiced", unit="Count", value=len(outcome.invoiced))
        for invoice_id in outcome.invoiced:
            logger.info("window invoiced", extra={"invoice_id": invoice_id})
    skipped = outcome.already_billed + outcome.not_due
    if skipped:
        metrics.add_metric(name="BillingWindowsSkipped", unit="Count", value=skipped)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
