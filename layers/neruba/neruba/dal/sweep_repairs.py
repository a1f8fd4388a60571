"""The writes the consistency sweep repairs with, outside the tables' own repositories.

- :func:`rebuild_balance`: set one materialised ledger balance (``CUS#{customer}`` /
  ``BAL#{currency}#{key}``) to the value its postings' entries give, conditionally on the item being
  exactly as the sweep read it (``bal`` and the ``postings`` counter that every posting increments), so a
  posting committed meanwhile makes the repair fail instead of being lost. Postings are never written.
- :func:`customer_ids`: every customer id of the catalog (the by-kind index, 100 a page).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import is_condition_failure, query_items, to_item
from neruba.timefmt import ts


class RepairConflictError(Exception):
    """The item changed since the sweep read it; nothing was written (the next sweep looks again)."""


def rebuild_balance(
    table_name: str,
    customer_id: str,
    currency: str,
    key: str,
    *,
    expected: tuple[int, int] | None,
    value: int,
    at: datetime,
) -> None:
    """Set a materialised balance to ``value`` if it still holds ``expected`` (``(bal, postings)``, or None
    for a balance item that did not exist); raises RepairConflictError otherwise.

    Example:
        >>> rebuild_balance("t", "acme", "USD", "cash", expected=(9, 2), value=10, at=t)  # doctest: +SKIP
    """
    values: dict[str, Any] = {":v": value, ":at": ts(at)}
    if expected is None:
        condition = "attribute_not_exists(pk)"
        update = "SET bal = :v, postings = :zero, rebuilt_at = :at"
        values[":zero"] = 0
    else:
        condition = "bal = :old AND postings = :n"
        update = "SET bal = :v, rebuilt_at = :at, rebuilt_from = :old"
        values[":old"], values[":n"] = expected
    try:
        client("dynamodb").update_item(
            TableName=table_name,
            Key=to_item({"pk": f"CUS#{customer_id}", "sk": f"BAL#{currency}#{key}"}),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=to_item(values),
        )
    except Exception as exc:
        if is_condition_failure(exc):
            raise RepairConflictError(f"balance {customer_id}/{currency}/{key} changed meanwhile") from exc
        raise


def customer_ids(catalog_table: str) -> Iterator[str]:
    """Every customer's id, from the catalog's by-kind index (one query per 100 customers)."""
    kwargs: dict[str, Any] = {
        "TableName": catalog_table,
        "IndexName": "by-kind",
        "KeyConditionExpression": "kind = :k",
        "ExpressionAttributeValues": to_item({":k": "customer"}),
        "Limit": 100,
    }
    for item in query_items(kwargs):
        yield str(json.loads(item["doc"])["external_id"])
