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


# --- the client's verify() against the server's signing ----------------------------------------------


def test_the_client_uses_the_header_name_the_server_sends() -> None:
    from neruba.logic.webhooks import signing
    from neruba_client.webhooks import DEFAULT_TOLERANCE, SIGNATURE_HEADER

    assert SIGNATURE_HEADER == signing.HEADER == "Neruba-Signature"
    assert DEFAULT_TOLERANCE == signing.TOLERANCE_SECONDS


def test_a_body_signed_by_the_server_verifies_with_the_client() -> None:
    from neruba.logic.webhooks import signing

    header = signing.signature_header(BODY, [SECRET], timestamp=NOW)
    assert verify(BODY, header, SECRET, now=NOW + 5) == NOW
    assert sign(BODY, SECRET, timestamp=NOW) == header  # the client's own sign() is the same header
    with pytest.raises(SignatureVerificationError):
        verify(BODY + b"\n", header, SECRET, now=NOW)


def test_during_a_rotation_the_server_signs_twice_and_either_secret_verifies() -> None:
    from neruba.logic.webhooks import signing

    old, new = signing.new_secret(), signing.new_secret()
    header = signing.signature_header(BODY, [new, old], timestamp=NOW)
    assert header.count("v1=") == 2
    assert verify(BODY, header, old, now=NOW) == NOW  # a receiver not yet switched
    assert verify(BODY, header, new, now=NOW) == NOW  # a receiver already on the new secret
    with pytest.raises(SignatureVerificationError, match="no signature"):
        verify(BODY, header, signing.new_secret(), now=NOW)  # a third secret matches neither


def test_the_client_refuses_what_the_server_check_refuses_as_stale() -> None:
    from neruba.logic.webhooks import signing

    header = signing.signature_header(BODY, [SECRET], timestamp=NOW)
    late = NOW + signing.TOLERANCE_SECONDS + 1
    with pytest.raises(signing.SignatureError):
        signing.check(BODY, header, [SECRET], now=late)
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        verify(BODY, header, SECRET, now=late)


# --- a header is text the sender controls: every refusal is a SignatureVerificationError -------------


@pytest.mark.parametrize(
    "header",
    [
        f"t={NOW},v1=\u00e9\u00e9",  # non-ASCII (a server decodes header bytes as Latin-1)
        "t=" + "9" * 400 + ",v1=abc",  # a timestamp past any float
        "t=-" + "9" * 400 + ",v1=abc",
        "t=\u00b2,v1=abc",
        f"t={NOW},v1=" + "a" * 10_000,
    ],
)
def test_a_hostile_header_raises_only_the_verification_error(header: str) -> None:
    with pytest.raises(SignatureVerificationError):
        verify(BODY, header, SECRET, now=NOW + 0.5)  # the clock is a float, as time.time() is


def test_a_valid_signature_next_to_a_non_ascii_one_still_verifies() -> None:
    assert verify(BODY, sign(BODY, SECRET, timestamp=NOW) + ",v1=\u00e9", SECRET, now=NOW) == NOW


def test_every_secret_the_receiver_holds_may_be_passed_during_a_rotation() -> None:
    header = sign(BODY, "whsec_new", timestamp=NOW)
    assert verify(BODY, header, ["whsec_old", "whsec_new"], now=NOW) == NOW
    with pytest.raises(SignatureVerificationError, match="no signature"):
        verify(BODY, header, ["whsec_old", "whsec_third"], now=NOW)
    with pytest.raises(ValueError, match="secret"):
        verify(BODY, header, [], now=NOW)


@pytest.mark.parametrize("tolerance", [0, -1])
def test_a_tolerance_of_zero_or_less_does_not_switch_the_time_check_off(tolerance: int) -> None:
    header = sign(BODY, SECRET, timestamp=NOW)
    assert verify(BODY, header, SECRET, tolerance=0, now=NOW) == NOW  # 0: the exact second only
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        verify(BODY, header, SECRET, tolerance=tolerance, now=NOW + 3600)
