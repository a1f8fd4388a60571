"""Group keys: the text one group of a grouped meter (its values of the meter's ``group_by``) is stored,
counted, levelled and billed under, and the values read back from it. The one place that writes or reads
that text.

A key is ``name=value`` per property in ``group_by`` order, joined by ``|``; a ``|`` inside a value is
written twice (``||``). Property names never hold ``|`` or ``=`` (``models.catalog``), so a key reads back
whole: a run of bars inside a value is even, a run that ends a value and separates it from the next name
is odd (its last bar the separator), and the first ``=`` of each part ends the name. A value without a
bar is written as it always was, so every key stored for such values keeps its text.

Keys stored before bars were doubled, for a value holding ``|``, were never readable: ``g=b|h=y|g=z``
was the key of ``g="b", h="y|g=z"`` and of nothing else only by chance. Such a key still reads as it
always did (split at each single bar); one holding ``||`` now reads the pair as a bar in the value, where
it used to read an empty part. New events of that group count under the new key; the checks that recount
a cell from its events (the usage sweep, redeliveries, event voids) accept an event stored under its
``earlier_key`` too, so usage counted before is neither dropped nor counted twice, and can be voided.

Example:
    >>> join_group([("g", "a|h=b"), ("h", "c")]), join_group([("g", "a"), ("h", "b|h=c")])
    ('g=a||h=b|h=c', 'g=a|h=b||h=c')
    >>> parse_group("g=a||h=b|h=c"), parse_group("model=gpt|region=eu"), parse_group("")
    ({'g': 'a|h=b', 'h': 'c'}, {'model': 'gpt', 'region': 'eu'}, {})
"""

from __future__ import annotations

import re
from collections.abc import Iterable

BAR = "|"
_BARS = re.compile(r"(\|+)")


def join_group(pairs: Iterable[tuple[str, str]]) -> str:
    """The key of a group's ``(name, value)`` pairs, in ``group_by`` order (``""`` without any)."""
    return BAR.join(f"{name}={value.replace(BAR, BAR * 2)}" for name, value in pairs)


def parse_group(key: str) -> dict[str, str]:
    """The values a key was made of (``{}`` for the empty key)."""
    parts: list[str] = []
    current = ""
    for piece in _BARS.split(key):
        if not piece.startswith(BAR):
            current += piece
            continue
        current += BAR * (len(piece) // 2)
        if len(piece) % 2:  # the last bar of an odd run ends the part
            parts.append(current)
            current = ""
    parts.append(current)
    return dict(part.partition("=")[::2] for part in parts if part)


def earlier_key(pairs: Iterable[tuple[str, str]]) -> str | None:
    """The key versions before doubled bars wrote for these values, when a value holds a bar (else None:
    the key is the same)."""
    pairs = list(pairs)
    if not any(BAR in value for _, value in pairs):
        return None
    return BAR.join(f"{name}={value}" for name, value in pairs)
