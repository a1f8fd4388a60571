"""Lazily created, cached botocore clients, all from one botocore session.

Clients are created on first use, not at import, so a function pays only for the clients it really calls.
They are plain botocore clients (what ``boto3.client`` returns too); values are converted with boto3's
``TypeSerializer`` in ``dal.dynamo``. botocore itself is imported here, at import time, because
every function that imports this module calls AWS on its first invocation anyway: its import belongs to
the cold start (where Lambda runs it at full speed), not to the first request.

One session serves every client: the session caches what it loads (endpoint rules, partitions, the list
of services), so a function's second client (SQS after DynamoDB, say) costs ~3 ms instead of ~50 ms. A
botocore session is not thread-safe (clients are), so clients are created under a lock.

``AWS_ENDPOINT_URL`` (set by the local stack and the tests) points every client at a moto server without
any code here knowing about it.
"""

from __future__ import annotations

import threading
from typing import Any

import botocore.session
from botocore.config import Config

_CONFIG_KW = {"connect_timeout": 3, "read_timeout": 10, "retries": {"mode": "standard", "max_attempts": 4}}
_lock = threading.Lock()
_clients: dict[str, Any] = {}
_sessions: list[Any] = []  # the one session, once created


def client(service: str) -> Any:
    """The shared botocore client for ``service`` ("dynamodb", "sqs", ...).

    Example:
        >>> client("dynamodb") is client("dynamodb")  # doctest: +SKIP
        True
    """
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            if not _sessions:
                _sessions.append(botocore.session.get_session())
            _clients[service] = _sessions[0].create_client(service, config=Config(**_CONFIG_KW))
        return _clients[service]


def reset_clients() -> None:
    """Forget every client and the session (tests that switch endpoints or credentials call this)."""
    with _lock:
        _clients.clear()
        _sessions.clear()
