"""Tampering with stored usage in tests: set attributes of the cell a ``StoredCell`` was read from."""

from __future__ import annotations

from typing import Any

import boto3

from neruba.dal.contributions import GroupRef, is_contribution
from neruba.dal.usage import StoredCell
from neruba.settings import get_settings


def set_cell(cell: StoredCell, source: int = 0, **values: Any) -> None:
    """Set ``values`` (low-level attribute values, ``{"N": "5"}``) on the cell as stored in its
    ``source``-th item: inside the contribution's map entry, or on the aggregate item itself."""
    pk, sk = cell.sources[source]
    names = {f"#a{i}": name for i, name in enumerate(values)}
    path = [f"#a{i}" for i in range(len(values))]
    if is_contribution(sk):
        names["#cs"], names["#cell"] = "cs", GroupRef("", "", cell.hour, cell.group).cell
        path = [f"#cs.#cell.{p}" for p in path]
    boto3.client("dynamodb").update_item(
        TableName=get_settings().usage_table,
        Key={"pk": {"S": pk}, "sk": {"S": sk}},
        UpdateExpression="SET " + ", ".join(f"{p} = :v{i}" for i, p in enumerate(path)),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":v{i}": v for i, v in enumerate(values.values())},
    )
