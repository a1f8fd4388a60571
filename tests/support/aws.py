"""Tables and queues for in-process moto tests, created from template.yaml (never a second list)."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
PREFIX = "test"


def create_resources() -> dict[str, str]:
    """Create every table and queue the template declares; returns logical id -> name or URL."""
    from neruba_tools.local.provision import provision_template

    return provision_template(copy.deepcopy(_template()), stack_name=PREFIX)


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
