"""Lazily created, cached boto3 clients.

Clients are created on first use, not at import, so a cold start pays only for the clients a function
really calls. ``AWS_ENDPOINT_URL`` (set by the local stack and the tests) points every client at a moto
server without any code here knowing about it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

_CONFIG_KW = {"connect_timeout": 3, "read_timeout": 10, "retries": {"mode": "standard", "max_attempts": 4}}


@cache
def client(service: str) -> Any:
    """A shared boto3 client for ``service`` ("dynamodb", "sqs", ...)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(service, config=Config(**_CONFIG_KW))


def reset_clients() -> None:
    """Forget every client (tests that switch endpoints or credentials call this)."""
    client.cache_clear()
