"""Stripe webhook signatures: verified on the exact raw bytes, several secrets, a window both ways."""

from __future__ import annotations

import base64
import json
import time

import pytest

from neruba.api.routes.stripe_webhook import header, raw_body
from neruba.logic.stripe.secrets import StripeConfig, StripeConfigError
from neruba.logic.stripe.webhook import (
    InvalidPayloadError,
    InvalidSignatureError,
    parse_event,
    verify_signature,
)
from tests.support.stripe_events import OLD_SECRET, SECRET, encode, invoice_paid, sign

SECRETS = [SECRET, OLD_SECRET]


def test_a_signature_made_by_stripe_for_the_exact_bytes_is_accepted() -> None:
    # GIVEN a body and its header signed with the current secret
    raw = encode(invoice_paid())
    # WHEN verified THEN nothing is raised
    verify_signature(raw, sign(raw), SECRETS)


def test_a_reserialised_body_fails_even_with_the_same_content() -> None:
    # GIVEN a signed body and the same JSON re-serialised (compact, as a framework might)
    raw = encode(invoice_paid())
    reserialised = json.dumps(json.loads(raw)).encode()
    assert json.loads(reserialised) == json.loads(raw) and reserialised != raw
    # WHEN the signature of the original is checked against the re-serialised bytes THEN it fails
    with pytest.raises(InvalidSignatureError):
        verify_signature(reserialised, sign(raw), SECRETS)


def test_rotation_accepts_either_configured_secret_and_nothing_else() -> None:
    raw = encode(invoice_paid())
    # GIVEN deliveries signed with the old secret, the new secret, and an unknown one
    # THEN the first two pass with both configured, the old one fails once it is removed
    verify_signature(raw, sign(raw, OLD_SECRET), SECRETS)
    verify_signature(raw, sign(raw, SECRET), SECRETS)
    with pytest.raises(InvalidSignatureError):
        verify_signature(raw, sign(raw, OLD_SECRET), [SECRET])
    with pytest.raises(InvalidSignatureError):
        verify_signature(raw, sign(raw, "whsec_someone_else"), SECRETS)


def test_a_header_with_several_v1_signatures_passes_when_one_matches() -> None:
    # GIVEN Stripe's header during its own rotation: one v1 per endpoint secret
    raw = encode(invoice_paid())
    now = int(time.time())
    other = sign(raw, "whsec_other", now).split(",")[1]
    # WHEN verified with our secret THEN it passes
    verify_signature(raw, f"{sign(raw, SECRET, now)},{other}", [SECRET])


@pytest.mark.parametrize("offset", [-301, 301, -3600, 86_400])
def test_timestamps_outside_the_tolerance_are_rejected_past_and_future(offset: int) -> None:
    # GIVEN a correct signature made at now + offset
    raw = encode(invoice_paid())
    now = time.time()
    # WHEN verified THEN it is rejected (the stripe library alone would accept a future one)
    with pytest.raises(InvalidSignatureError, match="tolerance"):
        verify_signature(raw, sign(raw, SECRET, int(now) + offset), SECRETS, now=now)


@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_timestamps_inside_the_tolerance_pass(offset: int) -> None:
    raw = encode(invoice_paid())
    now = time.time()
    verify_signature(raw, sign(raw, SECRET, int(now) + offset), SECRETS, now=now)


@pytest.mark.parametrize("bad", [None, "", "garbage", "t=abc,v1=00", "v1=deadbeef", "t=1"])
def test_missing_or_malformed_headers_are_rejected(bad: str | None) -> None:
    with pytest.raises(InvalidSignatureError):
        verify_signature(b"{}", bad, SECRETS)


def test_a_base64_body_is_verified_on_its_decoded_bytes() -> None:
    # GIVEN API Gateway handing over the body base64-encoded (with non-ASCII content)
    payload = invoice_paid()
    payload["data"]["object"]["description"] = "Bücher, 2€"
    raw = encode(payload)
    event = {
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
        "headers": {"stripe-signature": "x"},
    }
    # WHEN the raw body is recovered THEN it is the exact bytes, and they verify
    assert raw_body(event) == raw
    verify_signature(raw_body(event), sign(raw), SECRETS)
    assert header(event, "Stripe-Signature") == "x"


def test_signed_bodies_that_are_not_events_are_refused_cleanly() -> None:
    with pytest.raises(InvalidPayloadError, match="not JSON"):
        parse_event(b"\xff\xfe not json")
    with pytest.raises(InvalidPayloadError):
        parse_event(b"[1, 2]")
    with pytest.raises(InvalidPayloadError, match="'id'"):
        parse_event(b'{"type": "invoice.paid"}')
    with pytest.raises(InvalidPayloadError, match="'type'"):
        parse_event(b'{"id": "evt_1"}')
    assert parse_event(b'{"id": "evt_1", "type": "x.y"}')["id"] == "evt_1"


def test_the_secret_parameter_shape_is_validated_and_never_printed() -> None:
    config = StripeConfig.from_value('{"api_key": "sk_test_1", "webhook_secrets": ["whsec_a", "whsec_b"]}')
    assert config.webhook_secrets == ("whsec_a", "whsec_b")
    assert "whsec" not in repr(config) and "sk_test" not in repr(config)
    with pytest.raises(StripeConfigError):
        StripeConfig.from_value("not json")
    with pytest.raises(StripeConfigError):
        StripeConfig.from_value({"webhook_secrets": [1]})
