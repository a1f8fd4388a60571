"""The Neruba-Signature header: what verifies, and every way a header fails."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from neruba.logic.webhooks import SignatureError, signature_header, verify
from neruba.logic.webhooks.signing import check, new_secret

BODY = b'{"id":"evt_0123","type":"customer.created"}'
T = 1_800_000_000


def test_a_header_verifies_with_its_secret_within_the_tolerance() -> None:
    secret = new_secret()
    header = signature_header(BODY, [secret], timestamp=T)
    assert secret.startswith("whsec_")
    # the documented recipe: HMAC-SHA256 keyed by the secret over "<t>.<raw body>", hex
    expected = hmac.new(secret.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"
    assert verify(BODY, header, [secret], now=T + 299)
    assert verify(BODY, header, secret, now=T - 299)


@pytest.mark.parametrize(
    ("body", "secret", "now", "code"),
    [
        (BODY, "whsec_other", T, "mismatch"),  # wrong secret
        (BODY + b" ", "whsec_right", T, "mismatch"),  # body changed (even re-serialised)
        (BODY, "whsec_right", T + 301, "stale"),  # replayed later than the tolerance
        (BODY, "whsec_right", T - 301, "stale"),  # a timestamp from the future
    ],
)
def test_a_wrong_signature_or_stale_timestamp_fails(body: bytes, secret: str, now: int, code: str) -> None:
    header = signature_header(BODY, ["whsec_right"], timestamp=T)
    assert not verify(body, header, [secret], now=now)
    with pytest.raises(SignatureError) as raised:
        check(body, header, [secret], now=now)
    assert raised.value.code == code


@pytest.mark.parametrize("header", ["", "v1=abc", f"t={T}", "t=soon,v1=abc", "garbage"])
def test_a_malformed_header_fails(header: str) -> None:
    with pytest.raises(SignatureError) as raised:
        check(BODY, header, ["whsec_right"], now=T)
    assert raised.value.code == "malformed"


def test_a_header_with_two_signatures_verifies_with_either_secret() -> None:
    header = signature_header(BODY, ["whsec_new", "whsec_old"], timestamp=T)
    assert header.count("v1=") == 2
    assert verify(BODY, header, ["whsec_old"], now=T)
    assert verify(BODY, header, ["whsec_new"], now=T)
    assert not verify(BODY, header, ["whsec_third"], now=T)
    # a signature with the timestamp changed no longer matches
    assert not verify(BODY, header.replace(f"t={T}", f"t={T + 1}"), ["whsec_new"], now=T)


# --- a header is text the sender controls: whatever it holds, the answer is a refusal, never a crash ----

HOSTILE_HEADERS = [
    f"t={T},v1=\u00e9\u00e9",  # a non-ASCII signature (a server decodes header bytes as Latin-1)
    f"t={T},v1=abc\u0000",  # a control character
    "t=" + "9" * 400 + ",v1=abc",  # a timestamp past any float
    "t=-" + "9" * 400 + ",v1=abc",
    "t=\u00b2,v1=abc",  # a digit to str.isdigit() that int() refuses
    "t=\u0661\u0662,v1=abc",  # Arabic-Indic digits: not the ASCII digits the recipe names
    f"t={T},v1=" + "a" * 10_000,
]


@pytest.mark.parametrize("header", HOSTILE_HEADERS)
def test_a_hostile_header_is_refused_not_raised(header: str) -> None:
    now = T + 0.5  # the clock is a float, as time.time() is
    assert verify(BODY, header, ["whsec_right"], now=now) is False
    with pytest.raises(SignatureError):
        check(BODY, header, ["whsec_right"], now=now)


def test_a_valid_signature_next_to_a_non_ascii_one_still_verifies() -> None:
    header = signature_header(BODY, ["whsec_right"], timestamp=T) + ",v1=\u00e9"
    assert verify(BODY, header, ["whsec_right"], now=T)
