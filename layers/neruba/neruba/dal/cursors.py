"""Opaque pagination cursors: a DynamoDB ``LastEvaluatedKey`` as URL-safe text, checked on the way back.

Kept apart from the catalog repository so that every repository that pages (ledger, billing, invoices,
audit) can use them without importing the catalog's pydantic models.

Example:
    >>> decode_cursor(encode_cursor({"pk": {"S": "A"}, "sk": {"S": "1"}}))
    {'pk': {'S': 'A'}, 'sk': {'S': '1'}}
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from neruba import jsonutil


class InvalidCursorError(ValueError):
    """A pagination cursor that this API did not hand out."""


def _is_key_string(value: Any) -> bool:
    """A DynamoDB string key value as a LastEvaluatedKey holds it: ``{"S": "non-empty text"}`` (any other
    shape, a number or an empty string, would fail in DynamoDB as a 500)."""
    return (
        isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str) and bool(value["S"])
    )


def encode_cursor(key: dict[str, Any]) -> str:
    """An opaque cursor for a DynamoDB LastEvaluatedKey."""
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def decode_cursor(
    cursor: str,
    *,
    keys: frozenset[str] | None = None,
    within: tuple[str, str] | None = None,
    prefix: tuple[str, str] | None = None,
    between: tuple[str, str | None, str | None] | None = None,
    agrees: Callable[[dict[str, str]], bool] | None = None,
) -> dict[str, Any]:
    """The DynamoDB key inside a cursor, checked to belong to the query it continues.

    ``keys`` are the exact key attributes the query's table or index returns; ``within`` is
    (partition attribute, the query's partition value); ``prefix`` is (sort attribute, the prefix the
    query reads); ``between`` is (sort attribute, lowest, highest), the bounds of the query's sort key
    condition, either ``None`` when open (a start key outside them is a ValidationException in DynamoDB);
    ``agrees`` says whether the key's values (attribute -> text) name one item of the list, i.e. whether
    an index cursor's table key is the item its index key names.
    A well-formed cursor of another query fails here as InvalidCursorError (400), not in DynamoDB as a 500.

    Example:
        >>> decode_cursor(encode_cursor({"pk": {"S": "A"}, "sk": {"S": "1"}}), within=("pk", "B"))
        Traceback (most recent call last):
        ...
        neruba.dal.cursors.InvalidCursorError: invalid cursor
    """
    try:
        key = jsonutil.loads_untrusted(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:  # not base64, not JSON, nested too deep, a key named twice
        raise InvalidCursorError("invalid cursor") from exc
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
