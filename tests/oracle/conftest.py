"""One moto for the oracle's run; every example starts from fresh tables and queues (template.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

_MOCK: list[Any] = []


def fresh_world() -> None:
    """Fresh tables and queues, and nothing the last example cached (contexts, the ingest catalog caches
    holding its meters, clients, settings): ``neruba.bootstrap.reset()``."""
    from neruba import bootstrap
    from tests.oracle.harness import fresh_stripe
    from tests.support.aws import fresh_resources

    bootstrap.reset()
    fresh_resources(_MOCK[0])
    fresh_stripe()


@pytest.fixture
def oracle_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the test environment, whatever a local stack started by an earlier test (integration tests run
    # first and keep theirs for the session) put into os.environ: its endpoint and table names
    from tests.conftest import TEST_ENVIRONMENT

    for name, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    from neruba_tools.local.fake_stripe import FakeStripe
    from tests.oracle.harness import FAKE_STRIPE

    mock = mock_aws()
    mock.start()
    _MOCK.append(mock)
    with FakeStripe() as fake:  # sync-out pushes finalized invoices here (NERUBA_STRIPE_API_BASE)
        monkeypatch.setenv("NERUBA_STRIPE_API_BASE", fake.url)
        FAKE_STRIPE.append(fake)
        try:
            yield
        finally:
            FAKE_STRIPE.clear()
            _MOCK.clear()
            mock.stop()
