"""Signing outgoing webhooks and checking a signature (what a receiver does; tests and ``listen`` use it).

Header: ``Neruba-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]``, one ``v1`` per secret signing now;
each ``v1`` is HMAC-SHA256, keyed with the whole ``whsec_...`` text, over ``"<t>.<raw body>"``.

Example:
    >>> header = signature_header(b'{"id":"evt_1"}', ["whsec_a"], timestamp=1700000000)
    >>> verify(b'{"id":"evt_1"}', header, ["whsec_a"], now=1700000010)
    True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random
import time
from collections.abc import Sequence

HEADER = "Neruba-Signature"
SCHEME = "v1"
TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """A header that does not verify; ``code`` says why (``malformed``, ``stale``, ``mismatch``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def new_secret() -> str:
    return "whsec_" + _random.token_hex(24)


def _digest(secret: str, timestamp: int, payload: bytes) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secrets: Sequence[str], timestamp: int | None = None) -> str:
    """The header value signing ``payload`` with each of ``secrets`` at ``timestamp`` (default now)."""
    if not secrets:
        raise ValueError("at least one secret signs")
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"{SCHEME}={_digest(s, t, payload)}" for s in secrets)])


def check(
    payload: bytes,
    header: str,
    secrets: Sequence[str],
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """The header's timestamp when one of its ``v1`` values matches one of ``secrets`` and the timestamp
    is within ``tolerance`` seconds of now (either side); otherwise :class:`SignatureError`."""
    timestamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not value.isascii():  # a sender's text: only ASCII can be a timestamp or a hex digest
            continue
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME:
            given.append(value)
    if timestamp is None or not given:
        raise SignatureError("malformed", "the header needs t= and at least one v1=")
    current = time.time() if now is None else now
    if not current - tolerance <= timestamp <= current + tolerance:  # int against float: exact, no overflow
        raise SignatureError("stale", f"the timestamp is more than {tolerance} seconds from now")
    matched = False
    for secret in secrets:
        expected = _digest(secret, timestamp, payload)
        for value in given:
            matched |= hmac.compare_digest(expected, value)  # every pair compared: no early exit
    if not matched:
        raise SignatureError("mismatch", "no signature matches the given secrets")
    return timestamp


def verify(
    payload: bytes,
    header: str,
    secrets: Sequence[str] | str,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``payload`` (the raw bytes received) with one of ``secrets`` within
    ``tolerance`` seconds; False otherwise."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    try:
        check(payload, header, keys, tolerance, now)
    except SignatureError:
        return False
    return True
