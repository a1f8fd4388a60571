"""Lazily created, cached botocore clients, all from one botocore session.

Clients are created on first use, not at import, so a function pays only for the clients it really calls.
They are plain botocore clients (what ``boto3.client`` returns too); values are converted with boto3's
``TypeSerializer`` in ``dal.dynamo``. botocore itself is imported here, at import time, because
every function that imports this module calls AWS on its first invocation anyway: its import belongs to
the cold start (where Lambda runs it at full speed), not to the first request.

One session serves every client: the session caches what it loads (endpoint rules, partitions, the list
of services), so a function's second client (SQS after DynamoDB, say) costs ~3 ms instead of ~50 ms. A
botocore session is not thread-safe (clients are), so clients are created under a lock.

``reset_clients`` forgets the clients and the session (credentials, region and endpoint are read again),
but not the session's data loader: it only reads botocore's data files (service models, endpoint rules,
partitions), which never change while the process runs. Every later session gets the same loader, so a
reset costs ~20 ms instead of ~130 ms of parsing those files again (the tests reset before every test).
Likewise, once a process makes sessions again, a new session starts from a copy of botocore's built-in
event handlers (the copy botocore itself makes for every client) instead of registering its ~400 handlers
one by one (~8 ms); handlers registered later on a session stay on that session.

``AWS_ENDPOINT_URL`` (set by the local stack and the tests) points every client at a moto server without
any code here knowing about it.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.hooks import EventAliaser

_CONFIG_KW = {"connect_timeout": 3, "read_timeout": 10, "retries": {"mode": "standard", "max_attempts": 4}}
_lock = threading.Lock()
_clients: dict[str, Any] = {}
_sessions: list[Any] = []  # the one session, once created
_loaders: dict[Any, Any] = {}  # botocore data path -> the data loader of the first session that used it


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
                _sessions.append(_new_session())
            _clients[service] = _sessions[0].create_client(service, config=Config(**_CONFIG_KW))
        return _clients[service]


class _Session(botocore.session.Session):  # type: ignore[misc]  # botocore has no type hints
    """botocore's session; from the third one in a process, the built-in handlers are a copy of the
    second one's (a function makes one session: it pays neither the copy nor anything else)."""

    _built_in: Any = None  # the second session's emitter right after its built-in handlers were registered
    _registered = 0  # sessions that registered the built-in handlers one by one

    def _register_builtin_handlers(self, events: Any) -> None:
        if _Session._built_in is None:
            super()._register_builtin_handlers(events)
            _Session._registered += 1
            if _Session._registered > 1:  # sessions made again (tests reset): keep them for the next ones
                _Session._built_in = copy.copy(self._original_handler)  # type: ignore[has-type]
            return
        emitter = copy.copy(_Session._built_in)
        emitter._lookup_cache = {}  # the copy shares the original's cache of handlers per event otherwise
        self._original_handler = emitter
        self._events = EventAliaser(emitter)


def _new_session() -> Any:
    """A new botocore session reading its configuration afresh, with the process's data loader for its
    data path (the first session's, which keeps what it parsed)."""
    session = _Session()
    data_path = session.get_config_variable("data_path")
    loader = _loaders.get(data_path)
    if loader is None:
        _loaders[data_path] = session.get_component("data_loader")
    else:
        session.register_component("data_loader", loader)
    return session


def reset_clients() -> None:
    """Forget every client and the session (tests that switch endpoints or credentials call this); the
    parsed data files stay (``_new_session``)."""
    with _lock:
        _clients.clear()
        _sessions.clear()
