"""Dispute records in the ledger table (items named in ``neruba.dal.ledger``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, to_item
from neruba.timefmt import iso


class DisputesRepository:
    """Dispute records: ``DSP#{dispute_id}`` with status ``open`` | ``won`` | ``lost``."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def open_item(self, dispute: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item({"pk": f"DSP#{dispute['id']}", "sk": "#", "doc": json.dumps(dispute)}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def close_item(self, dispute: dict[str, Any], status: str, closed_at: datetime) -> dict[str, Any]:
        closed = {**dispute, "status": status, "closed_at": iso(closed_at)}
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": f"DSP#{dispute['id']}", "sk": "#"}),
                "UpdateExpression": "SET doc = :new, st = :status",
                "ConditionExpression": "doc = :old",
                "ExpressionAttributeValues": to_item(
                    {":new": json.dumps(closed), ":old": json.dumps(dispute), ":status": status}
                ),
            }
        }

    def tracked_item(self, dispute: dict[str, Any]) -> dict[str, Any]:
        """Mark a dispute recorded before payment records existed as counted in its payment's record
        (so closing it moves the record), conditional on the document read."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": f"DSP#{dispute['id']}", "sk": "#"}),
                "UpdateExpression": "SET doc = :new",
                "ConditionExpression": "doc = :old",
                "ExpressionAttributeValues": to_item(
                    {":new": json.dumps({**dispute, "payment_tracked": True}), ":old": json.dumps(dispute)}
                ),
            }
        }

    def all(self) -> list[dict[str, Any]]:
        """Every dispute (a table scan: for migrations)."""
        from neruba.dal import maintenance

        return [
            json.loads(i["doc"])
            for i in maintenance.scan(self.table_name, "begins_with(pk, :p)", {":p": "DSP#"})
        ]

    def get(self, dispute_id: str) -> dict[str, Any] | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key=to_item({"pk": f"DSP#{dispute_id}", "sk": "#"}),
            ConsistentRead=True,
        )
        return json.loads(from_item(response["Item"])["doc"]) if "Item" in response else None
