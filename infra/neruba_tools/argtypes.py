"""Argument types of the ``neruba`` command: each refuses a bad value with a message in our own words
(argparse prints it as ``argument --NAME: MESSAGE`` and exits with code 2).

Example:
    >>> bounded_int(1)("3")
    3
    >>> when("2026-01-31T00:00:00Z").isoformat()
    '2026-01-31T00:00:00+00:00'
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlparse


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number in ``low..high`` (``high`` None: no upper bound)."""
    rule = f">= {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number {rule}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {rule}, got {text!r}")
        return value

    parse.__name__ = "whole number"
    return parse


def when(text: str) -> datetime:
    """An ISO 8601 time; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time such as 2026-01-31T00:00:00Z, got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def endpoint(text: str) -> str:
    """An http(s) URL with a host, such as a local stack's ``http://127.0.0.1:5055``."""
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL such as http://127.0.0.1:5055, got {text!r}"
        )
    return text


MAX_NAME = 100


def label(text: str) -> str:
    """A name an operator gives (a key's): one line of at most 100 printable characters, so that a listing
    stays one row per item; empty is allowed."""
    if len(text) > MAX_NAME or not text.isprintable():
        raise argparse.ArgumentTypeError(
            f"expected at most {MAX_NAME} printable characters on one line, got {text[:40]!r}"
        )
    return text
