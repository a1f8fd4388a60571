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
