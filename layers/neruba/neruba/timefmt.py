"""Times as text: the one rule for every time Neruba stores, compares or answers.

The rule:

- Every time is UTC and timezone-aware. Writing a naive ``datetime`` raises ``ValueError``; an aware
  one in another offset is converted to UTC first.
- :func:`ts` is the storage format: ``2026-01-02T03:04:05.000000Z``, fixed width with microseconds, so
  text order is time order. Sort keys, leases, due dates, grants, postings, windows and invoices use it.
- :func:`iso` is the stored document format: ISO 8601 with the ``+00:00`` offset (``datetime.isoformat``:
  microseconds only when there are some; API keys' times cut to whole seconds). Stored strings keep it.
- :func:`iso_z` is the answer format (what pydantic writes for an aware UTC ``datetime``): ISO 8601
  with ``Z``, microseconds only when there are some. Every time in every HTTP answer and webhook event
  body is written in it by :func:`answer_times` (``api.responses.json_response`` and the relay's
  envelope apply it), whichever format it was stored in.
- :func:`ts_seconds` is the Stripe records' format: whole seconds and ``Z``, as Stripe reports times.
- :func:`parse_ts` reads any of the three (any ISO 8601 text with ``Z`` or an offset) and returns an
  aware UTC ``datetime``; text without an offset is refused (``ValueError``), never guessed as local.
- A *label* names a UTC day, hour or minute the way storage keys them (``2026-01-02``, ``2026-01-02T03``,
  ``2026-01-02T03:04``: usage cells by hour, outcome counters by minute). Labels stay as they are in
  storage (they are sort keys); :func:`label_start` reads one as its first instant and :func:`label_z`
  writes it in the answer format (``2026-01-02T03:00:00Z``). :func:`answer_times` completes a label in a
  time field the same way, so no answer shows one cut short.

Plain Python: importable from ``domain``, ``dal``, ``logic`` and ``api`` alike.

Example:
    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    >>> ts(at), iso(at), ts_seconds(at)
    ('2026-01-02T03:04:05.000000Z', '2026-01-02T03:04:05+00:00', '2026-01-02T03:04:05Z')
    >>> iso_z(at)
    '2026-01-02T03:04:05Z'
    >>> parse_ts(ts(at)) == parse_ts(iso(at)) == at
    True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["answer_times", "iso", "iso_z", "label_start", "label_z", "parse_ts", "ts", "ts_seconds", "utc"]


def utc(at: datetime) -> datetime:
    """``at`` in UTC; a naive ``datetime`` is refused."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("times need a timezone: naive datetimes are refused")
    return at.astimezone(UTC)


def ts(at: datetime) -> str:
    """The storage format: fixed-width UTC with microseconds and ``Z`` (text order is time order)."""
    return utc(at).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"  # years padded to 4 digits


def ts_seconds(at: datetime) -> str:
    """Whole seconds in UTC with ``Z`` (the Stripe records' format, sortable as text)."""
    return utc(at).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def iso(at: datetime, *, seconds: bool = False) -> str:
    """The document and answer format: ISO 8601 in UTC with the ``+00:00`` offset (``seconds``: cut to
    whole seconds, as API keys show their times)."""
    return utc(at).isoformat(timespec="seconds") if seconds else utc(at).isoformat()


def iso_z(at: datetime | str) -> str:
    """The answer format of model-built answers: ISO 8601 in UTC with ``Z``, microseconds only when there
    are some (``at`` may be stored text in any of the formats above).

    Example:
        >>> iso_z("2026-01-02T03:04:05.250000+00:00"), iso_z("2026-01-02T03:04:05.000000Z")
        ('2026-01-02T03:04:05.250000Z', '2026-01-02T03:04:05Z')
    """
    when = parse_ts(at) if isinstance(at, str) else utc(at)
    return when.isoformat().removesuffix("+00:00") + "Z"


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


# A time as the API takes it: RFC 3339 (``T``/``Z`` in either case, at most nine fractional digits);
# the offset is checked by the field (a field that takes a naive time reports its own rule)
INPUT_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?", re.ASCII
)


def parse_input_time(text: str) -> datetime:
    """A time the API takes, from RFC 3339 text only (no Unix seconds, no minutes-only, no ``+0200``, no
    space for ``T``); fractions past microseconds are cut to microseconds, as a datetime holds them.

    Example:
        >>> parse_input_time("2026-01-02t03:04:05.123456789z").isoformat()
        '2026-01-02T03:04:05.123456+00:00'
        >>> parse_input_time("2026-01-02T03:04Z")
        Traceback (most recent call last):
        ...
        ValueError: must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z
    """
    match = INPUT_TIME.fullmatch(text)
    if match is None:
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")
    fraction, offset = match.group(1), match.group(2)
    head = text[:19].replace("t", "T")
    micro = f".{fraction[:6]}" if fraction else ""
    zone = "" if offset is None else ("+00:00" if offset in ("Z", "z") else offset)
    return datetime.fromisoformat(head + micro + zone)


# A UTC label: a day, an hour or a minute, nothing after it (no seconds, no offset)
LABEL = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}(:\d{2})?)?", re.ASCII)
LABEL_FORMATS = {10: "%Y-%m-%d", 13: "%Y-%m-%dT%H", 16: "%Y-%m-%dT%H:%M"}


def label_start(label: str) -> datetime:
    """The first instant of a UTC day, hour or minute label; anything else is refused (``ValueError``).

    Example:
        >>> label_start("2026-01-02T03").isoformat(), label_start("2026-01-02").isoformat()
        ('2026-01-02T03:00:00+00:00', '2026-01-02T00:00:00+00:00')
    """
    if not LABEL.fullmatch(label):
        raise ValueError(f"{label!r} is not a UTC day, hour or minute label")
    return datetime.strptime(label, LABEL_FORMATS[len(label)]).replace(tzinfo=UTC)


def label_z(label: str) -> str:
    """A UTC day, hour or minute label in the answer format: its first instant, in UTC with ``Z``.

    Example:
        >>> label_z("2026-01-02T03:04"), label_z("2026-01-02T03"), label_z("2026-01-02")
        ('2026-01-02T03:04:00Z', '2026-01-02T03:00:00Z', '2026-01-02T00:00:00Z')
    """
    return iso_z(label_start(label))


# The fields that hold times in answers and event bodies (docs/api.md, "Times in answers").
TIME_SUFFIXES = ("_at", "_start", "_end", "_from", "_since", "_until")  # created_at, trial_until
TIME_KEYS = frozenset(
    {
        *("at", "as_of", "bucket", "created", "end", "from", "since", "start", "timestamp", "to"),
        *("day", "hour", "minute"),  # labels: a usage cell's hour in a sweep's report
    }
)
# the client's own keys and text, echoed as sent: metadata, event properties, and the property values a
# charge filters on or a usage line is grouped by (a property may be named ``day`` and hold a date)
CLIENT_MAPS = frozenset({"metadata", "properties", "filters", "group"})


def answer_times(value: Any) -> Any:
    """``value`` (JSON-like) with every time in :func:`iso_z`, whichever format it was stored in: the text,
    with an offset, of a field named in ``TIME_KEYS`` or ending in one of ``TIME_SUFFIXES``, and a UTC
    label there (:func:`label_z`: a stored day, hour or minute, as a sweep's report keeps its cells'
    hours). Other values, and the client's own maps (``CLIENT_MAPS``), are unchanged. The one
    rule of every HTTP answer (``api.responses.json_response``, the resolver's errors) and every webhook
    event body.

    Example:
        >>> sent = "2026-01-02T05:04:05+02:00"
        >>> answer_times({"created_at": sent, "metadata": {"at": sent}})
        {'created_at': '2026-01-02T03:04:05Z', 'metadata': {'at': '2026-01-02T05:04:05+02:00'}}
        >>> answer_times({"hour": "2026-01-02T03", "bucket": "total"})
        {'hour': '2026-01-02T03:00:00Z', 'bucket': 'total'}
    """
    if isinstance(value, Mapping):
        return {key: _answer_time(key, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [answer_times(item) for item in value]
    return value


def _answer_time(key: str, value: Any) -> Any:
    if key in CLIENT_MAPS:
        return value
    if isinstance(value, str) and (key in TIME_KEYS or key.endswith(TIME_SUFFIXES)):
        try:
            return label_z(value) if LABEL.fullmatch(value) else iso_z(value)
        except ValueError:
            return value  # not a time with an offset nor a label: sent as the producer wrote it
    return answer_times(value)
