"""Fixtures of the client tests: a scripted HTTP transport (httpx MockTransport) and clients on it
that never really sleep (the waits they would have made are recorded)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

try:
    import neruba_client  # noqa: F401 - installed by the Makefile (pip install -e ./clients/python)
except ImportError:  # a virtualenv made before the client existed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Script:
    """Answers requests with the scripted steps in order (the last one repeats) and records them."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)


def error(status: int, code: str, error_type: str = "invalid_request_error", **extra: Any) -> httpx.Response:
    body = {"error": {"type": error_type, "code": code, "message": f"{code} happened", "request_id": "req-1"}}
    body["error"].update(extra.pop("fields", {}))
    return httpx.Response(status, json=body, **extra)


def customer(external_id: str = "acme") -> dict[str, Any]:
    return {
        "external_id": external_id,
        "name": "Acme",
        "currency": "USD",
        "email": None,
        "timezone": "UTC",
        "metadata": {},
        "stripe_customer_id": None,
        "created_at": "2026-01-31T12:00:00Z",
    }


def invoice(invoice_id: str, customer_id: str) -> dict[str, Any]:
    return {
        "object": "invoice",
        "id": invoice_id,
        "number": None,
        "customer_id": customer_id,
        "currency": "USD",
        "status": "payment_failed",
        "period_start": "2026-01-01T00:00:00Z",
        "period_end": "2026-02-01T00:00:00Z",
        "lines": [],
        "subtotal_minor": 1250,
        "credits_applied_minor": 0,
        "total_minor": 1250,
    }


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Callable[..., Any]:
    from neruba_client import Neruba

    def make(script: Script, **options: Any) -> Neruba:
        return Neruba(
            "nrb_test_key",
            base_url="https://api.example.test/base",
            http_transport=httpx.MockTransport(script),
            sleep=options.pop("sleep", sleeps),
            **options,
        )

    return make


@pytest.fixture(scope="package")
def local_stack() -> Any:
    """A local stack of its own for the client's integration test (package-scoped, like
    tests/integration's: it stops when the client tests are done)."""
    from tests.support.stack import started_local_stack

    with started_local_stack("neruba-client-it") as stack:
        yield stack
