"""The README's walk on the local stack, over HTTP only: usage, a billing run, the invoice finalized and
pushed to the local Stripe by the real sync function, paid there, and ``paid`` through the real webhook ->
queue -> worker path; a forged or tampered ``invoice.paid`` is refused like on AWS."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from neruba_tools.local.fake_stripe import signature_header
from tests.support.local_walk import http as _http
from tests.support.local_walk import synced_invoice as _synced_invoice
from tests.support.local_walk import until as _until
from tests.support.stack import HTTP_TIMEOUT_S

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def key(local_stack: Any) -> str:
    from neruba_tools.local.seed import seed_demo

    return seed_demo().api_key


def test_the_walk_reaches_a_paid_invoice_through_the_local_stripe(local_stack: Any, key: str) -> None:
    base = local_stack.base_url
    # GIVEN an invoice billed, finalized and pushed to the local Stripe by the real sync function
    invoice = _synced_invoice(base, key)
    assert invoice["status"] == "finalized" and invoice["number"].startswith("INV-")
    sync = invoice["stripe"]
    assert sync["customer_id"].startswith("cus_local") and sync["invoice_id"].startswith("in_local")
    in_stripe = local_stack.stripe.fake.invoices[sync["invoice_id"]]
    assert (in_stripe["status"], in_stripe["total"]) == ("open", invoice["total_minor"])
    assert in_stripe["metadata"]["neruba_invoice_id"] == invoice["id"]

    # WHEN it is paid in the local Stripe
    status, paid = _http(base, "POST", f"/_local/stripe/invoices/{invoice['id']}/pay")

    # THEN Stripe's invoice is paid and its signed invoice.paid was accepted by the webhook route
    assert status == 200, paid
    assert (paid["stripe_invoice_id"], paid["stripe_status"]) == (sync["invoice_id"], "paid")
    assert paid["amount_paid"] == invoice["total_minor"] > 0
    assert paid["webhook"]["status"] == 200 and paid["webhook"]["answer"]["received"] is True

    # AND the worker moves our invoice to paid, read over the API
    def is_paid() -> dict[str, Any] | None:
        _, now = _http(base, "GET", f"/v1/invoices/{invoice['id']}", key)
        return now if now["status"] == "paid" else None

    done = _until("the invoice to read paid", is_paid)
    assert (done["amount_paid_minor"], done["amount_remaining_minor"]) == (invoice["total_minor"], 0)

    # AND the stored event says what it did (the worker records it just after applying its effects, so a
    # read between the two, while another invocation runs, still finds it received)
    def is_processed() -> dict[str, Any] | None:
        status, stored = _http(base, "GET", f"/admin/stripe-events/{paid['webhook']['event_id']}", key)
        assert status == 200, stored
        return stored if stored["status"] != "received" else None

    stored = _until("the Stripe event to be recorded", is_processed)
    assert stored["status"] == "processed", stored

    # WHEN it is paid a second time
    status, again = _http(base, "POST", f"/_local/stripe/invoices/{invoice['id']}/pay")
    # THEN Stripe refuses (it is not open any more) and nothing more is delivered
    assert status == 409 and again["error"]["code"] == "stripe_refused", again
    assert [d["object_id"] for d in local_stack.stripe.fake.deliveries].count(sync["invoice_id"]) == 1


def _one_error_shape(answer: dict[str, Any], code: str) -> None:
    error = answer["error"]
    assert error["code"] == code, answer
    assert error["type"] in ("invalid_request_error", "api_error") and error["request_id"], answer
    assert error["message"] and not error["message"].startswith(("'", '"')), answer


def test_an_unknown_invoice_cannot_be_paid_locally_and_says_so_at_once(local_stack: Any, key: str) -> None:
    started = time.monotonic()
    status, answer = _http(local_stack.base_url, "POST", "/_local/stripe/invoices/in_missing/pay")
    # at once: not after the 5 s a pay waits for a sync under way
    assert status == 404 and time.monotonic() - started < 5
    _one_error_shape(answer, "invoice_not_found")


def test_a_draft_cannot_be_paid_locally_and_says_so_at_once(local_stack: Any, key: str) -> None:
    base = local_stack.base_url
    customer = f"draft-{uuid.uuid4().hex[:8]}"
    _http(base, "POST", "/v1/customers", key, {"external_id": customer, "name": "D", "currency": "USD"})
    _http(base, "POST", "/v1/subscriptions", key, {"customer_id": customer, "plan_code": "demo-usage"})
    status, run = _http(
        base, "POST", "/admin/billing-runs", key, {"customer_id": customer, "reason": "draft"}
    )
    assert run["invoiced"] == 1, run
    _, page = _http(base, "GET", f"/v1/invoices?customer_id={customer}", key)
    draft = page["data"][0]
    assert draft["status"] == "draft"
    started = time.monotonic()
    status, answer = _http(base, "POST", f"/_local/stripe/invoices/{draft['id']}/pay")
    assert status == 409 and time.monotonic() - started < 5  # at once, not after the sync wait
    _one_error_shape(answer, "invoice_not_finalized")
    # the stack is shared: finalize this draft now, so another test's billing run finalizes only its own
    time.sleep(1.2)
    _, run = _http(base, "POST", "/admin/billing-runs", key, {"customer_id": customer, "reason": "draft"})
    assert run["finalized"] == 1, run


def test_local_routes_answer_in_the_one_error_shape(local_stack: Any) -> None:
    status, answer = _http(local_stack.base_url, "POST", "/_local/schedules/Nope/fire")
    assert status == 404
    _one_error_shape(answer, "schedule_not_found")
    status, answer = _http(local_stack.base_url, "GET", "/_local/nothing")
    assert status == 404
    _one_error_shape(answer, "route_not_found")


def test_a_wrongly_signed_invoice_paid_is_refused_and_the_invoice_stays_unpaid(
    local_stack: Any, key: str
) -> None:
    base = local_stack.base_url
    # GIVEN a synced, unpaid invoice and the invoice.paid Stripe would send for it
    invoice = _synced_invoice(base, key)
    stripe_invoice = dict(local_stack.stripe.fake.invoices[invoice["stripe"]["invoice_id"]])
    stripe_invoice.update(
        status="paid", paid=True, amount_paid=stripe_invoice["amount_due"], charge="ch_forged"
    )
    event = {
        "id": f"evt_forged_{uuid.uuid4().hex[:8]}", "object": "event", "type": "invoice.paid",
        "created": int(time.time()), "livemode": False, "data": {"object": stripe_invoice},
    }  # fmt: skip
    raw = json.dumps(event, indent=2).encode()
    secret = local_stack.stripe_webhook_secret
    assert secret  # the parameter's first secret (a whsec_local_ one unless the parameter existed)
    attempts = {
        "another secret": signature_header(raw, "whsec_" + "0" * 32),
        "the body changed after signing": signature_header(raw.replace(b"ch_forged", b"ch_forgeD"), secret),
        "an old timestamp": signature_header(raw, secret, timestamp=int(time.time()) - 3600),
    }
    for what, header in attempts.items():
        # WHEN it is posted with a wrong signature
        request = urllib.request.Request(base + "/webhooks/stripe", data=raw, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Stripe-Signature", header)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)
        # THEN it is refused with the signature code and nothing is stored
        body = json.loads(refused.value.read())
        assert (refused.value.code, body["error"]["code"]) == (400, "invalid_signature"), what
    status, _ = _http(base, "GET", f"/admin/stripe-events/{event['id']}", key)
    assert status == 404
    # AND the invoice is still unpaid after the queue had time to deliver anything
    time.sleep(1.0)
    _, now = _http(base, "GET", f"/v1/invoices/{invoice['id']}", key)
    assert now["status"] == "finalized" and not now.get("amount_paid_minor")
    # AND the same event signed with the local secret is accepted (the refusals were the signature's)
    request = urllib.request.Request(base + "/webhooks/stripe", data=raw, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Stripe-Signature", signature_header(raw, secret))
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        assert response.status == 200
