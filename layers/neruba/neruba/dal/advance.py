"""Pay-in-advance billing in the billing table (``logic.billing.advance``).

Items (``pk`` / ``sk``):

- ``ADV#{customer}`` / ``{transaction_id}`` - what one event billed in advance: its line, the invoice
  that carries it (``invoice_id``), ``status`` ``pending`` (waiting for the next invoice), ``invoiced``
  or ``not_billed`` (no advance charge applied; ``reason`` says why). Written once, with
  ``attribute_not_exists``: the same event twice bills once. Same shape and pick-up as one-off charges
  (``dal.one_offs``).
- ``ADVP#{subscription}#{meter}`` / ``{period_start}`` - the period's position: ``level`` (units in
  use), ``paid`` (units paid for), ``ver`` (each advance write moves it, conditionally, so two events at
  once are priced one after the other).
- ``ADVU#{subscription}#{meter}#{period_start}`` / ``{value}`` - a unique_count value already billed in
  the period.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, to_item
from neruba.dal.one_offs import OneOffRepository
from neruba.domain.advance import Position


class AdvanceRepository(OneOffRepository):
    """Advance items (the one-off charges' shape, under ``ADV#``), period positions and unique values."""

    PREFIX = "ADV#"

    @staticmethod
    def _position_key(subscription_id: str, meter_code: str, period_start: str) -> dict[str, Any]:
        return {"pk": {"S": f"ADVP#{subscription_id}#{meter_code}"}, "sk": {"S": period_start}}

    def position(self, subscription_id: str, meter_code: str, period_start: str) -> tuple[Position, int]:
        """The period's position and its version (0: nothing billed in advance yet); a consistent read."""
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key=self._position_key(subscription_id, meter_code, period_start),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return Position(), 0
        item = from_item(response["Item"])
        return Position(Decimal(str(item["level"])), Decimal(str(item["paid"]))), int(item["ver"])

    def position_item(
        self, subscription_id: str, meter_code: str, period_start: str, after: Position, version: int
    ) -> dict[str, Any]:
        """An Update moving the position to ``after`` (condition: still at ``version``)."""
        condition = "attribute_not_exists(pk)" if version == 0 else "ver = :v"
        values: dict[str, Any] = {":l": str(after.level), ":p": str(after.paid), ":n": version + 1}
        if version:
            values[":v"] = version
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._position_key(subscription_id, meter_code, period_start),
                "UpdateExpression": "SET #l = :l, paid = :p, ver = :n",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#l": "level"},
                "ExpressionAttributeValues": to_item(values),
            }
        }

    @staticmethod
    def _value_key(subscription_id: str, meter_code: str, period_start: str, value: str) -> dict[str, Any]:
        return {"pk": {"S": f"ADVU#{subscription_id}#{meter_code}#{period_start}"}, "sk": {"S": value}}

    def seen(self, subscription_id: str, meter_code: str, period_start: str, value: str) -> bool:
        """Whether a unique_count value was already billed in the period."""
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key=self._value_key(subscription_id, meter_code, period_start, value),
            ConsistentRead=True,
        )
        return "Item" in response

    def seen_item(
        self, subscription_id: str, meter_code: str, period_start: str, value: str
    ) -> dict[str, Any]:
        """A Put recording a unique_count value as billed in the period (condition: new)."""
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": self._value_key(subscription_id, meter_code, period_start, value),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
