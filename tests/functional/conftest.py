"""Functional tests: handlers and use cases against in-process moto (one mock for the session, reset
between tests), with the tables and queues of template.yaml."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from neruba import bootstrap
from neruba.settings import get_settings
from tests.support.aws import fresh_resources


@pytest.fixture(scope="session")
def _moto() -> Iterator[Any]:
    mock = mock_aws()
    mock.start()
    yield mock
    mock.stop()


@pytest.fixture
def aws(_moto: Any) -> Iterator[dict[str, str]]:
    """Fresh tables and queues for one test (every moto backend reset, then the template's tables and
    queues restored empty: ``fresh_resources``)."""
    bootstrap.reset()
    yield fresh_resources(_moto)
    bootstrap.reset()


@pytest.fixture
def catalog(aws: dict[str, str]) -> Any:
    """A catalog with customers acme and globex and meters of every aggregation."""
    from neruba.dal.catalog import CatalogRepository
    from neruba.models.catalog import Customer, Meter

    repo = CatalogRepository(get_settings().catalog_table)
    for external_id in ("acme", "globex"):
        repo.create_customer(Customer(external_id=external_id, name=external_id.title(), currency="USD"))
    repo.create_meter(Meter(code="api_calls", name="API calls", aggregation="count"))
    repo.create_meter(
        Meter(code="tokens", name="Tokens", aggregation="sum", field="tokens", group_by=["model"])
    )
    repo.create_meter(Meter(code="storage_gb", name="Peak storage", aggregation="max", field="gb"))
    repo.create_meter(Meter(code="seats", name="Active seats", aggregation="unique_count", field="user"))
    repo.create_meter(Meter(code="plan_level", name="Plan level", aggregation="latest", field="level"))
    repo.create_meter(Meter(code="eu_calls", name="EU calls", aggregation="count", filters={"region": "eu"}))
    return repo


@pytest.fixture
def atomic_requests(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each DynamoDB request applied whole, as DynamoDB applies it. moto in-process applies a request's
    parts while other threads run (seen: 'dictionary changed size during iteration', and one condition
    passed by two transactions at once), so tests that run threads serialize the requests; the threads
    still interleave between requests, which is where the code's own races live."""
    from neruba.dal.clients import client

    dynamodb = client("dynamodb")
    real = dynamodb._make_api_call
    lock = threading.Lock()

    def one_at_a_time(operation: str, params: dict[str, Any]) -> Any:
        with lock:
            return real(operation, params)

    monkeypatch.setattr(dynamodb, "_make_api_call", one_at_a_time)
