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
