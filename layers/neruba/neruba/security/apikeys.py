"""API key format, hashing and scopes (pure Python, no AWS).

A key looks like ``nrb_4f9c2a1b7d3e_<43 url-safe characters>``: a fixed marker, a public key id (the
part shown in listings and logs) and a secret. Only the SHA-256 hash of the whole key is stored; the key
is shown once, when created. Keys carry 256 bits of randomness, so a fast hash is enough (there is nothing
to brute-force as with passwords).

Example:
    >>> plaintext, key_id, digest = new_key()
    >>> parse_key_id(plaintext) == key_id and verify(plaintext, digest)
    True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

Scope = Literal["ingest", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "admin")
KEY_MARKER = "nrb"
_KEY_ID_HEX = 12


class MalformedKeyError(ValueError):
    """The text is not a Neruba API key."""


def new_key() -> tuple[str, str, str]:
    """Make a new key: ``(plaintext, key_id, sha256_hex)``."""
    key_id = secrets.token_hex(_KEY_ID_HEX // 2)
    plaintext = f"{KEY_MARKER}_{key_id}_{secrets.token_urlsafe(32)}"
    return plaintext, key_id, hash_key(plaintext)


def hash_key(plaintext: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def verify(plaintext: str, digest: str) -> bool:
    """Constant-time check of a presented key against its stored hash."""
    return hmac.compare_digest(hash_key(plaintext), digest)


def parse_key_id(plaintext: str) -> str:
    """The public id inside a key; raises MalformedKeyError for anything else."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_MARKER or len(parts[1]) != _KEY_ID_HEX or len(parts[2]) < 20:
        raise MalformedKeyError("not a Neruba API key")
    try:
        int(parts[1], 16)
    except ValueError as exc:
        raise MalformedKeyError("not a Neruba API key") from exc
    return parts[1]


class UnknownScopeError(ValueError):
    """A scope name that is not ingest, read or admin."""


def strict_scopes(names: list[str]) -> frozenset[Scope]:
    """Scopes an operator typed (space- or comma-separated, repeatable); any unknown word is an error.

    Example:
        >>> sorted(strict_scopes(["read", "ingest,admin"]))
        ['admin', 'ingest', 'read']
    """
    words = " ".join(names).replace(",", " ").split()
    unknown = sorted({w for w in words if w not in SCOPES})
    if unknown:
        raise UnknownScopeError(f"unknown scope {', '.join(unknown)}; scopes are {', '.join(SCOPES)}")
    return frozenset(s for s in SCOPES if s in words)


def key_id_of(text: str) -> str:
    """The key id in whatever an operator copied: the id itself, the prefix a listing shows
    (``nrb_4f9c2a1b7d3e_…``) or the whole key.

    Example:
        >>> key_id_of("nrb_4f9c2a1b7d3e_…") == key_id_of("4f9c2a1b7d3e") == "4f9c2a1b7d3e"
        True
    """
    parts = text.strip().rstrip("…").rstrip(".").split("_")
    candidate = parts[1] if len(parts) >= 2 and parts[0] == KEY_MARKER else parts[0]
    if len(candidate) != _KEY_ID_HEX or any(c not in "0123456789abcdef" for c in candidate):
        raise MalformedKeyError(f"{text!r} is not a key id, a listed prefix or a key")
    return candidate


def display_prefix(key_id: str) -> str:
    """What listings show of a key: enough to recognise it, useless to an attacker."""
    return f"{KEY_MARKER}_{key_id}_…"


def bearer_token(authorization: str | None) -> str | None:
    """Extract the key from an ``Authorization: Bearer KEY`` header value."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def parse_scopes(text: str) -> frozenset[Scope]:
    """Parse a space- or comma-separated scope list, ignoring unknown words."""
    words = text.replace(",", " ").split()
    return frozenset(s for s in SCOPES if s in words)
