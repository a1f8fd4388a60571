"""Operational records in the ops table: sweep reports (``pk=SWEEP#{id}``)."""

from __future__ import annotations

import json
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, to_item


class OpsRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def put_sweep_report(self, sweep_id: str, started_at: str, report: dict[str, Any]) -> None:
        item = {
            "pk": f"SWEEP#{sweep_id}",
            "sk": "#",
            "started_at": started_at,
            "report": json.dumps(report, default=str, sort_keys=True),
        }
        client("dynamodb").put_item(TableName=self.table_name, Item=to_item(item))

    def get_sweep_report(self, sweep_id: str) -> dict[str, Any] | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key={"pk": {"S": f"SWEEP#{sweep_id}"}, "sk": {"S": "#"}}
        )
        if "Item" not in response:
            return None
        item = from_item(response["Item"])
        return {"id": sweep_id, "started_at": item["started_at"], **json.loads(item["report"])}
