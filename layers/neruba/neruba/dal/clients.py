"""Lazily created, cached botocore clients.

Clients are created on first use, not at import, so a function pays only for the clients it really calls.
They are plain botocore clients (what ``boto3.client`` returns too): boto3's own layer (its session,
resources and s3transfer) is never imported. botocore itself is imported here, at import time, because
every function that imports this module calls AWS on its first invocation anyway: its import belongs to
the cold start (where Lambda runs it at full speed), not to the first request. ``AWS_ENDPOINT_URL`` (set by
the local stack and the tests) points every client at a moto server without any code here knowing about it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config

_CONFIG_KW = {"connect_timeout": 3, "read_timeout": 10, "retries": {"mode": "standard", "max_attempts": 4}}


@cache
def client(service: str) -> Any:
    """A shared botocore client for ``service`` ("dynamodb", "sqs", ...).

    Example:
        >>> client("dynamodb").meta.service_model.service_name  # doctest: +SKIP
        'dynamodb'
    """
    # one session per client, as boto3.client did: a botocore session is not safe to share across threads
    return botocore.session.get_session().create_client(service, config=Config(**_CONFIG_KW))


def reset_clients() -> None:
    """Forget every client (tests that switch endpoints or credentials call this)."""
    client.cache_clear()
