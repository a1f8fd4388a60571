"""Test-wide environment: fake AWS credentials, Neruba settings, no metric output, no real AWS."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "neruba",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "NERUBA_STAGE": "local",
    "NERUBA_KEYS_TABLE": "test-KeysTable",
    "NERUBA_CATALOG_TABLE": "test-CatalogTable",
    "NERUBA_USAGE_TABLE": "test-UsageTable",
    "NERUBA_BILLING_TABLE": "test-BillingTable",
    "NERUBA_LEDGER_TABLE": "test-LedgerTable",
    "NERUBA_OPS_TABLE": "test-OpsTable",
    "NERUBA_INGEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-IngestQueue",
    "NERUBA_BILLING_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-BillingQueue",
    "NERUBA_STRIPE_EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-StripeEventsQueue",
    "NERUBA_STRIPE_SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-StripeSyncQueue",
    "NERUBA_WEBHOOK_DELIVERY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-WebhookDeliveryQueue",
    "NERUBA_DOCS_ENABLED": "true",
    "NERUBA_STRIPE_SECRET_NAME": "/neruba/stripe",
}
for _key, _value in TEST_ENVIRONMENT.items():
    os.environ[_key] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(autouse=True)
def _fresh_wiring() -> Iterator[None]:
    """Each test starts from an empty composition root: its own settings (a test that patches NERUBA_*
    variables must not leave them cached for the next one), clients, contexts and caches, and nothing a
    test installed in ``neruba.bootstrap`` survives it."""
    from neruba import bootstrap

    bootstrap.reset()
    yield
    bootstrap.reset()
