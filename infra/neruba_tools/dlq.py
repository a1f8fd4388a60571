"""``neruba dlq``: see and redrive the dead-letter queues of a stack.

    neruba dlq list                                   every DLQ: depth, in flight, oldest message age
    neruba dlq show QUEUE [--max N]                   peek at messages (left in the queue)
    neruba dlq redrive QUEUE [--max N] [--rate R] [--mover]
    neruba dlq status QUEUE                           progress of the DLQ's message move tasks

QUEUE is a DLQ or its source queue, by logical id (``IngestDLQ``, ``IngestQueue``) or physical name. The
DLQs come from template.yaml (``StackInfo.dead_letter_queues``: every RedrivePolicy target, with its
source queue, and every queue named as a function's on-failure destination, which has no source queue and
is shown but not redriven); their URLs from ``--stack NAME`` on AWS
or the local stack's names when the endpoint is local (``--stack`` defaults to ``neruba-local`` there).

Redrive uses SQS ``StartMessageMoveTask`` (all messages, optionally at ``--rate`` per second) back to the
source queue. The receive-send-delete mover (``neruba.dal.queues.move_messages``) is used instead when
``--mover`` is given (required for ``--max``), or when the endpoint is local and does not implement move
tasks (moto). On AWS an unavailable move task is an error, never a silent fallback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba_tools.argtypes import bounded_int
from neruba_tools.stackinfo import (
    DeadLetterQueue,
    StackError,
    StackInfo,
    boto_client,
    endpoint_url,
    is_local_endpoint,
    stack_for,
)


def add_parser(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="dead-letter queues").add_subparsers(dest="action", required=True)

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--stack", help="CloudFormation stack (default on a local endpoint: neruba-local)"
        )
        parser.add_argument("--template", help="SAM template (default: the repository's template.yaml)")
        return parser

    common(dlq.add_parser("list", help="every DLQ with its depth and oldest message age")).set_defaults(
        func=_list
    )
    show = common(dlq.add_parser("show", help="peek at a DLQ's messages without consuming them"))
    show.add_argument("queue")
    show.add_argument("--max", type=bounded_int(1), default=10, help="messages to show (default 10)")
    show.set_defaults(func=_show)
    redrive = common(dlq.add_parser("redrive", help="move a DLQ's messages back to their source queue"))
    redrive.add_argument("queue")
    redrive.add_argument("--max", type=bounded_int(1), help="move at most N messages (needs --mover)")
    redrive.add_argument(
        "--rate", type=bounded_int(1, 500), help="StartMessageMoveTask messages per second (1-500)"
    )
    redrive.add_argument("--mover", action="store_true", help="use the receive-send-delete mover")
    redrive.set_defaults(func=_redrive)
    status = common(dlq.add_parser("status", help="progress of the DLQ's message move tasks"))
    status.add_argument("queue")
    status.set_defaults(func=_status)


def _sqs(**config: Any) -> Any:
    return boto_client("sqs", **config)


def _find(stack: StackInfo, name: str) -> DeadLetterQueue:
    """The DLQ given by its logical id or physical name, or by its source queue's."""
    found = stack.dead_letter_queues()
    for dlq in found.values():
        names = {dlq.logical_id, stack.physical.get(dlq.logical_id, dlq.logical_id)}
        if dlq.source_queue:
            names |= {dlq.source_queue, stack.physical.get(dlq.source_queue, dlq.source_queue)}
        names |= {n.rsplit("/", 1)[-1] for n in list(names)}
        if name in names:
            return dlq
    raise StackError(f"no dead-letter queue {name!r}; known: {', '.join(found)}")


def _pair(stack: StackInfo, name: str) -> tuple[str, str]:
    """(DLQ logical id, source logical id) of a DLQ that has a source queue to move its messages back to."""
    dlq = _find(stack, name)
    if dlq.source_queue is None:
        raise StackError(
            f"{dlq.logical_id} has no source queue: it holds failed runs of {', '.join(dlq.feeders)}, which "
            "cannot be sent back; see docs/runbooks/dlq-redrive.md for what to do instead"
        )
    return dlq.logical_id, dlq.source_queue


def _source_text(dlq: DeadLetterQueue) -> str:
    return dlq.source_queue or f"(functions: {len(dlq.feeders)})"


def _attributes(sqs: Any, url: str) -> dict[str, str]:
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return str(timedelta(seconds=int(seconds)))


def _oldest_age(stack: StackInfo, sqs: Any, url: str, depth: int) -> tuple[float | None, str]:
    """The age of the oldest message: CloudWatch ApproximateAgeOfOldestMessage on AWS, else a peek."""
    if depth == 0:
        return None, "-"
    if not stack.local:
        now = datetime.now(UTC)
        points = boto_client("cloudwatch").get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": url.rsplit("/", 1)[-1]}],
            StartTime=now - timedelta(minutes=15),
            EndTime=now,
            Period=300,
            Statistics=["Maximum"],
        )["Datapoints"]
        if points:
            return float(max(points, key=lambda p: p["Timestamp"])["Maximum"]), "cloudwatch"
        return None, "no datapoint yet"
    from neruba.dal.queues import peek

    sent = [int(m["Attributes"]["SentTimestamp"]) for m in peek(sqs, url, limit=100)]
    return (time.time() - min(sent) / 1000, "peek") if sent else (None, "-")


def _list(args: argparse.Namespace) -> int:
    stack = stack_for(args.stack, args.template)
    sqs = _sqs()
    rows: list[tuple[str, str, str]] = []  # read every queue first: a failure prints no partial table
    for found in stack.dead_letter_queues().values():
        dlq, source = found.logical_id, _source_text(found)
        if dlq not in stack.physical:
            rows.append((dlq, source, f"not in stack {stack.stack_name}"))
            continue
        attributes = _attributes(sqs, stack.resource(dlq))
        depth = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        age, how = _oldest_age(stack, sqs, stack.resource(dlq), depth)
        rows.append((dlq, source, f"{depth:>6} {in_flight:>9}  {_age(age)} ({how})"))
    first = max([len("DLQ"), *(len(row[0]) for row in rows)])
    second = max([len("SOURCE"), *(len(row[1]) for row in rows)])
    print(f"{'DLQ':<{first}} {'SOURCE':<{second}} {'DEPTH':>6} {'IN FLIGHT':>9}  OLDEST")
    for dlq, source, rest in rows:
        print(f"{dlq:<{first}} {source:<{second}} {rest}")
    return 0


def describe(
    source: str | None,
    message: dict[str, Any],
    usage_table: str | None,
    billing_table: str | None = None,
    ops_table: str | None = None,
) -> dict[str, Any]:
    """What an operator needs to see of one DLQ message: for ingest the event key and its stored outcome,
    for the Stripe sync the invoice and the error its last attempt recorded, for a Stripe event the
    status, outcome and error its last processing attempt recorded."""
    attributes = message.get("Attributes", {})
    sent = int(attributes.get("SentTimestamp", 0)) / 1000
    info: dict[str, Any] = {
        "message_id": message["MessageId"],
        "sent_at": datetime.fromtimestamp(sent, UTC).isoformat() if sent else None,
        # the count includes this peek's own receive
        "receives_before_peek": max(0, int(attributes.get("ApproximateReceiveCount", 1)) - 1),
        "message_attributes": {
            k: v.get("StringValue", "<binary>") for k, v in (message.get("MessageAttributes") or {}).items()
        },
    }
    body = message.get("Body", "")
    try:
        data = json.loads(body)
    except ValueError:
        info["body"] = body[:200]
        info["failure_reason"] = "the body is not JSON (a malformed message)"
        return info
    if source == "IngestQueue" and isinstance(data, dict) and isinstance(data.get("e"), dict):
        event = data["e"]
        info["event_key"] = f"{event.get('customer_id')}/{event.get('transaction_id')}"
        info["meter"] = event.get("code")
        info["request_id"] = f"{data.get('rid')}:{data.get('i')}"
        info["failure_reason"] = _stored_reason(usage_table, event)
    elif source == "StripeSyncQueue" and isinstance(data, dict) and isinstance(data.get("invoice_id"), str):
        info["invoice_id"] = data["invoice_id"]
        info["failure_reason"] = _sync_reason(billing_table, data["invoice_id"])
    elif source == "StripeEventsQueue" and isinstance(data, dict) and isinstance(data.get("event_id"), str):
        info["stripe_event_id"] = data["event_id"]
        info["failure_reason"] = _event_reason(ops_table, data["event_id"])
    elif isinstance(data, dict) and isinstance(data.get("requestContext"), dict):
        info.update(_failed_run(data))
    else:
        keys = sorted(data)[:10] if isinstance(data, dict) else []
        info["body_keys"] = keys
        info["body"] = body[:200]
        info["failure_reason"] = "not recorded in the message: see the function's logs for this message id"
    return info


def _failed_run(record: dict[str, Any]) -> dict[str, Any]:
    """A Lambda on-failure destination record: which function, which scheduled run, and its last error."""
    context = record["requestContext"]
    arn = str(context.get("functionArn", ""))
    function = arn.split(":function:", 1)[-1].split(":", 1)[0] if ":function:" in arn else arn
    request = record.get("requestPayload")
    response = record.get("responsePayload")
    error = ""
    if isinstance(response, dict) and (response.get("errorType") or response.get("errorMessage")):
        error = f": {response.get('errorType', 'Error')}: {response.get('errorMessage', '')}"
    return {
        "function": function,
        "scheduled_at": request.get("time") if isinstance(request, dict) else None,
        "failure_reason": (
            f"{context.get('condition', 'failed')} after {context.get('approximateInvokeCount', '?')} "
            f"invocation(s){error}"
        ),
    }


def _stored_reason(usage_table: str | None, event: dict[str, Any]) -> str:
    if not usage_table:
        return "unknown (no UsageTable)"
    from neruba_tools.stackinfo import boto_client as client

    key = {"pk": {"S": f"EVT#{event.get('customer_id')}#{event.get('transaction_id')}"}, "sk": {"S": "#"}}
    item = client("dynamodb").get_item(TableName=usage_table, Key=key, ConsistentRead=True).get("Item")
    if item is None:
        return "no event stored (the worker failed before writing it): see the ingest worker's logs"
    status = item.get("st", {}).get("S")
    reason = item.get("reason", {}).get("S")
    return f"stored status {status}" + (f", reason {reason}" if reason else "")


def _sync_reason(billing_table: str | None, invoice_id: str) -> str:
    if not billing_table:
        return "unknown (no BillingTable)"
    from neruba.dal.invoices import InvoicesRepository

    invoice = InvoicesRepository(billing_table).get(invoice_id)
    if invoice is None:
        return f"no invoice {invoice_id}"
    sync = invoice.stripe or {}
    if not sync.get("last_error"):
        return f"invoice {invoice.status}, no sync error recorded: see the sync function's logs"
    return f"sync {sync.get('status')} after {sync.get('attempts', 0)} attempt(s): {sync['last_error']}"


def _event_reason(ops_table: str | None, event_id: str) -> str:
    if not ops_table:
        return "unknown (no OpsTable)"
    from neruba.dal.stripe_events import StripeEventsRepository

    event = StripeEventsRepository(ops_table).get(event_id)
    if event is None:
        return f"no Stripe event {event_id} stored"
    reason = f"stripe event {event.status} after {event.attempts} attempt(s)"
    details = [str(value) for value in (event.outcome, event.error) if value]
    return reason + (f": {'; '.join(details)}" if details else ", nothing recorded: see the worker's logs")


def _show(args: argparse.Namespace) -> int:
    from neruba.dal.queues import peek

    stack = stack_for(args.stack, args.template)
    found = _find(stack, args.queue)
    dlq, source = found.logical_id, found.source_queue
    messages = peek(_sqs(), stack.resource(dlq), limit=args.max)
    tables = [stack.physical.get(name) for name in ("UsageTable", "BillingTable", "OpsTable")]
    origin = f"source {source}" if source else f"failed runs of {', '.join(found.feeders)}"
    print(f"{dlq} ({origin}): {len(messages)} message(s) shown, all left in the queue")
    for message in messages:
        print(json.dumps(describe(source, message, *tables), sort_keys=True, default=str))
    return 0


def _redrive(args: argparse.Namespace) -> int:
    from neruba.dal.queues import MoveTaskUnavailableError, move_messages, queue_arn, start_move_task

    stack = stack_for(args.stack, args.template)
    dlq, source = _pair(stack, args.queue)
    dlq_url, source_url = stack.resource(dlq), stack.resource(source)
    sqs = _sqs()
    local = is_local_endpoint(endpoint_url())
    use_mover = args.mover
    if args.max is not None and not use_mover:
        if not local:
            print(
                "StartMessageMoveTask moves every message; add --mover to move at most --max.",
                file=sys.stderr,
            )
            return 2
        use_mover = True
    if not use_mover:
        no_retry = _sqs(retries={"max_attempts": 1})
        try:
            handle = start_move_task(no_retry, queue_arn(sqs, dlq_url), queue_arn(sqs, source_url), args.rate)
        except MoveTaskUnavailableError as exc:
            if not local:
                print(f"StartMessageMoveTask failed ({exc}); rerun with --mover to move messages yourself.",
                      file=sys.stderr)  # fmt: skip
                return 1
            print("The local stack has no SQS message move tasks; moving the messages one by one instead.")
            use_mover = True
        else:
            print(f"Started a message move task {dlq} -> {source}: {handle}")
            print(
                f"Follow it with: neruba dlq status {dlq}"
                + (f" --stack {stack.stack_name}" if args.stack else "")
            )
            return 0
    result = move_messages(sqs, dlq_url, source_url, limit=args.max)
    print(f"Moved {len(result.moved)} message(s) {dlq} -> {source} (sent, then deleted from the DLQ).")
    for message_id in result.moved:
        print(f"  moved {message_id}")
    for message_id in result.send_failed:
        print(f"  NOT moved (send failed, left in the DLQ) {message_id}")
    for message_id in result.delete_failed:
        print(f"  sent but not deleted (the next run deletes it; consumers dedupe) {message_id}")
    return 1 if result.send_failed or result.delete_failed else 0


def _status(args: argparse.Namespace) -> int:
    from neruba.dal.queues import MoveTaskUnavailableError, move_tasks, queue_arn

    stack = stack_for(args.stack, args.template)
    dlq, source = _pair(stack, args.queue)
    sqs = _sqs(retries={"max_attempts": 1})
    try:
        tasks = move_tasks(sqs, queue_arn(sqs, stack.resource(dlq)))
    except MoveTaskUnavailableError:
        print(f"{dlq}: this endpoint has no message move tasks (local: the mover runs synchronously).")
        return 0
    if not tasks:
        print(f"{dlq}: no message move tasks.")
    for task in tasks:
        started = datetime.fromtimestamp(int(task.get("StartedTimestamp", 0)) / 1000, UTC).isoformat()
        moved, total = (
            task.get("ApproximateNumberOfMessagesMoved"),
            task.get("ApproximateNumberOfMessagesToMove"),
        )
        line = f"{dlq} -> {source}: {task.get('Status')} moved {moved} of {total}, started {started}"
        if task.get("FailureReason"):
            line += f", failure: {task['FailureReason']}"
        print(line)
    return 0
