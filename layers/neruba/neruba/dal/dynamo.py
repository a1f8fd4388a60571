"""Converting between plain Python values and DynamoDB attribute maps.

Numbers come back as ``Decimal`` and floats are refused on the way in (a ``TypeError``, as boto3's
serializer raises), so no float can slip onto a money path through storage. The rules are boto3's
``TypeSerializer`` / ``TypeDeserializer`` (tests/unit/test_dynamo_values.py compares the two), written out
here so that no function imports boto3 itself: the clients are botocore's.

Example:
    >>> to_item({"pk": "a", "n": 1})
    {'pk': {'S': 'a'}, 'n': {'N': '1'}}
    >>> from_item({"pk": {"S": "a"}, "n": {"N": "1"}})
    {'pk': 'a', 'n': Decimal('1')}
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# DynamoDB numbers: 38 significant digits, exponent within [-128, 126]; anything that would round raises.
DYNAMODB_CONTEXT = Context(
    Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Serialize a mapping into a DynamoDB item, leaving out ``None`` values."""
    return {key: to_value(value) for key, value in values.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Deserialize a DynamoDB item into plain Python values."""
    return {key: from_value(value) for key, value in item.items()}


def to_value(value: Any) -> dict[str, Any]:
    """Serialize one value (for ExpressionAttributeValues), as boto3's ``TypeSerializer`` does.

    The same types, checked in the same order, and the same errors (a float or an unsupported type is a
    ``TypeError``, a number DynamoDB cannot hold exactly a ``decimal`` signal), without importing boto3: a
    Lambda cold start then loads botocore only (boto3's session and s3transfer cost about 10 ms).

    Example:
        >>> to_value({"n": Decimal("1.50"), "tags": {"a"}})
        {'M': {'n': {'N': '1.50'}, 'tags': {'SS': ['a']}}}
    """
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": value}
    if isinstance(value, Set):
        for code, accepts, serialize in _SETS:
            if all(accepts(member) for member in value):
                return {code: [serialize(member) for member in value]}
    if isinstance(value, Mapping):
        return {"M": {key: to_value(member) for key, member in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_value(member) for member in value]}
    raise TypeError(f'Unsupported type "{type(value)}" for value "{value}"')


def from_value(value: Mapping[str, Any]) -> Any:
    """Deserialize one attribute value, as boto3's ``TypeDeserializer`` does (binary comes back as ``bytes``).

    Example:
        >>> from_value({"L": [{"N": "2"}, {"S": "x"}, {"NULL": True}]})
        [Decimal('2'), 'x', None]
    """
    if not value:
        raise TypeError("Value must be a nonempty dictionary whose key is a valid dynamodb type.")
    code = next(iter(value))
    raw = value[code]
    match code:
        case "S" | "BOOL":
            return raw
        case "N":
            return DYNAMODB_CONTEXT.create_decimal(raw)
        case "NULL":
            return None
        case "B":
            return bytes(raw)
        case "M":
            return {key: from_value(member) for key, member in raw.items()}
        case "L":
            return [from_value(member) for member in raw]
        case "SS":
            return set(raw)
        case "NS":
            return {DYNAMODB_CONTEXT.create_decimal(member) for member in raw}
        case "BS":
            return {bytes(member) for member in raw}
    raise TypeError(f"Dynamodb type {code} is not supported")


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    return isinstance(value, int | Decimal)


def _number(value: int | Decimal) -> str:
    text = str(DYNAMODB_CONTEXT.create_decimal(value))
    if text in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return text


_SETS = (
    ("NS", _is_number, _number),
    ("SS", lambda member: isinstance(member, str), lambda member: member),
    ("BS", lambda member: isinstance(member, bytes | bytearray), lambda member: member),
)


def is_condition_failure(exc: Exception) -> bool:
    """True when a botocore ClientError is a failed conditional write."""
    response = getattr(exc, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
