"""The billing table's sparse ``by-due`` index: work waiting for a time, spread over shards.

An item carries ``due_shard = {prefix}#{n}`` and ``due_at`` (text of ``timefmt.ts``) while something is
due for it, and loses both once done. Prefixes in use: ``bst`` (a billing state's due window), ``fin``
(a draft waiting to finalize), ``sync`` (a finalized invoice waiting for its Stripe sync message),
``cnsync`` (a credit note waiting for its Stripe sync message), ``vsync`` (a voided invoice waiting for
the message that takes it out of Stripe). The marker is written by the transaction that makes the work
due, so a process stopping after that transaction leaves the work findable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from neruba.dal.dynamo import query_items, to_item
from neruba.timefmt import ts

DUE_INDEX = "by-due"
DUE_SHARDS = 8


def shard_of(key: str, prefix: str) -> str:
    """The due-index shard of a key: ``{prefix}#{0..DUE_SHARDS-1}``.

    Example:
        >>> shard_of("sub_1", "bst").startswith("bst#")
        True
    """
    return f"{prefix}#{int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % DUE_SHARDS}"


def due_items(table_name: str, prefix: str, shard: int, now: datetime) -> Iterator[dict[str, Any]]:
    """The items of one shard of ``prefix`` due at or before ``now``, oldest first."""
    yield from query_items(
        {
            "TableName": table_name,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "due_shard = :s AND due_at <= :now",
            "ExpressionAttributeValues": to_item({":s": f"{prefix}#{shard}", ":now": ts(now)}),
        }
    )


def clear_due_item(table_name: str, key: dict[str, Any]) -> dict[str, Any]:
    """The ``update_item`` arguments taking an item out of the index (it must still exist)."""
    return {
        "TableName": table_name,
        "Key": to_item(key),
        "UpdateExpression": "REMOVE due_shard, due_at",
        "ConditionExpression": "attribute_exists(pk)",
    }
