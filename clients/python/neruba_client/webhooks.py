"""Verifying the signature of a webhook sent by Neruba.

The ``Neruba-Signature`` header reads ``t=<unix seconds>,v1=<hex>[,v1=<hex>...]``: ``t`` is when the
webhook was signed and each ``v1`` is ``HMAC-SHA256(secret, "<t>." + raw body)`` in lowercase hex (more
than one while a secret is being rotated). A webhook is genuine when one ``v1`` matches one of the
secrets the receiver holds and ``t`` is within ``tolerance`` seconds of now.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

from neruba_client.errors import NerubaError

SIGNATURE_HEADER = "Neruba-Signature"
DEFAULT_TOLERANCE = 300


class SignatureVerificationError(NerubaError):
    """The signature header is missing, malformed, too old, or matches no signature of the body."""


def _signature(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A header value for ``payload`` (what the sender does; handy in tests)."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={_signature(payload, secret, moment)}"


def _parse(header: str) -> tuple[int, list[str]]:
    """The header's timestamp and its ``v1`` values. The header is the sender's text: anything but ASCII
    digits for ``t`` is refused, and a non-ASCII ``v1`` (never a hex digest) is left out."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            if not (value.isascii() and value.isdigit()):
                raise SignatureVerificationError("the header's t is not a number")
            timestamp = int(value)
        elif name == "v1" and value and value.isascii():
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureVerificationError("the header needs t=... and at least one v1=...")
    return timestamp, candidates


def verify(
    payload: bytes,
    header: str | None,
    secret: str | Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> int:
    """Check ``header`` against the raw request body; returns the signed timestamp.

    Pass the body exactly as received (bytes, before any JSON parsing) and the secret, or during a
    rotation every secret you hold (any one matching is enough). Raises ``SignatureVerificationError``
    when the header is missing or malformed, when ``t`` is more than ``tolerance`` seconds away from now
    (either way; a tolerance of 0 or less never switches that check off), or when no ``v1`` matches.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("verify needs at least one secret")
    if not header:
        raise SignatureVerificationError("no signature header")
    timestamp, candidates = _parse(header)
    current = time.time() if now is None else now
    if not current - tolerance <= timestamp <= current + tolerance:  # int against float: exact, no overflow
        raise SignatureVerificationError("the signature's timestamp is outside the tolerance")
    # compare every pair (no early exit), each in constant time
    matched = False
    for key in secrets:
        expected = _signature(payload, key, timestamp)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureVerificationError("no signature matches the payload")
    return timestamp
