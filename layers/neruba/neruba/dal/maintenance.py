"""Table-wide reads and guarded writes for data migrations (the only boto3 calls migrations make).

Example:
    >>> for item in scan(table, "begins_with(pk, :p)", {":p": "CUS#"}):  # doctest: +SKIP
    ...     set_missing(table, item, {"kind": "customer"})
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, is_cancellation, is_condition_failure, query_items, to_item
from neruba.dal.transaction import Transaction


def scan(
    table: str, filter_expression: str | None = None, values: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Every item of ``table`` (matching ``filter_expression``), page by page, consistently read."""
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    if filter_expression:
        request["FilterExpression"] = filter_expression
        request["ExpressionAttributeValues"] = to_item(dict(values or {}))
    yield from query_items(request, scan=True)


def set_missing(table: str, item: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Set each of ``values`` on the item only where the attribute is absent; True if anything was set.

    The update is conditional on the item existing and on every attribute still being absent, so a
    concurrent writer that sets them first wins and this call changes nothing.
    """
    names = {f"#a{i}": name for i, name in enumerate(values)}
    placeholders = {f":v{i}": value for i, value in enumerate(values.values())}
    condition = " AND ".join(["attribute_exists(pk)", *(f"attribute_not_exists({n})" for n in names)])
    try:
        client("dynamodb").update_item(
            TableName=table,
            Key=to_item({"pk": item["pk"], "sk": item["sk"]}),
            UpdateExpression="SET " + ", ".join(f"{n} = :v{i}" for i, n in enumerate(names)),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(placeholders),
        )
    except Exception as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def get(table: str, pk: str, sk: str = "#") -> dict[str, Any] | None:
    response = client("dynamodb").get_item(
        TableName=table, Key=to_item({"pk": pk, "sk": sk}), ConsistentRead=True
    )
    return from_item(response["Item"]) if "Item" in response else None


def put_if(
    table: str, item: Mapping[str, Any], condition: str, values: Mapping[str, Any] | None = None
) -> bool:
    """Put ``item`` if ``condition`` holds; False when it does not (nothing written)."""
    request: dict[str, Any] = {
        "TableName": table,
        "Item": to_item(dict(item)),
        "ConditionExpression": condition,
    }
    if values:
        request["ExpressionAttributeValues"] = to_item(dict(values))
    try:
        client("dynamodb").put_item(**request)
    except Exception as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def transact(items: list[dict[str, Any]]) -> bool:
    """Write ``items`` (TransactWriteItems actions) all or nothing; False when a condition cancelled it."""
    try:
        Transaction(items).commit()
    except Exception as exc:
        if is_cancellation(exc):
            return False
        raise
    return True
