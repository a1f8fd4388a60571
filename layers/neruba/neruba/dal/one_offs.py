"""One-off charges in the billing table: ``OOC#{customer}`` / ``{charge_id}``.

A charge is ``pending`` (waiting for the next invoice), ``invoiced`` (``invoice_id`` names the invoice
that carries it) or ``void``. Every change is conditional on the status it leaves, so the pick-up by an
invoice and a void cannot both win, and a charge is picked up by one invoice only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neruba import jsonutil
from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, partition_items, plain, to_item

STATUS_PENDING = "pending"


@dataclass(frozen=True)
class OneOffCharge:
    """A stored one-off charge; ``document`` is what the API shows."""

    id: str
    customer_id: str
    status: str
    currency: str
    amount_minor: int
    invoice_id: str | None
    document: dict[str, Any]


def _charge(item: dict[str, Any]) -> OneOffCharge:
    doc = jsonutil.loads(item["doc"])
    doc.update(status=item["status"], invoice_id=item.get("invoice_id"), voided_at=item.get("voided_at"))
    return OneOffCharge(
        id=str(item["sk"]),
        customer_id=str(item["customer_id"]),
        status=str(item["status"]),
        currency=str(doc["currency"]),
        amount_minor=int(plain(doc["amount_minor"])),
        invoice_id=item.get("invoice_id"),
        document=doc,
    )


class OneOffRepository:
    PREFIX = "OOC#"  # the partition of a customer's charges (dal.advance keeps its items the same way)

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def _key(self, customer_id: str, charge_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"{self.PREFIX}{customer_id}"}, "sk": {"S": charge_id}}

    def charges(self, customer_id: str) -> list[OneOffCharge]:
        """Every charge of the customer (any status), oldest id first; a consistent read."""
        return [_charge(item) for item in partition_items(self.table_name, f"{self.PREFIX}{customer_id}")]

    def pending(self, customer_id: str, currency: str) -> list[OneOffCharge]:
        """The charges waiting for the customer's next invoice in ``currency``, oldest first."""
        charges = self.charges(customer_id)
        return [c for c in charges if c.status == STATUS_PENDING and c.currency == currency]

    def get(self, customer_id: str, charge_id: str) -> OneOffCharge | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=self._key(customer_id, charge_id), ConsistentRead=True
        )
        return _charge(from_item(response["Item"])) if "Item" in response else None

    def put_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A Put of a new charge (condition: its id is new); ``doc`` holds ``id``, ``customer_id``,
        ``status`` and, once invoiced, ``invoice_id``."""
        item = {
            "pk": f"{self.PREFIX}{doc['customer_id']}",
            "sk": doc["id"],
            "customer_id": doc["customer_id"],
            "status": doc["status"],
            "invoice_id": doc.get("invoice_id"),
            "doc": jsonutil.dumps(doc),
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _move(self, customer_id: str, charge_id: str, status: str, **values: str) -> dict[str, Any]:
        sets = ", ".join(f"{name} = :{name}" for name in values)
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._key(customer_id, charge_id),
                "UpdateExpression": "SET #st = :to" + (", " + sets if sets else ""),
                "ConditionExpression": "#st = :pending",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(
                    {":to": status, ":pending": STATUS_PENDING, **{f":{k}": v for k, v in values.items()}}
                ),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def invoice_item(self, customer_id: str, charge_id: str, invoice_id: str) -> dict[str, Any]:
        """Mark a pending charge invoiced on ``invoice_id`` (condition: still pending)."""
        return self._move(customer_id, charge_id, "invoiced", invoice_id=invoice_id)

    def replaced_item(
        self, customer_id: str, charge_id: str, voided: str, replacement: str
    ) -> dict[str, Any]:
        """Move an invoiced charge from ``voided`` to the invoice replacing it (condition: still invoiced
        on ``voided``)."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._key(customer_id, charge_id),
                "UpdateExpression": "SET invoice_id = :to",
                "ConditionExpression": "#st = :invoiced AND invoice_id = :from",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(
                    {":to": replacement, ":from": voided, ":invoiced": "invoiced"}
                ),
            }
        }

    def void_item(self, customer_id: str, charge_id: str, at: str) -> dict[str, Any]:
        """Mark a pending charge void (condition: still pending)."""
        return self._move(customer_id, charge_id, "void", voided_at=at)
