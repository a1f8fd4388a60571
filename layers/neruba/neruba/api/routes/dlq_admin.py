"""Dead-letter queues (admin scope): their depths, and a redrive back to the source queue (audited); the
stack's alarms in alarm."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import bootstrap
from neruba.api.params import ADMIN, IdempotencyKey, answer, scoped_responses
from neruba.api.resolver import request_id_of
from neruba.api.responses import json_response
from neruba.api.scopes import BEARER_SECURITY, current_principal
from neruba.logic.idempotency import Actor
from neruba.models.ops import RedriveRequest
from neruba.models.views import AlarmList, DeadLetterQueueList, DlqRedrive
from neruba.settings import get_settings

router = APIGatewayRouter()
QueueName = Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9]{0,63}$")]
ERRORS = scoped_responses(
    "admin",
    {
        400: {"description": "The queue has no source queue (queue_not_redrivable)"},
        404: {"description": "No such dead-letter queue (queue_not_found)"},
        409: {"description": "The Idempotency-Key was used for another request"},
        422: {"description": "The body or a parameter does not match the schema"},
        503: {"description": "SQS could not start a message move task"},
    },
)


@router.get(
    "/admin/dlqs",
    summary="Dead-letter queues with their depths",
    tags=["operations"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={200: answer(DeadLetterQueueList, "Every dead-letter queue of the stack"), **ERRORS},
)
def list_dlqs() -> Response[str]:
    from neruba.logic.operations.dead_letters import list_queues

    return json_response(list_queues(bootstrap.dead_letters()))


@router.get(
    "/admin/alarms",
    summary="The stack's CloudWatch alarms in alarm",
    tags=["operations"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={
        200: answer(AlarmList, "Every alarm of the stack whose state is ALARM"),
        **scoped_responses("admin", {}),
    },
)
def list_alarms() -> Response[str]:
    """Found by the name prefix of the stack's alarms; the local stack has none (an empty list)."""
    from neruba.logic.operations.alarms import list_alarms as listed

    return json_response(listed(get_settings().alarm_prefix))


@router.post(
    "/admin/dlqs/<name>/redrive",
    summary="Move a dead-letter queue's messages back to their source queue (audited)",
    tags=["operations"],
    security=BEARER_SECURITY,
    middlewares=ADMIN,
    responses={200: answer(DlqRedrive, "The redrive: messages moved, or the move task started"), **ERRORS},
)
def redrive_dlq(
    name: QueueName,
    body: Annotated[RedriveRequest, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[str]:
    """On AWS starts an SQS message move task; on the local stack (no move tasks) moves the messages
    before answering. Audited as ``dlq.redrive`` under ``_global``; the same Idempotency-Key gets the
    first answer back."""
    from neruba.logic.operations.dead_letters import redrive

    by = Actor(current_principal(router).actor, request_id_of(router))
    return json_response(
        redrive(
            bootstrap.dead_letters(),
            name,
            by=by,
            reason=body.reason,
            ticket=body.ticket,
            idempotency_key=idempotency_key,
            move_now=get_settings().stage == "local",
        )
    )
