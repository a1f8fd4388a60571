"""Tables and queues for in-process moto tests, created from template.yaml (never a second list)."""

from __future__ import annotations

import copy
import functools
import os
import threading
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
PREFIX = "test"


def create_resources() -> dict[str, str]:
    """Create every table and queue the template declares; returns logical id -> name or URL."""
    from neruba_tools.local.provision import provision_template

    return provision_template(copy.deepcopy(_template()), stack_name=PREFIX)


def fresh_resources(mock: Any) -> dict[str, str]:
    """Reset every moto backend, then give back the template's tables and queues as they were right after
    they were first created: empty, with their indexes, TTL and queue attributes as declared, whatever the
    last test wrote, deleted or changed.

    Creating them through boto3 took most of a functional test's setup, so the first call creates them
    and keeps a copy of the DynamoDB and SQS backends' state; later calls install a deep copy of it into
    the fresh backends (no object is shared between two tests).
    """
    mock.reset()
    if not _SNAPSHOT:
        names = create_resources()
        _SNAPSHOT["names"] = names
        _SNAPSHOT["state"] = {service: _copy_state(_backend(service).__dict__) for service in _SNAPSHOTTED}
    for service, state in _SNAPSHOT["state"].items():
        _backend(service).__dict__.update(_copy_state(state))
    return dict(_SNAPSHOT["names"])


_SNAPSHOTTED = ("dynamodb", "sqs")
_SNAPSHOT: dict[str, Any] = {}


def _backend(service: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends
    from moto.sqs.models import sqs_backends

    from neruba_tools.local.intrinsics import ACCOUNT_ID, REGION

    backends = {"dynamodb": dynamodb_backends, "sqs": sqs_backends}[service]
    return backends[ACCOUNT_ID][REGION]


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a backend's attributes; each SQS queue gets a lock of its own (locks cannot be
    copied)."""
    memo: dict[int, Any] = {}
    for queue in (state.get("queues") or {}).values():
        memo[id(queue._messages_lock)] = threading.Condition()
    return copy.deepcopy(state, memo)


@functools.cache
def _template() -> dict[str, Any]:
    """template.yaml parsed once per test session (parsing it took 0.17 s for every test)."""
    from neruba_tools.local.intrinsics import load_template

    return load_template(TEMPLATE)


def queue_url(logical_id: str) -> str:
    return f"https://sqs.{os.environ['AWS_DEFAULT_REGION']}.amazonaws.com/123456789012/{PREFIX}-{logical_id}"


def receive_all(sqs: Any, url: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Drain up to ``limit`` visible messages (without deleting them)."""
    messages: list[dict[str, Any]] = []
    while len(messages) < limit:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            break
        messages.extend(batch)
    return messages
