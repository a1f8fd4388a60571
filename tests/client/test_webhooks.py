"""Webhook signature verification: t=...,v1=... over "<t>.<raw body>" with HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from neruba_client import SignatureVerificationError, sign, verify

BODY = b'{"type":"invoice.finalized","id":"evt_1"}'
SECRET = "whsec_test"
NOW = 1_800_000_000


def test_a_signed_body_verifies_and_returns_its_timestamp() -> None:
    header = sign(BODY, SECRET, timestamp=NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert verify(BODY, header, SECRET, now=NOW + 10) == NOW


def test_any_of_several_signatures_may_match_during_a_secret_rotation() -> None:
    old = sign(BODY, "whsec_old", timestamp=NOW).split(",")[1]
    header = f"t={NOW},{old},v1={sign(BODY, SECRET, timestamp=NOW).split('v1=')[1]}"
    assert verify(BODY, header, SECRET, now=NOW) == NOW
    assert verify(BODY, header, "whsec_old", now=NOW) == NOW


@pytest.mark.parametrize(
    ("body", "header", "now", "reason"),
    [
        (BODY + b" ", sign(BODY, SECRET, timestamp=NOW), NOW, "matches"),  # body changed
        (BODY, sign(BODY, "other", timestamp=NOW), NOW, "matches"),  # another secret
        (BODY, sign(BODY, SECRET, timestamp=NOW), NOW + 301, "tolerance"),  # too old
        (BODY, sign(BODY, SECRET, timestamp=NOW), NOW - 301, "tolerance"),  # from the future
        (BODY, f"t={NOW}", NOW, "needs"),
        (BODY, "v1=abc", NOW, "needs"),
        (BODY, "t=soon,v1=abc", NOW, "number"),
        (BODY, "", NOW, "no signature"),
        (BODY, None, NOW, "no signature"),
    ],
)
def test_bad_signatures_are_refused(body: bytes, header: str | None, now: int, reason: str) -> None:
    with pytest.raises(SignatureVerificationError, match=reason):
        verify(body, header, SECRET, now=now)


def test_a_replayed_signature_with_a_new_timestamp_fails() -> None:
    signature = sign(BODY, SECRET, timestamp=NOW).split(",")[1]
    with pytest.raises(SignatureVerificationError):
        verify(BODY, f"t={NOW + 100},{signature}", SECRET, now=NOW + 100)
