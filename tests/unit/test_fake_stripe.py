"""The fake Stripe server honours idempotency keys the way Stripe API v1 does (through the real library)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from neruba_tools.local.fake_stripe import FakeStripe


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


@pytest.fixture
def client(fake: FakeStripe) -> Any:
    return stripe.StripeClient("sk_test_fake", base_addresses={"api": fake.url}, max_network_retries=0)


def test_same_key_same_params_replays_the_first_object(fake: FakeStripe, client: Any) -> None:
    first = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k1"})
    again = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k1"})
    assert first.id == again.id and len(fake.customers) == 1


def test_same_key_other_params_is_an_idempotency_error(fake: FakeStripe, client: Any) -> None:
    client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"name": "Other"}, options={"idempotency_key": "k1"})
    assert len(fake.customers) == 1


def test_an_injected_500_is_saved_under_its_key_like_stripe(fake: FakeStripe, client: Any) -> None:
    # GIVEN the next customer create fails with a 500
    fake.fail_next("/v1/customers", 1)
    with pytest.raises(stripe.APIError):
        client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k1"})
    # THEN the same key replays the 500, while a new key works
    with pytest.raises(stripe.APIError):
        client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k1"})
    created = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k2"})
    assert list(fake.customers) == [created.id]


def test_invoice_flow_items_and_finalize(fake: FakeStripe, client: Any) -> None:
    customer = client.v1.customers.create(params={"name": "Acme"})
    invoice = client.v1.invoices.create(
        params={"customer": customer.id, "metadata": {"neruba_invoice_id": "in_1"}}
    )
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": invoice.id, "amount": 700, "currency": "usd"}
    )
    finalized = client.v1.invoices.finalize_invoice(invoice.id)
    assert finalized.status == "open" and finalized.total == 700
    assert client.v1.invoices.retrieve(invoice.id).metadata["neruba_invoice_id"] == "in_1"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.finalize_invoice(invoice.id)
