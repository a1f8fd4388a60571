"""Dispute records in the ledger table (items named in ``neruba.dal.ledger``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, record, to_item
from neruba.timefmt import iso


@dataclass(frozen=True)
class Dispute:
    """A stored dispute: the fields the ledger decides on, and ``document``, the dispute as stored (what
    the API answers, and what a conditional update compares with)."""

    id: str
    customer_id: str
    currency: str
    amount_minor: int
    status: Literal["open", "won", "lost"]
    document: dict[str, Any]
    payment_id: str | None = None
    invoice_id: str | None = None
    payment_tracked: bool = False
    """Counted in its payment's record (False for a dispute recorded before payment records existed)."""


def dispute_record(doc: Mapping[str, Any]) -> Dispute:
    """A dispute document as its record."""
    return record(Dispute, doc, document=dict(doc))


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

    def close_item(self, dispute: Dispute, status: str, closed_at: datetime) -> dict[str, Any]:
        doc = dispute.document
        closed = {**doc, "status": status, "closed_at": iso(closed_at)}
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": f"DSP#{dispute.id}", "sk": "#"}),
                "UpdateExpression": "SET doc = :new, st = :status",
                "ConditionExpression": "doc = :old",
                "ExpressionAttributeValues": to_item(
                    {":new": json.dumps(closed), ":old": json.dumps(doc), ":status": status}
                ),
            }
        }

    def tracked_item(self, dispute: Dispute) -> dict[str, Any]:
        """Mark a dispute recorded before payment records existed as counted in its payment's record
        (so closing it moves the record), conditional on the document read."""
        doc = dispute.document
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": f"DSP#{dispute.id}", "sk": "#"}),
                "UpdateExpression": "SET doc = :new",
                "ConditionExpression": "doc = :old",
                "ExpressionAttributeValues": to_item(
                    {":new": json.dumps({**doc, "payment_tracked": True}), ":old": json.dumps(doc)}
                ),
            }
        }

    def all(self) -> list[Dispute]:
        """Every dispute (a table scan: for migrations)."""
        from neruba.dal import maintenance

        return [
            dispute_record(json.loads(i["doc"]))
            for i in maintenance.scan(self.table_name, "begins_with(pk, :p)", {":p": "DSP#"})
        ]

    def get(self, dispute_id: str) -> Dispute | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key=to_item({"pk": f"DSP#{dispute_id}", "sk": "#"}),
            ConsistentRead=True,
        )
        return dispute_record(json.loads(from_item(response["Item"])["doc"])) if "Item" in response else None
