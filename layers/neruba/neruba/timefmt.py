"""Times as text: the one rule for every time Neruba stores, compares or answers.

The rule:

- Every time is UTC and timezone-aware. Writing a naive ``datetime`` raises ``ValueError``; an aware
  one in another offset is converted to UTC first.
- :func:`ts` is the storage format: ``2026-01-02T03:04:05.000000Z``, fixed width with microseconds, so
  text order is time order. Sort keys, leases, due dates, grants, postings, windows and invoices use it.
- :func:`iso` is the document and answer format: ISO 8601 with the ``+00:00`` offset
  (``datetime.isoformat``: microseconds only when there are some; API keys' times cut to whole seconds).
  Documents and API fields use it. A window a caller sent is echoed in the caller's own offset.
- :func:`ts_seconds` is the Stripe records' format: whole seconds and ``Z``, as Stripe reports times.
- :func:`parse_ts` reads any of the three (any ISO 8601 text with ``Z`` or an offset) and returns an
  aware UTC ``datetime``; text without an offset is refused (``ValueError``), never guessed as local.

Plain Python: importable from ``domain``, ``dal``, ``logic`` and ``api`` alike.

Example:
    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    >>> ts(at), iso(at), ts_seconds(at)
    ('2026-01-02T03:04:05.000000Z', '2026-01-02T03:04:05+00:00', '2026-01-02T03:04:05Z')
    >>> parse_ts(ts(at)) == parse_ts(iso(at)) == at
    True
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "parse_ts", "ts", "ts_seconds", "utc"]


def utc(at: datetime) -> datetime:
    """``at`` in UTC; a naive ``datetime`` is refused."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("times need a timezone: naive datetimes are refused")
    return at.astimezone(UTC)


def ts(at: datetime) -> str:
    """The storage format: fixed-width UTC with microseconds and ``Z`` (text order is time order)."""
    return utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts_seconds(at: datetime) -> str:
    """Whole seconds in UTC with ``Z`` (the Stripe records' format, sortable as text)."""
    return utc(at).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(at: datetime, *, seconds: bool = False) -> str:
    """The document and answer format: ISO 8601 in UTC with the ``+00:00`` offset (``seconds``: cut to
    whole seconds, as API keys show their times)."""
    return utc(at).isoformat(timespec="seconds") if seconds else utc(at).isoformat()


def parse_ts(text: str) -> datetime:
    """An aware UTC ``datetime`` from ISO 8601 text with ``Z`` or an offset; text without one is refused.

    Example:
        >>> parse_ts("2026-01-02T03:04:05+02:00").isoformat()
        '2026-01-02T01:04:05+00:00'
        >>> parse_ts("2026-01-02T03:04:05")
        Traceback (most recent call last):
        ...
        ValueError: time '2026-01-02T03:04:05' has no timezone: naive times are refused
    """
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone: naive times are refused")
    return parsed.astimezone(UTC)
