"""Signed Stripe bodies the parser cannot use (nested too deep, a key named twice) and bodies declared as
another media type: clean 4xx, recorded and counted like the other unusable bodies, never a 500."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.support.api import api_event, call
from tests.support.aws import queue_url, receive_all
from tests.support.stripe_events import SECRET, encode, event, sign


def _rejected() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName="test-OpsTable")["Items"]
    return [i for i in items if i["pk"]["S"].startswith("STRIPEREJ#")]


def _stored_events() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName="test-OpsTable")["Items"]
    return [i for i in items if i["pk"]["S"].startswith("STRIPE#")]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(
            b'{"id": "evt_deep", "type": "x", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "invalid_json",
            id="nested 5000 deep",
        ),
        pytest.param(
            b'{"id": "evt_1", "type": "invoice.paid", "id": "evt_2"}', "duplicate_key", id="id named twice"
        ),
    ],
)
def test_a_signed_body_the_parser_refuses_is_400_and_recorded(deliver: Any, raw: bytes, reason: str) -> None:
    # GIVEN a correctly signed body that JSON parsing refuses
    # WHEN Stripe delivers it
    status, body = deliver(raw)
    # THEN 400 invalid_payload (never a 500), recorded by hash with its reason, nothing stored or queued
    assert status == 400, body
    assert body["error"]["code"] == reason
    rejected = _rejected()
    assert len(rejected) == 1 and rejected[0]["reason"]["S"] == reason
    assert _stored_events() == []
    assert receive_all(boto3.client("sqs"), queue_url("StripeEventsQueue")) == []


def _delivery(raw: bytes, content_type: str) -> dict[str, Any]:
    request = api_event("POST", "/webhooks/stripe", raw_body=raw.decode("utf-8"), scopes=None)
    request["headers"] = {k: v for k, v in request["headers"].items() if k.lower() != "content-type"}
    request["headers"]["Content-Type"] = content_type
    request["headers"]["Stripe-Signature"] = sign(raw, SECRET)
    return request


def test_stripes_own_content_type_is_accepted_and_others_are_415(
    stripe_secret: Any, monkeypatch: Any
) -> None:
    from functions.stripe_webhook import app

    outcomes: list[str] = []
    monkeypatch.setattr(app.stripe_webhook, "webhook_outcome", outcomes.append)
    raw = encode(event("customer.updated", {"id": "cus_1", "object": "customer"}, event_id="evt_media"))
    # WHEN a signed event arrives as text/plain THEN 415, counted, nothing stored
    status, body, _ = call(app.lambda_handler, _delivery(raw, "text/plain"))
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type"), body
    assert outcomes == ["unsupported_media_type"] and _stored_events() == []
    # WHEN it arrives as Stripe sends it (application/json; charset=utf-8) THEN it is verified on the
    # exact bytes, stored and queued
    status, body, _ = call(app.lambda_handler, _delivery(raw, "application/json; charset=utf-8"))
    assert status == 200 and body["id"] == "evt_media", body
    assert outcomes[-1] == "accepted"
    messages = receive_all(boto3.client("sqs"), queue_url("StripeEventsQueue"))
    assert [json.loads(m["Body"])["event_id"] for m in messages] == ["evt_media"]
