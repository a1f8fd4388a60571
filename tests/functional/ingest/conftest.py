"""Ingest fixtures: send events through the real API handler, run the real worker over the queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.api import api_event, call
from tests.support.aws import queue_url
from tests.support.queues import drain


@pytest.fixture
def send(catalog: Any) -> Callable[..., dict[str, Any]]:
    """POST events to /v1/events; returns the 202 body."""
    from functions.ingest_api.app import lambda_handler

    def _send(*events: dict[str, Any]) -> dict[str, Any]:
        status, body, _ = call(lambda_handler, api_event("POST", "/v1/events", body={"events": list(events)}))
        assert status == 202, body
        return body

    return _send


@pytest.fixture
def enqueue(aws: dict[str, str]) -> Callable[..., None]:
    """Queue events as ``POST /v1/events`` would, without its checks: what reaches the worker by other
    means (a redrive, a message written before a rule, the catalog changed since the request)."""
    from datetime import UTC, datetime

    from neruba.dal.queue import send_batch
    from neruba.logic.ingest.api import queue_message
    from neruba.models.events import UsageEventIn

    def _enqueue(*events: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        messages = [
            (str(i), queue_message(UsageEventIn.model_validate(e), "direct", i, now))
            for i, e in enumerate(events)
        ]
        assert send_batch(queue_url("IngestQueue"), messages) == []

    return _enqueue


@pytest.fixture
def worker() -> Any:
    from functions.ingest_worker import app

    return app.lambda_handler


@pytest.fixture
def process(worker: Any) -> Callable[..., int]:
    """Run the ingest worker until the ingest queue is empty."""
    return lambda batch_size=100: drain(worker, queue_url("IngestQueue"), batch_size=batch_size)


@pytest.fixture
def read() -> Callable[..., tuple[int, Any]]:
    from functions.read_api.app import lambda_handler

    def _read(
        path: str, query: dict[str, str] | None = None, path_parameters: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        status, body, _ = call(
            lambda_handler,
            api_event("GET", path, query=query, path_parameters=path_parameters, scopes="read"),
        )
        return status, body

    return _read


def ev(tx: str, customer: str = "acme", code: str = "api_calls", **fields: Any) -> dict[str, Any]:
    return {"transaction_id": tx, "customer_id": customer, "code": code, **fields}


def event_of(read: Callable[..., tuple[int, Any]], tx: str, customer: str = "acme") -> Any:
    """``GET /v1/events/{tx}`` for the customer; the 200 body."""
    status, body = read(
        f"/v1/events/{tx}", query={"customer_id": customer}, path_parameters={"transaction_id": tx}
    )
    assert status == 200, body
    return body
