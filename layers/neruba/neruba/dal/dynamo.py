"""Converting between plain Python values and DynamoDB attribute maps.

Numbers come back as ``Decimal`` and floats are refused on the way in (boto3's serializer raises), so
no float can slip onto a money path through storage.

Example:
    >>> to_item({"pk": "a", "n": 1})
    {'pk': {'S': 'a'}, 'n': {'N': '1'}}
    >>> from_item({"pk": {"S": "a"}, "n": {"N": "1"}})
    {'pk': 'a', 'n': Decimal('1')}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Serialize a mapping into a DynamoDB item, leaving out ``None`` values."""
    return {key: _serializer.serialize(value) for key, value in values.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Deserialize a DynamoDB item into plain Python values."""
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def to_value(value: Any) -> dict[str, Any]:
    """Serialize one value (for ExpressionAttributeValues)."""
    return _serializer.serialize(value)  # type: ignore[no-any-return]


def is_condition_failure(exc: Exception) -> bool:
    """True when a botocore ClientError is a failed conditional write."""
    response = getattr(exc, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def put_if_absent(table_name: str, values: Mapping[str, Any]) -> bool:
    """Put an item unless one with its ``pk`` exists; True when this call wrote it.

    The one create-once write (a retry or a second writer gets False, never an error).

    Example:
        >>> put_if_absent(table, {"pk": "MIG#0001", "sk": "#", "name": "x"})  # doctest: +SKIP
        True
    """
    from neruba.dal.clients import client

    try:
        client("dynamodb").put_item(
            TableName=table_name, Item=to_item(values), ConditionExpression="attribute_not_exists(pk)"
        )
    except Exception as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


class TransactionCancelledError(Exception):
    """A TransactWriteItems was cancelled; ``reasons`` lists each action's code (None when it passed)."""

    def __init__(self, reasons: list[str | None]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


def transact(actions: Sequence[dict[str, Any]]) -> None:
    """Run one TransactWriteItems; a cancellation becomes TransactionCancelledError with the reasons."""
    if len(actions) > 100:
        raise ValueError(f"{len(actions)} actions: over the 100-action transaction limit")
    from neruba.dal.clients import client

    try:
        client("dynamodb").transact_write_items(TransactItems=list(actions))
    except Exception as exc:
        reasons = (getattr(exc, "response", None) or {}).get("CancellationReasons")
        if reasons is None:
            raise
        codes = [r.get("Code") if r.get("Code") not in (None, "None") else None for r in reasons]
        raise TransactionCancelledError(codes) from exc
