"""API key format, hashing and scopes."""

from __future__ import annotations

import pytest

from neruba.security import apikeys


def test_new_key_is_stored_only_as_hash_and_verifies() -> None:
    plaintext, key_id, digest = apikeys.new_key()
    assert plaintext.startswith(f"nrb_{key_id}_")
    assert plaintext not in digest and len(digest) == 64
    assert apikeys.verify(plaintext, digest)
    assert not apikeys.verify(plaintext + "x", digest)
    assert apikeys.parse_key_id(plaintext) == key_id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nrb",
        "abc_0123456789ab_" + "x" * 30,
        "nrb_short_" + "x" * 30,
        "nrb_zzzzzzzzzzzz_" + "x" * 30,
        "nrb_0123456789ab_short",
    ],
)
def test_malformed_keys_are_refused(text: str) -> None:
    with pytest.raises(apikeys.MalformedKeyError):
        apikeys.parse_key_id(text)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        (None, None),
        ("", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert apikeys.bearer_token(header) == token


def test_parse_scopes_ignores_unknown_words() -> None:
    assert apikeys.parse_scopes("read, admin superuser") == frozenset({"read", "admin"})
