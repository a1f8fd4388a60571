"""The shared botocore clients (no AWS call is made: creating a client is local)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from neruba.dal import clients


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    clients.reset_clients()
    yield
    clients.reset_clients()


def test_one_client_per_service_from_one_session() -> None:
    # GIVEN no client yet
    # WHEN two services' clients are asked for, twice each
    dynamodb, sqs = clients.client("dynamodb"), clients.client("sqs")
    # THEN each service has one client, and both come from the same session (its loaded data is shared)
    assert clients.client("dynamodb") is dynamodb and clients.client("sqs") is sqs
    assert dynamodb.meta.service_model.service_name == "dynamodb"
    assert len(clients._sessions) == 1


def test_clients_asked_for_from_many_threads_at_once_are_created_once() -> None:
    # GIVEN eight threads asking for the DynamoDB client at the same moment
    start = threading.Barrier(8)
    got: list[Any] = []

    def ask() -> None:
        start.wait()
        got.append(clients.client("dynamodb"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN they all received the one client
    assert len(got) == 8 and all(c is got[0] for c in got)


def test_reset_forgets_clients_and_session() -> None:
    first = clients.client("dynamodb")
    clients.reset_clients()
    assert clients.client("dynamodb") is not first


def test_a_reset_keeps_the_loaded_service_data_and_reads_credentials_and_endpoint_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a client created once (its session loaded the service model and the endpoint data)
    first = clients.client("dynamodb")
    first_session = clients._sessions[0]
    loads: list[str] = []
    loader = first_session.get_component("data_loader")
    real_load = loader.file_loader.load_file
    monkeypatch.setattr(loader.file_loader, "load_file", lambda path: loads.append(path) or real_load(path))
    # WHEN the clients are reset and the environment changes (what a test switching stacks does)
    clients.reset_clients()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "another-key")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4999")
    second = clients.client("dynamodb")
    # THEN the new client comes from a new session, with the new credentials and endpoint ...
    assert second is not first and clients._sessions[0] is not first_session
    assert second._request_signer._credentials.access_key == "another-key"
    assert second.meta.endpoint_url == "http://127.0.0.1:4999"
    # ... and the same service model, without reading a data file again (parsing them took ~120 ms a reset)
    assert clients._sessions[0].get_component("data_loader") is loader
    assert loads == []
    assert second.meta.service_model.operation_names == first.meta.service_model.operation_names


def _same(handler: Any) -> Any:
    """A handler as the comparison sees it: itself, or by name for a closure a session initializer makes
    for each session (Powertools registers a user-agent handler on every new session that way)."""
    name = getattr(handler, "__qualname__", "")
    return name if "<locals>" in name else handler


def test_a_new_session_has_botocore_s_built_in_handlers_without_registering_them_again() -> None:
    import aws_lambda_powertools  # noqa: F401  (as in every function: its session initializer is registered)
    import botocore.session

    # GIVEN a session made the way botocore makes one, and the clients' session after a reset
    clients.client("sqs")
    clients.reset_clients()
    clients.client("sqs")
    ours, plain = clients._sessions[0], botocore.session.get_session()
    # THEN both hold the same handlers for the same events, in the same order ...
    events = [
        "before-parameter-build.dynamodb.Query", "before-call.sqs.SendMessage", "after-call.dynamodb",
        "choose-signer.sqs", "needs-retry.dynamodb.PutItem", "creating-client-class.sqs",
        "before-sign.dynamodb.TransactWriteItems", "request-created.sqs.ReceiveMessage",
        "provide-client-params.sqs.ReceiveMessage", "docs.*.sqs.ReceiveMessage.complete-section",
    ]  # fmt: skip
    for event in events:
        assert [_same(h) for h in ours._events._emitter._handlers.prefix_search(event)] == [
            _same(h) for h in plain._events._emitter._handlers.prefix_search(event)
        ], event
    assert ours._events._emitter._unique_id_handlers == plain._events._emitter._unique_id_handlers
    # ... and a handler registered on one session is not seen by the next one
    ours.register("before-call.sqs.SendMessage", _marker)
    clients.reset_clients()
    clients.client("sqs")
    assert _marker not in clients._sessions[0]._events._emitter._handlers.prefix_search(
        "before-call.sqs.SendMessage"
    )


def _marker(**_: Any) -> None:
    """A handler only a test registers."""


def test_sessions_made_again_copy_the_built_in_handlers_instead_of_registering_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aws_lambda_powertools  # noqa: F401  (as in every function: its session initializer is registered)
    from botocore.handlers import BUILTIN_HANDLERS
    from botocore.hooks import HierarchicalEmitter

    # GIVEN two sessions made (botocore registered its ~400 built-in handlers one by one, ~8 ms each)
    clients.client("sqs")
    clients.reset_clients()
    clients.client("sqs")
    built_in = {id(row[1]) for row in BUILTIN_HANDLERS}
    registered: list[str] = []
    real = HierarchicalEmitter._register_section

    def counting(emitter: Any, event_name: str, handler: Any, *args: Any, **kwargs: Any) -> None:
        if id(handler) in built_in:  # a session initializer's own handlers (Powertools') are not counted
            registered.append(event_name)
        real(emitter, event_name, handler, *args, **kwargs)

    monkeypatch.setattr(HierarchicalEmitter, "_register_section", counting)
    # WHEN the clients are reset and a client is asked for again
    clients.reset_clients()
    session = clients._new_session()
    # THEN the new session registered none of them again, and still has them
    assert registered == []
    assert session._events._emitter._handlers.prefix_search("before-parameter-build.dynamodb.Query")


def test_a_process_s_first_session_keeps_no_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a process that has made no session yet (a function at its cold start)
    monkeypatch.setattr(clients._Session, "_built_in", None)
    monkeypatch.setattr(clients._Session, "_registered", 0)
    # WHEN its one session is made
    session = clients._new_session()
    # THEN its built-in handlers were registered as botocore registers them, and nothing was copied
    assert clients._Session._built_in is None
    assert session._events._emitter._handlers.prefix_search("before-parameter-build.dynamodb.Query")
