"""The fake Stripe server honours idempotency keys the way Stripe API v1 does (through the real library)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from neruba_tools.local.fake_stripe import FakeStripe
from tests.support.webhook_receiver import Receiver


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


def _open_invoice(client: Any, amount: int = 1250) -> Any:
    customer = client.v1.customers.create(params={"name": "Acme"})
    invoice = client.v1.invoices.create(
        params={
            "customer": customer.id,
            "metadata": {"neruba_invoice_id": "in_ours", "neruba_customer_id": "a"},
        }
    )
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": invoice.id, "amount": amount, "currency": "usd"}
    )
    return client.v1.invoices.finalize_invoice(invoice.id)


def test_paying_an_open_invoice_delivers_one_invoice_paid_signed_over_the_raw_body(
    fake: FakeStripe, client: Any
) -> None:
    # GIVEN a webhook endpoint and an open invoice
    receiver = Receiver()
    fake.set_webhook(receiver.url, "whsec_unit")
    invoice = _open_invoice(client)
    # WHEN it is paid
    paid = client.v1.invoices.pay(invoice.id)
    # THEN it is paid in full and the endpoint got one event the stripe library verifies
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 1250, 0)
    assert paid.charge.startswith("ch_") and paid.payment_intent.startswith("pi_")
    [(raw, header)] = receiver.received
    event = stripe.Webhook.construct_event(raw.decode(), header, "whsec_unit")
    assert event.type == "invoice.paid" and event.id.startswith("evt_")
    obj = event.data.object
    assert (obj.id, obj.amount_paid, obj.total, obj.customer) == (invoice.id, 1250, 1250, invoice.customer)
    assert obj.metadata["neruba_invoice_id"] == "in_ours"
    assert fake.deliveries[-1]["status"] == 200 and fake.deliveries[-1]["object_id"] == invoice.id
    # AND another secret does not verify it
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(raw.decode(), header, "whsec_other")
    # AND a second payment is refused without a second event
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(invoice.id)
    assert len(receiver.received) == 1


def test_a_draft_cannot_be_paid(fake: FakeStripe, client: Any) -> None:
    customer = client.v1.customers.create(params={"name": "Acme"})
    draft = client.v1.invoices.create(params={"customer": customer.id})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(draft.id)
    assert fake.invoices[draft.id]["status"] == "draft"


def test_with_an_api_key_another_key_is_refused() -> None:
    with FakeStripe(api_key="sk_test_right") as fake:
        wrong = stripe.StripeClient("sk_test_wrong", base_addresses={"api": fake.url}, max_network_retries=0)
        with pytest.raises(stripe.AuthenticationError):
            wrong.v1.customers.create(params={"name": "Acme"})
        right = stripe.StripeClient("sk_test_right", base_addresses={"api": fake.url}, max_network_retries=0)
        created = right.v1.customers.create(params={"name": "Acme"})
        assert len(fake.customers) == 1
        # AND curl's basic auth (the key as user name) works as on Stripe
        assert _basic_get(f"{fake.url}/v1/customers/{created.id}", "sk_test_right") == (200, created.id)
        assert _basic_get(f"{fake.url}/v1/customers/{created.id}", "sk_test_wrong") == (401, None)


def _basic_get(url: str, key: str) -> tuple[int, str | None]:
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{key}:".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())["id"]
    except urllib.error.HTTPError as error:
        return error.code, None


def test_a_dump_loaded_into_a_new_server_keeps_objects_and_never_reuses_an_id(
    fake: FakeStripe, client: Any
) -> None:
    invoice = _open_invoice(client)
    with FakeStripe() as restarted:
        restarted.load(fake.dump())
        again = stripe.StripeClient(
            "sk_test_fake", base_addresses={"api": restarted.url}, max_network_retries=0
        )
        assert again.v1.invoices.retrieve(invoice.id).total == 1250
        created = again.v1.customers.create(params={"name": "Next"})
        assert created.id not in fake.customers and created.id not in fake.invoices
