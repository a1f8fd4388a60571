"""Stripe fixtures: the secret parameter in moto SSM, one stored invoice, signed deliveries, the worker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from neruba.settings import get_settings
from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import BASIC, World, make_world
from tests.support.api import api_event, call
from tests.support.aws import queue_url
from tests.support.invoices import Books, add_customer, store_invoice
from tests.support.queues import drain
from tests.support.stripe_events import OLD_SECRET, SECRET, encode, sign

PARAMETER = "/neruba/test/stripe"


@pytest.fixture
def stripe_secret(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Put the Stripe parameter in moto SSM (current + previous webhook secret); returns a re-putter."""
    from neruba.logic.stripe.secrets import clear_cache

    def put(secrets: list[str], api_key: str = "sk_test_neruba") -> None:
        boto3.client("ssm").put_parameter(
            Name=PARAMETER,
            Type="SecureString",
            Overwrite=True,
            Value=json.dumps({"api_key": api_key, "webhook_secrets": secrets}),
        )
        clear_cache()

    monkeypatch.setenv("NERUBA_STRIPE_SECRET_NAME", PARAMETER)
    get_settings.cache_clear()
    put([SECRET, OLD_SECRET])
    yield put  # type: ignore[misc]
    clear_cache()
    get_settings.cache_clear()


@pytest.fixture
def ports(aws: dict[str, str]) -> Books:
    """The real Stripe effects and invoice source (``neruba.bootstrap``) over one stored invoice: in_ours_1
    (acme, 5000 USD), finalized, posted to the ledger and synced as Stripe invoice in_stripe_in_ours_1."""
    add_customer("acme")
    store_invoice(
        {
            "id": "in_ours_1",
            "customer_id": "acme",
            "currency": "USD",
            "total_minor": 5000,
            "stripe": {"status": "synced", "invoice_id": "in_stripe_in_ours_1"},
        }
    )
    return Books()


@pytest.fixture
def deliver(stripe_secret: Any) -> Callable[..., tuple[int, Any]]:
    """POST a Stripe event to the webhook handler, signed with the current secret unless told otherwise."""
    from functions.stripe_webhook.app import lambda_handler

    def _deliver(
        payload: dict[str, Any] | bytes,
        *,
        secret: str = SECRET,
        signature: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[int, Any]:
        raw = payload if isinstance(payload, bytes) else encode(payload)
        event = api_event("POST", "/webhooks/stripe", raw_body=raw.decode("utf-8"), scopes=None)
        event["headers"]["Stripe-Signature"] = (
            signature if signature is not None else sign(raw, secret, timestamp)
        )
        status, body, _ = call(lambda_handler, event)
        return status, body

    return _deliver


@pytest.fixture
def process(ports: Books) -> Callable[[], int]:
    """Run the Stripe worker until StripeEventsQueue is empty."""
    from functions.stripe_worker.app import lambda_handler

    return lambda: drain(lambda_handler, queue_url("StripeEventsQueue"), batch_size=10)


@pytest.fixture
def stored() -> Callable[[str], dict[str, Any] | None]:
    from neruba.dal.stripe_events import StripeEventsRepository

    def _stored(event_id: str) -> dict[str, Any] | None:
        found = StripeEventsRepository(get_settings().ops_table).get(event_id)
        return None if found is None else found.view()

    return _stored


@pytest.fixture
def admin() -> Callable[..., tuple[int, Any]]:
    """Call the Stripe admin API (admin scope unless ``scopes`` says otherwise)."""
    from functions.stripe_admin_api.app import lambda_handler

    def _admin(method: str, path: str, *, scopes: str = "admin", **kw: Any) -> tuple[int, Any]:
        status, body, _ = call(lambda_handler, api_event(method, path, scopes=scopes, **kw))
        return status, body

    return _admin


# ---------------------------------------------------------------- the real modules end to end
E2E_CUSTOMER = "acme"


@pytest.fixture
def world(aws: dict[str, str]) -> World:
    """Billing on the real collaborators (daily windows, the "basic" plan at 0.10 per API call) for acme."""
    return make_world(BASIC, {E2E_CUSTOMER: {"email": "billing@acme.test"}})


@pytest.fixture
def fake(stripe_secret: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        monkeypatch.setenv("NERUBA_STRIPE_API_BASE", server.url)
        yield server
