"""The local stack's Stripe: the fake Stripe API (``fake_stripe.py``) on a free port, the Stripe parameter
the functions read, and paying an invoice there.

What the local stack sets, and only it (template.yaml has none of it, so a deploy never sees it):

* ``NERUBA_STRIPE_API_BASE`` = the fake's address: the sync function's stripe library talks to it exactly
  as it talks to api.stripe.com on AWS (same calls, same idempotency keys);
* the Stripe parameter (``NERUBA_STRIPE_SECRET_NAME``, ``/neruba/stripe``) with the local test key
  ``sk_test_neruba_local`` and one webhook signing secret (kept when the parameter already has one, as after
  ``--state-dir``), which the fake signs its events with;
* the fake's webhook endpoint: the stack's own ``POST /webhooks/stripe``.

``POST /_local/stripe/invoices/{invoice_id}/pay`` (gateway) pays our invoice's Stripe invoice in the fake
through the stripe library (``POST /v1/invoices/{id}/pay``), waiting a few seconds for a sync still under
way; the fake then posts a signed ``invoice.paid`` to the webhook route, which stores and queues it for the
Stripe worker like any event from Stripe.

With ``--no-stripe`` there is no fake and the parameter's ``api_key`` is empty: sync-out records
``stripe_not_configured`` (the behaviour of a deployment whose key is missing).

Example:
    >>> LocalStripe(enabled=False).url is None
    True
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from neruba_tools.local.fake_stripe import FakeStripe

LOCAL_API_KEY = "sk_test_neruba_local"  # a local test value; the local fake accepts only it
WEBHOOK_PATH = "/webhooks/stripe"
API_BASE_VARIABLE = "NERUBA_STRIPE_API_BASE"
SYNC_WAIT_SECONDS = 5.0


def ensure_parameter(ssm: Any, name: str, api_key: str | None) -> str:
    """Write the local Stripe parameter ``{"api_key", "webhook_secrets"}``; returns the webhook secret.

    The secret already stored is kept (a restarted stack verifies the events it signed before); a new one is
    ``whsec_local_`` and 32 hex digits. ``api_key=None`` keeps the stored key (empty when there is none).
    """
    try:
        stored = json.loads(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    kept = [s for s in stored.get("webhook_secrets") or [] if isinstance(s, str) and s]
    value = {
        "api_key": str(stored.get("api_key") or "") if api_key is None else api_key,
        "webhook_secrets": kept or ["whsec_local_" + secrets.token_hex(16)],
    }
    if value != stored:
        ssm.put_parameter(Name=name, Type="SecureString", Value=json.dumps(value), Overwrite=True)
    return str(value["webhook_secrets"][0])


class LocalStripe:
    """The fake Stripe of one local stack (or none, ``enabled=False``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, enabled: bool = True) -> None:
        self.fake = FakeStripe(host, port, api_key=LOCAL_API_KEY, id_tag="local") if enabled else None
        self.api_key = LOCAL_API_KEY if enabled else ""
        self.webhook_secret: str | None = None

    @property
    def url(self) -> str | None:
        return self.fake.url if self.fake is not None else None

    def start(self) -> None:
        if self.fake is not None:
            self.fake.start()

    def stop(self) -> None:
        if self.fake is not None:
            self.fake.stop()

    def environment(self) -> dict[str, str | None]:
        """The variables the functions need (the API base is removed when there is no fake)."""
        return {API_BASE_VARIABLE: self.url}

    def configure(self, ssm: Any, parameter_name: str, base_url: str) -> str:
        """Write the Stripe parameter and point the fake's webhooks at ``base_url``; returns the secret."""
        self.webhook_secret = ensure_parameter(ssm, parameter_name, self.api_key)
        if self.fake is not None:
            self.fake.set_webhook(base_url + WEBHOOK_PATH, self.webhook_secret)
        return self.webhook_secret

    def pay(self, invoice_id: str, wait_seconds: float = SYNC_WAIT_SECONDS) -> tuple[int, dict[str, Any]]:
        """Pay our invoice ``invoice_id`` in the fake; returns (HTTP status, answer) for the gateway.

        An invoice finalized a moment ago may still be on its way to Stripe (the sync function runs from
        its queue): this waits up to ``wait_seconds`` for its Stripe invoice to be finalized (open).
        """
        if self.fake is None:
            return 404, _error(
                "local_stripe_off", "the local stack runs without a local Stripe (--no-stripe)"
            )
        deadline = time.monotonic() + wait_seconds
        found = self.fake.find_invoice("neruba_invoice_id", invoice_id)
        while (found is None or found["status"] == "draft") and time.monotonic() < deadline:
            time.sleep(0.2)
            found = self.fake.find_invoice("neruba_invoice_id", invoice_id)
        if found is None:
            message = (
                f"no invoice of the local Stripe is {invoice_id}'s: an invoice reaches Stripe once finalized "
                f"(GET /v1/invoices/{invoice_id} shows stripe.status)"
            )
            return 404, _error("invoice_not_in_stripe", message)
        if found["status"] == "draft":
            message = (
                f"{found['id']} is still a draft in the local Stripe: the sync of {invoice_id} has not "
                f"finished (GET /v1/invoices/{invoice_id} shows stripe.status and last_error)"
            )
            return 409, _error("invoice_not_synced", message)
        import stripe

        client = stripe.StripeClient(self.api_key, base_addresses={"api": self.url}, max_network_retries=0)
        try:
            paid = client.v1.invoices.pay(found["id"])
        except stripe.StripeError as exc:
            message = f"Stripe refused to pay {found['id']}: {exc.user_message or exc}"
            return 409, _error("stripe_refused", message)
        delivered = [d for d in self.fake.deliveries if d.get("object_id") == found["id"]]
        webhook = delivered[-1] if delivered else None
        answer = {
            "invoice_id": invoice_id,
            "stripe_invoice_id": paid.id,
            "stripe_status": paid.status,
            "amount_paid": paid.amount_paid,
            "currency": paid.currency,
            "webhook": webhook,
        }
        if webhook is None or not 200 <= int(webhook["status"]) < 300:
            answer["error"] = {
                "code": "webhook_not_accepted",
                "message": "paid in the local Stripe, but the webhook route did not accept the event",
            }
            return 502, answer
        return 200, answer


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
