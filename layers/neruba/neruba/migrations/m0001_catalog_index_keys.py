"""Give every listable catalog item the ``kind`` and ``list_key`` the by-kind index lists it by.

Customers (``CUS#{id}``), meters (``MTR#{code}``), plans (``PLN#{code}`` / ``#``) and subscriptions
(``SUB#{id}``) written before the by-kind index existed, or restored from an export without them, would be
missing from the list routes. The values are derived from the item's key and document exactly as the
repositories write them. Idempotent: an attribute is set only where it is absent (a conditional update),
so a second run finds nothing to do and never overwrites a value a writer set. Plan *versions* have a
``kind`` but no ``list_key`` on purpose (they are not listed through the index) and are left alone.
"""

from __future__ import annotations

import json
from typing import Any

from neruba.dal import maintenance
from neruba.migrations import MigrationContext


def expected_index_keys(item: dict[str, Any]) -> dict[str, str] | None:
    """The ``kind`` and ``list_key`` an item should have, or None for items not listed by kind.

    Example:
        >>> expected_index_keys({"pk": "MTR#api_calls", "sk": "#"})
        {'kind': 'meter', 'list_key': 'api_calls'}
    """
    pk, sk = str(item["pk"]), str(item["sk"])
    if sk != "#":
        return None
    prefix, _, rest = pk.partition("#")
    if prefix == "CUS":
        return {"kind": "customer", "list_key": rest}
    if prefix == "MTR":
        return {"kind": "meter", "list_key": rest}
    if prefix == "PLN":
        return {"kind": "plan", "list_key": rest}
    if prefix == "SUB":
        doc = json.loads(str(item.get("doc") or "{}"))
        customer = doc.get("customer_id")
        return {"kind": "subscription", "list_key": f"{customer}#{rest}"} if customer else None
    return None


def apply(ctx: MigrationContext) -> dict[str, Any]:
    table = ctx.settings.catalog_table
    scanned = updated = 0
    for item in maintenance.scan(table):
        scanned += 1
        expected = expected_index_keys(item)
        if expected is None:
            continue
        missing = {k: v for k, v in expected.items() if k not in item}
        if missing and maintenance.set_missing(table, item, missing):
            updated += 1
    return {"scanned": scanned, "updated": updated}
