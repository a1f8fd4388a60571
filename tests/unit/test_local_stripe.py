"""The local stack's Stripe parameter and banner: a local test key and one webhook secret, kept across
restarts; ``--no-stripe`` leaves the key empty (sync-out says ``stripe_not_configured``)."""

from __future__ import annotations

import contextlib
import json
import threading
from types import SimpleNamespace
from typing import Any

import boto3
import stripe
from moto import mock_aws

from neruba_tools.local.run import banner
from neruba_tools.local.stripe_local import LOCAL_API_KEY, LocalStripe, ensure_parameter
from tests.support.webhook_receiver import Receiver


def _stored(ssm: Any) -> dict[str, Any]:
    return dict(
        json.loads(ssm.get_parameter(Name="/neruba/stripe", WithDecryption=True)["Parameter"]["Value"])
    )


@mock_aws
def test_the_parameter_gets_the_local_key_and_keeps_its_webhook_secret() -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    # GIVEN no parameter (moto's accounts live in the process: an earlier test may have left one)
    with contextlib.suppress(ssm.exceptions.ParameterNotFound):
        ssm.delete_parameter(Name="/neruba/stripe")
    # THEN one is written with the key and a new secret
    secret = ensure_parameter(ssm, "/neruba/stripe", LOCAL_API_KEY)
    assert secret.startswith("whsec_local_") and len(secret) == len("whsec_local_") + 32
    assert _stored(ssm) == {"api_key": LOCAL_API_KEY, "webhook_secrets": [secret]}
    # WHEN the stack starts again (a state directory brought the parameter back), with --no-stripe
    assert ensure_parameter(ssm, "/neruba/stripe", "") == secret
    # THEN the secret is the same and the key is empty
    assert _stored(ssm) == {"api_key": "", "webhook_secrets": [secret]}
    # AND without a key to set (the demo seed), the stored one stays
    ensure_parameter(ssm, "/neruba/stripe", LOCAL_API_KEY)
    assert ensure_parameter(ssm, "/neruba/stripe", None) == secret
    assert _stored(ssm)["api_key"] == LOCAL_API_KEY


def _stack(stripe_url: str | None) -> SimpleNamespace:
    return SimpleNamespace(
        base_url="http://127.0.0.1:8080", moto_url="http://127.0.0.1:5055", schedules={}, state_dir=None,
        stripe_url=stripe_url, stripe_webhook_secret="whsec_local_x",
    )  # fmt: skip


def test_the_banner_names_the_local_stripe_its_secret_and_how_to_pay() -> None:
    lines = banner(_stack("http://127.0.0.1:40001"), None)
    named = f"Local Stripe: http://127.0.0.1:40001  (API key {LOCAL_API_KEY}; "
    assert named + "finalized invoices are pushed to it)" in lines
    assert "Stripe webhook secret: whsec_local_x  (sign test events with it)" in lines
    assert (
        "Pay an invoice: curl -s -X POST http://127.0.0.1:8080/_local/stripe/invoices/INVOICE_ID/pay" in lines
    )
    # AND with --no-stripe only the secret is shown (webhooks still verify)
    off = banner(_stack(None), None)
    assert not [line for line in off if line.startswith(("Local Stripe", "Pay an invoice"))]
    assert "Stripe webhook secret: whsec_local_x  (sign test events with it)" in off


def test_paying_waits_for_a_sync_under_way_and_says_when_it_did_not_finish() -> None:
    local = LocalStripe()
    local.start()
    try:
        assert local.fake is not None and local.url is not None
        receiver = Receiver()
        local.fake.set_webhook(receiver.url, "whsec_local_unit")
        client = stripe.StripeClient(LOCAL_API_KEY, base_addresses={"api": local.url}, max_network_retries=0)
        customer = client.v1.customers.create(params={"name": "Acme"})
        draft = client.v1.invoices.create(
            params={"customer": customer.id, "metadata": {"neruba_invoice_id": "in_ours"}}
        )
        # WHEN the invoice is still a draft at Stripe and stays one
        status, answer = local.pay("in_ours", wait_seconds=0.3)
        # THEN it is not paid and the answer says the sync has not finished
        assert (status, answer["error"]["code"]) == (409, "invoice_not_synced")
        assert local.fake.invoices[draft.id]["status"] == "draft" and not receiver.received
        # WHEN the sync finalizes it while the payment waits
        threading.Timer(0.5, lambda: client.v1.invoices.finalize_invoice(draft.id)).start()
        status, answer = local.pay("in_ours", wait_seconds=5)
        # THEN it is paid, and the event went to the webhook endpoint once
        assert status == 200 and answer["stripe_status"] == "paid", answer
        assert answer["webhook"]["status"] == 200 and len(receiver.received) == 1
    finally:
        local.stop()
