"""Payment records in the ledger table: what each payment collected and what is still refundable.

Items (``pk`` / ``sk``):

- ``CUS#{customer}`` / ``PAY#{payment_id}``: the record (``invoice_id``, ``currency``, ``paid_minor``,
  ``refunded_minor``, ``disputed_minor``, ``lost_minor``, ``credited_minor``, ``refundable_minor``), put
  in the payment's posting transaction.
- ``CUS#{customer}`` / ``INVPAY#{invoice_id}#{payment_id}``: finds the payments of an invoice.

Refunds and disputes move the record in their posting's transaction, on the condition
``refundable_minor >= :amount``: the check and the write are one conditional update, so two concurrent
refunds can never both pass (rules in ``neruba.domain.payments``).
"""

from __future__ import annotations

from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, to_item
from neruba.domain.payments import PaymentRecord


def _key(customer_id: str, payment_id: str) -> dict[str, Any]:
    return to_item({"pk": f"CUS#{customer_id}", "sk": f"PAY#{payment_id}"})


def _record(customer_id: str, values: dict[str, Any]) -> PaymentRecord:
    return PaymentRecord(
        customer_id=customer_id,
        payment_id=str(values["payment_id"]),
        invoice_id=values.get("invoice_id"),
        currency=str(values["currency"]),
        paid_minor=int(values["paid_minor"]),
        refunded_minor=int(values.get("refunded_minor", 0)),
        disputed_minor=int(values.get("disputed_minor", 0)),
        lost_minor=int(values.get("lost_minor", 0)),
        credited_minor=int(values.get("credited_minor", 0)),
    )


class PaymentsRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ---------------------------------------------------------------- reads
    def get(self, customer_id: str, payment_id: str) -> PaymentRecord | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=_key(customer_id, payment_id), ConsistentRead=True
        )
        return _record(customer_id, from_item(response["Item"])) if "Item" in response else None

    def for_invoice(self, customer_id: str, invoice_id: str) -> list[PaymentRecord]:
        """The customer's payments of ``invoice_id``, oldest id first."""
        response = client("dynamodb").query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues=to_item({":p": f"CUS#{customer_id}", ":s": f"INVPAY#{invoice_id}#"}),
            ConsistentRead=True,
        )
        ids = [str(from_item(i)["payment_id"]) for i in response.get("Items", [])]
        found = [self.get(customer_id, payment_id) for payment_id in sorted(ids)]
        return [p for p in found if p is not None]

    # ---------------------------------------------------------------- transaction actions
    def create_items(self, record: PaymentRecord) -> list[dict[str, Any]]:
        """The Puts of a payment record (condition: none yet). A new payment's record starts with nothing
        taken back (its posting's guard makes a retry a no-op) but what credit notes issued before it gave
        back as customer credit (``credited_minor``); a migration may write a record with what was already
        taken back."""
        values = {
            "pk": f"CUS#{record.customer_id}",
            "sk": f"PAY#{record.payment_id}",
            "payment_id": record.payment_id,
            "invoice_id": record.invoice_id,
            "currency": record.currency,
            "paid_minor": record.paid_minor,
            "refunded_minor": record.refunded_minor,
            "disputed_minor": record.disputed_minor,
            "lost_minor": record.lost_minor,
            "credited_minor": record.credited_minor,
            "refundable_minor": record.refundable_minor,
        }
        items = [self._put(values)]
        if record.invoice_id:
            pointer = {
                "pk": f"CUS#{record.customer_id}",
                "sk": f"INVPAY#{record.invoice_id}#{record.payment_id}",
                "payment_id": record.payment_id,
            }
            items.append(self._put(pointer))
        return items

    def _put(self, values: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(values),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _update(self, record: PaymentRecord, expression: str, condition: str, amount: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _key(record.customer_id, record.payment_id),
                "UpdateExpression": expression,
                "ConditionExpression": f"currency = :cur AND {condition}",
                "ExpressionAttributeValues": to_item({":a": amount, ":cur": record.currency}),
            }
        }

    def refund_item(self, record: PaymentRecord, amount_minor: int) -> dict[str, Any]:
        return self._update(
            record,
            "SET refundable_minor = refundable_minor - :a, refunded_minor = refunded_minor + :a",
            "refundable_minor >= :a",
            amount_minor,
        )

    def balance_payout_item(self, record: PaymentRecord, amount_minor: int) -> dict[str, Any]:
        """A payout of the customer credit a credit note took from this payment: what was counted as
        credited becomes refunded (``refundable_minor`` unchanged), conditional on enough credited left."""
        return self._update(
            record,
            "SET credited_minor = credited_minor - :a, refunded_minor = refunded_minor + :a",
            "credited_minor >= :a",
            amount_minor,
        )

    def credit_note_item(
        self, record: PaymentRecord, refund_minor: int, credited_minor: int
    ) -> dict[str, Any]:
        """A credit note's part taken back from this payment: ``refund_minor`` refunded, ``credited_minor``
        given as customer credit or returned out of band; conditional like a refund on the sum."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _key(record.customer_id, record.payment_id),
                "UpdateExpression": (
                    "SET refundable_minor = refundable_minor - :a, refunded_minor = refunded_minor + :r, "
                    "credited_minor = if_not_exists(credited_minor, :z) + :c"
                ),
                "ConditionExpression": "currency = :cur AND refundable_minor >= :a",
                "ExpressionAttributeValues": to_item(
                    {
                        ":a": refund_minor + credited_minor,
                        ":r": refund_minor,
                        ":c": credited_minor,
                        ":z": 0,
                        ":cur": record.currency,
                    }
                ),
            }
        }

    def dispute_open_item(self, record: PaymentRecord, amount_minor: int) -> dict[str, Any]:
        return self._update(
            record,
            "SET refundable_minor = refundable_minor - :a, disputed_minor = disputed_minor + :a",
            "refundable_minor >= :a",
            amount_minor,
        )

    def dispute_close_item(self, record: PaymentRecord, amount_minor: int, outcome: str) -> dict[str, Any]:
        """``won``: the held amount is refundable again; ``lost``: it stays taken (counted as lost)."""
        if outcome == "won":
            expression = "SET refundable_minor = refundable_minor + :a, disputed_minor = disputed_minor - :a"
        else:
            expression = "SET lost_minor = lost_minor + :a"
        return self._update(record, expression, "disputed_minor >= :a", amount_minor)
