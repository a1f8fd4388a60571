"""Opaque pagination cursors: a DynamoDB ``LastEvaluatedKey`` as URL-safe text, bound to the query that
produced it and checked on the way back.

A cursor holds the key (``k``) and a seal (``v``): a SHA-256 over the key and the query's identity (the
list's name, its filters, its bounds and its order, as the repository states them). A cursor used with
other filters, or with its key edited, no longer matches its seal and is refused; the key's own checks
(its partition, its sort range) still apply after the seal, so even a hand-made seal reads nothing but a
page of the query it names.

Kept apart from the catalog repository so that every repository that pages (ledger, billing, invoices,
audit) can use them without importing the catalog's pydantic models.

Example:
    >>> decode_cursor(encode_cursor({"pk": {"S": "A"}, "sk": {"S": "1"}}, {"list": "x"}), {"list": "x"})
    {'pk': {'S': 'A'}, 'sk': {'S': '1'}}
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from neruba import jsonutil
from neruba.errors import InvalidCursorError as InvalidCursorError  # raised here, answered by the API


def _is_key_string(value: Any) -> bool:
    """A DynamoDB string key value as a LastEvaluatedKey holds it: ``{"S": "non-empty text"}`` (any other
    shape, a number or an empty string, would fail in DynamoDB as a 500)."""
    return (
        isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str) and bool(value["S"])
    )


Query = Mapping[str, Any]
"""What identifies a list's query: its name and every filter, bound and order that decides its pages
(JSON values; ``None`` for a filter not given). The page size is not part of it."""


def _seal(key: Any, query: Query) -> str:
    canonical = json.dumps({"k": key, "q": query}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def encode_cursor(key: dict[str, Any], query: Query) -> str:
    """An opaque cursor for a DynamoDB LastEvaluatedKey (or any position of string values), sealed to
    ``query``."""
    payload = {"k": key, "v": _seal(key, query)}
    return base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode().rstrip("=")


def decode_cursor(
    cursor: str,
    query: Query,
    *,
    keys: frozenset[str] | None = None,
    within: tuple[str, str] | None = None,
    prefix: tuple[str, str] | None = None,
    between: tuple[str, str | None, str | None] | None = None,
    agrees: Callable[[dict[str, str]], bool] | None = None,
) -> dict[str, Any]:
    """The DynamoDB key inside a cursor, checked to belong to the query it continues.

    ``query`` is the identity of the query being continued: the cursor's seal must be the one
    :func:`encode_cursor` made for this key and this query (other filters, another order or an edited
    key fail here).
    ``keys`` are the exact key attributes the query's table or index returns; ``within`` is
    (partition attribute, the query's partition value); ``prefix`` is (sort attribute, the prefix the
    query reads); ``between`` is (sort attribute, lowest, highest), the bounds of the query's sort key
    condition, either ``None`` when open (a start key outside them is a ValidationException in DynamoDB);
    ``agrees`` says whether the key's values (attribute -> text) name one item of the list, i.e. whether
    an index cursor's table key is the item its index key names.
    A well-formed cursor of another query fails here as InvalidCursorError (400), not in DynamoDB as a 500.

    Example:
        >>> decode_cursor(encode_cursor({"pk": {"S": "B"}}, {"list": "x"}), {"list": "y"})
        Traceback (most recent call last):
        ...
        neruba.errors.InvalidCursorError: invalid cursor
    """
    try:
        payload = jsonutil.loads_untrusted(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:  # not base64, not JSON, nested too deep, a key named twice
        raise InvalidCursorError("invalid cursor") from exc
    if (
        not isinstance(payload, dict)
        or set(payload) != {"k", "v"}
        or payload["v"] != _seal(payload["k"], query)
    ):
        raise InvalidCursorError("invalid cursor")
    key = payload["k"]
    if not isinstance(key, dict) or not key or not all(_is_key_string(v) for v in key.values()):
        raise InvalidCursorError("invalid cursor")
    if keys is not None and set(key) != keys:
        raise InvalidCursorError("invalid cursor")
    if within is not None and key.get(within[0], {}).get("S") != within[1]:
        raise InvalidCursorError("invalid cursor")
    if prefix is not None and not str(key.get(prefix[0], {}).get("S", "")).startswith(prefix[1]):
        raise InvalidCursorError("invalid cursor")
    if between is not None:
        value = str(key.get(between[0], {}).get("S", ""))
        low, high = between[1], between[2]
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidCursorError("invalid cursor")
    if agrees is not None and not agrees({name: value["S"] for name, value in key.items()}):
        raise InvalidCursorError("invalid cursor")
    return key


def names_item(prefix: str) -> Callable[[dict[str, str]], bool]:
    """``agrees`` for the ``by-list`` index: the table key is ``{prefix}{id}`` / ``#`` and the list key
    ends with ``#{id}`` (invoices, billing runs).

    Example:
        >>> names_item("INV#")({"pk": "INV#1", "sk": "#", "list_pk": "INVC#a", "list_sk": "2026#1"})
        True
    """

    def check(key: dict[str, str]) -> bool:
        item_id = key["pk"].removeprefix(prefix)
        return key["pk"].startswith(prefix) and key["sk"] == "#" and key["list_sk"].endswith(f"#{item_id}")

    return check
