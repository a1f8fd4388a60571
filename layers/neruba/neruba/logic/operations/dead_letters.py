"""Dead-letter queues through the API: their depths, and a redrive that is audited and idempotent.

A redrive moves every message of a DLQ back to the queue it failed from. On AWS it starts an SQS message
move task (the answer carries its handle; the move runs on in SQS); on the local stack, which has no move
tasks, the messages are moved at once (send first, delete after, ``dal.queues.move_messages``). The audit
record (``dlq.redrive``, under ``_global``) and the first answer of the ``Idempotency-Key`` are written in
one transaction after the move: a retry with the same key gets that answer back and moves nothing; a
crash between the move and that transaction leaves no record, and the retry moves what is left (nothing,
or the messages that came back since), which every consumer takes idempotently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from neruba import bootstrap
from neruba.dal.dead_letters import DeadLetterQueues
from neruba.dal.queues import MoveTaskUnavailableError
from neruba.dal.transaction import Transaction, commit
from neruba.errors import InvalidRequestError, NotFoundError, ServiceUnavailableError
from neruba.logic import idempotency
from neruba.timefmt import iso

SCOPE = "dlq-redrive"


def list_queues(queues: DeadLetterQueues) -> dict[str, Any]:
    """Every configured DLQ with its source queue and its counts (one list page)."""
    data = []
    for queue in queues.queues.values():
        depth, in_flight = queues.counts(queue)
        data.append(
            {
                "object": "dead_letter_queue",
                "name": queue.name,
                "source_queue": queue.source_name,
                "redrivable": queue.source_url is not None,
                "depth": depth,
                "in_flight": in_flight,
            }
        )
    return {"object": "list", "data": data, "has_more": False, "next_cursor": None}


def redrive(
    queues: DeadLetterQueues,
    name: str,
    *,
    by: idempotency.Who,
    reason: str,
    ticket: str | None,
    idempotency_key: str | None,
    move_now: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Move the messages of DLQ ``name`` back to its source queue and audit it (see the module doc)."""
    now = now or datetime.now(UTC)
    billing = bootstrap.billing_records()
    request = idempotency.fingerprint({"reason": reason, "ticket": ticket}, name)
    replayed = idempotency.replay(billing, SCOPE, idempotency_key, request)
    if replayed is not None:
        return dict(replayed)
    queue = queues.find(name)
    if queue is None:
        known = ", ".join(queues.queues) or "none"
        raise NotFoundError(
            f"No dead-letter queue '{name}' (known: {known}).", code="queue_not_found", param="name"
        )
    if queue.source_url is None:
        raise InvalidRequestError(
            f"{name} holds failed runs of scheduled functions and has no source queue to send them back to.",
            code="queue_not_redrivable",
            param="name",
        )
    depth, _ = queues.counts(queue)
    answer: dict[str, Any] = {
        "object": "dlq_redrive",
        "queue": name,
        "source_queue": queue.source_name,
        "depth_before": depth,
        "redriven_at": iso(now),
        "method": "moved" if move_now else "move_task",
        "moved": None,
        "not_moved": None,
        "task_handle": None,
    }
    if move_now:
        result = queues.move(queue)
        answer["moved"] = len(result.moved)
        answer["not_moved"] = len(result.send_failed) + len(result.delete_failed)
    else:
        try:
            answer["task_handle"] = queues.start_move_task(queue)
        except MoveTaskUnavailableError as exc:
            raise ServiceUnavailableError(f"SQS could not start a message move task: {exc}") from exc
    audit = idempotency.audit_put(
        bootstrap.audit(),
        by,
        "dlq.redrive",
        name,
        at=now,
        reason=reason,
        ticket=ticket,
        before={"depth": depth},
        after={k: answer[k] for k in ("method", "moved", "not_moved", "task_handle")},
        idempotency_key=idempotency_key,
    )
    commit(Transaction(idempotency.record_items(billing, audit, SCOPE, idempotency_key, request, answer)))
    return answer
