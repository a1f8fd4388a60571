"""POST /webhooks/stripe on moto: verified events stored once and queued; everything else a clean 4xx."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3

from tests.support.aws import queue_url, receive_all
from tests.support.stripe_events import OLD_SECRET, SECRET, encode, event, invoice_paid, sign


def _ops_items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName="test-OpsTable")["Items"]


def _queued() -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in receive_all(boto3.client("sqs"), queue_url("StripeEventsQueue"))]


def test_a_verified_event_is_stored_once_with_its_raw_payload_and_queued(deliver: Any, stored: Any) -> None:
    # GIVEN a signed invoice.paid delivery
    payload = invoice_paid()
    # WHEN delivered
    status, body = deliver(payload)
    # THEN 200, the event is stored as received with the exact raw bytes, and its id is queued
    assert status == 200 and body == {"received": True, "id": payload["id"], "duplicate": False}
    record = stored(payload["id"])
    assert record["status"] == "received" and record["type"] == "invoice.paid" and record["attempts"] == 0
    from neruba.dal.stripe_events import StripeEventsRepository

    full = StripeEventsRepository("test-OpsTable").get(payload["id"], with_payload=True)
    assert full is not None and (full.payload or "").encode() == encode(payload)
    assert _queued() == [{"event_id": payload["id"]}]


def test_a_duplicate_delivery_answers_200_and_changes_nothing(
    deliver: Any, process: Any, stored: Any
) -> None:
    # GIVEN an event delivered and processed
    payload = invoice_paid()
    deliver(payload)
    process()
    before = stored(payload["id"])
    items_before = _ops_items()
    # WHEN Stripe delivers it again (same id, newly signed)
    status, body = deliver(payload)
    # THEN 200 marked duplicate, the stored record is unchanged and nothing is queued
    assert status == 200 and body["duplicate"] is True
    assert stored(payload["id"]) == before
    assert _ops_items() == items_before
    assert _queued() == []


def test_a_bad_signature_gets_400_and_nothing_is_stored_or_queued(deliver: Any) -> None:
    # GIVEN deliveries signed with an unknown secret, with no signature, and with a stale timestamp
    payload = invoice_paid()
    cases = [
        deliver(payload, secret="whsec_attacker"),
        deliver(payload, signature=""),
        deliver(payload, timestamp=int(time.time()) - 3600),
        deliver(payload, timestamp=int(time.time()) + 3600),
    ]
    # THEN each is a 400 invalid_signature, and the table and queue stay empty
    for status, body in cases:
        assert status == 400 and body["error"]["code"] == "invalid_signature"
    assert _ops_items() == [] and _queued() == []


def test_a_reserialised_body_is_rejected_by_the_handler(deliver: Any) -> None:
    # GIVEN a signature over Stripe's bytes but a body re-serialised in between
    payload = invoice_paid()
    raw = encode(payload)
    header = sign(raw)
    # WHEN the compact body arrives with the original signature
    status, body = deliver(json.dumps(payload).encode(), signature=header)
    # THEN it is rejected and nothing is stored
    assert status == 400 and body["error"]["code"] == "invalid_signature"
    assert _ops_items() == []


def test_rotation_both_secrets_work_then_the_old_one_stops(
    deliver: Any, stripe_secret: Any, stored: Any
) -> None:
    # GIVEN the parameter lists the new and the old secret
    old, new = invoice_paid(), invoice_paid()
    # WHEN events arrive signed with each THEN both are accepted
    assert deliver(old, secret=OLD_SECRET)[0] == 200
    assert deliver(new, secret=SECRET)[0] == 200
    # WHEN the old secret is removed from the parameter
    stripe_secret([SECRET])
    late = invoice_paid()
    # THEN a delivery signed with it is refused, one signed with the new secret passes
    assert deliver(late, secret=OLD_SECRET)[0] == 400
    assert stored(late["id"]) is None
    assert deliver(late, secret=SECRET)[0] == 200


def test_a_base64_encoded_delivery_is_verified_on_the_decoded_bytes(stripe_secret: Any, stored: Any) -> None:
    import base64

    from functions.stripe_webhook.app import lambda_handler
    from tests.support.api import api_event, call

    # GIVEN API Gateway passing the body base64-encoded
    payload = invoice_paid()
    payload["data"]["object"]["description"] = "Grüße"
    raw = encode(payload)
    request = api_event("POST", "/webhooks/stripe", raw_body=base64.b64encode(raw).decode(), scopes=None)
    request["isBase64Encoded"] = True
    request["headers"]["stripe-signature"] = sign(raw)
    # WHEN delivered THEN it is accepted and stored
    status, _, _ = call(lambda_handler, request)
    assert status == 200 and stored(payload["id"])["status"] == "received"


def test_signed_but_unusable_bodies_are_clean_4xx_and_recorded_by_hash(deliver: Any) -> None:
    # GIVEN correctly signed bodies: not JSON, no id, no type
    cases = [b"this is not json", json.dumps({"type": "invoice.paid"}).encode(), b'{"id": "evt_x"}']
    # WHEN delivered THEN each is a 400 invalid_payload (never a 500), recorded by body hash only
    for raw in cases:
        status, body = deliver(raw)
        assert status == 400, body
        assert body["error"]["type"] == "invalid_request_error"
    items = _ops_items()
    assert sorted(i["pk"]["S"].split("#")[0] for i in items) == ["STRIPEREJ"] * 3
    assert all("body" not in i and "payload" not in i for i in items)
    assert _queued() == []


def test_a_body_over_the_size_limit_is_413(deliver: Any) -> None:
    # GIVEN a signed event larger than the body limit
    payload = event("invoice.paid", {"id": "in_big", "blob": "x" * 300_000})
    # WHEN delivered THEN 413 and nothing stored
    status, body = deliver(payload)
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert _ops_items() == []


def test_missing_configuration_is_503_so_stripe_retries(deliver: Any, monkeypatch: Any) -> None:
    from neruba.logic.stripe.secrets import clear_cache
    from neruba.settings import get_settings

    # GIVEN the parameter is missing, then its name is not even set
    boto3.client("ssm").delete_parameter(Name="/neruba/test/stripe")
    clear_cache()
    missing = deliver(invoice_paid())
    monkeypatch.setenv("NERUBA_STRIPE_SECRET_NAME", "")
    get_settings.cache_clear()
    unnamed = deliver(invoice_paid())
    # THEN each delivery is a 503 (Stripe retries), not a 500, and nothing is stored
    for status, body in (missing, unnamed):
        assert status == 503 and body["error"]["code"] == "stripe_not_configured"
    assert _ops_items() == []
