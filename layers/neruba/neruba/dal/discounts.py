"""Coupons, discounts, their period counters, tax rates and tax jurisdictions in the billing table.

Items (``pk`` / ``sk``):

- ``CPN`` / ``{coupon_id}`` - a coupon (``status`` active or archived);
- ``DSC#{customer}`` / ``{discount_id}`` - a coupon attached to a customer or one of its subscriptions;
  ``DSC#plan#{code}#{version}`` / ``{discount_id}`` - attached to a plan version (``status`` active or
  removed);
- ``DSCU#{discount_id}`` / ``{subscription_id}`` - the billing periods a discount has discounted for one
  subscription (``used``) and the last invoice that counted one; moved only inside the window invoice's
  own transaction, conditional on the count read;
- ``TXR`` / ``{tax_rate_id}`` - a tax rate (``status`` active or archived);
- ``TXJ#{customer}`` / ``#`` - the customer's tax jurisdiction (``country``, ``state``);
- ``DSCX`` / ``{discount_id}`` - where a discount is stored (``partition``), written with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neruba import jsonutil
from neruba.dal.clients import client
from neruba.dal.cursors import decode_cursor, encode_cursor
from neruba.dal.dynamo import from_item, partition_items, plain, to_item


@dataclass(frozen=True)
class Stored:
    """A stored coupon, discount or tax rate: its status and the document the API shows."""

    id: str
    status: str
    document: dict[str, Any]


def _stored(item: dict[str, Any]) -> Stored:
    doc = jsonutil.loads(item["doc"])
    doc.update(status=item["status"], **{k: item[k] for k in ("archived_at", "removed_at") if k in item})
    return Stored(id=str(item["sk"]), status=str(item["status"]), document=doc)


def customer_partition(customer_id: str) -> str:
    return f"DSC#{customer_id}"


def plan_partition(plan_code: str, plan_version: int) -> str:
    return f"DSC#plan#{plan_code}#{plan_version}"


class DiscountsRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ------------------------------------------------------------ reads
    def _query(self, pk: str) -> list[Stored]:
        return [_stored(item) for item in partition_items(self.table_name, pk)]

    def _page(self, pk: str, name: str, limit: int, cursor: str | None) -> tuple[list[Stored], str | None]:
        """One page of a partition in id order and the cursor of the next (None: the last page); raises
        ``InvalidCursorError`` for a cursor another list, or this list for another partition, handed out."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "Limit": limit,
            "ConsistentRead": True,
        }
        query = {"list": name, "partition": pk, "order": "id"}
        if cursor:
            request["ExclusiveStartKey"] = decode_cursor(
                cursor, query, keys=frozenset({"pk", "sk"}), within=("pk", pk)
            )
        response = client("dynamodb").query(**request)
        found = [_stored(from_item(i)) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return found, encode_cursor(last, query) if last else None

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=to_item({"pk": pk, "sk": sk}), ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None

    def coupons_page(self, limit: int, cursor: str | None) -> tuple[list[Stored], str | None]:
        """A page of coupons in id order (``GET /admin/coupons``)."""
        return self._page("CPN", "coupons", limit, cursor)

    def coupon(self, coupon_id: str) -> Stored | None:
        item = self._get("CPN", coupon_id)
        return _stored(item) if item else None

    def customer_discounts(self, customer_id: str) -> list[Stored]:
        """Discounts on the customer and on its subscriptions (any status)."""
        return self._query(customer_partition(customer_id))

    def plan_discounts(self, plan_code: str, plan_version: int) -> list[Stored]:
        return self._query(plan_partition(plan_code, plan_version))

    def discounts_page(
        self, partition: str, limit: int, cursor: str | None
    ) -> tuple[list[Stored], str | None]:
        """A page of the discounts of one partition (a customer's, a plan version's) in id order."""
        return self._page(partition, "discounts", limit, cursor)

    def discount(self, partition: str, discount_id: str) -> Stored | None:
        item = self._get(partition, discount_id)
        return _stored(item) if item else None

    def partition_of(self, discount_id: str) -> str | None:
        """The partition a discount is stored in (None: no such discount)."""
        item = self._get("DSCX", discount_id)
        return str(jsonutil.loads(item["doc"])["partition"]) if item else None

    def discount_partitions(self) -> set[str]:
        """The partitions every discount (any status) is stored in, from their ``DSCX`` items."""
        return {str(item.document["partition"]) for item in self._query("DSCX")}

    def used(self, discount_id: str, subscription_id: str) -> int:
        """Billing periods the discount has counted for the subscription."""
        return self.use(discount_id, subscription_id)[0]

    def use(self, discount_id: str, subscription_id: str) -> tuple[int, str | None, int]:
        """(periods counted, the last counted period's key, what the discount took in it so far)."""
        item = self._get(f"DSCU#{discount_id}", subscription_id)
        if not item:
            return 0, None, 0
        period = item.get("period")
        return (
            int(plain(item["used"])),
            None if period is None else str(period),
            int(plain(item.get("taken_minor", 0))),
        )

    def tax_rates(self) -> list[Stored]:
        return self._query("TXR")

    def tax_rates_page(self, limit: int, cursor: str | None) -> tuple[list[Stored], str | None]:
        """A page of tax rates in id order (``GET /admin/tax-rates``)."""
        return self._page("TXR", "tax_rates", limit, cursor)

    def tax_rate(self, tax_rate_id: str) -> Stored | None:
        item = self._get("TXR", tax_rate_id)
        return _stored(item) if item else None

    def jurisdiction(self, customer_id: str) -> dict[str, Any] | None:
        item = self._get(f"TXJ#{customer_id}", "#")
        return jsonutil.loads(item["doc"]) if item else None

    # ------------------------------------------------------------ writes (actions)
    def put_item(self, pk: str, doc: dict[str, Any]) -> dict[str, Any]:
        """A Put of a new coupon, discount or tax rate (condition: its id is new)."""
        item = {"pk": pk, "sk": doc["id"], "status": doc["status"], "doc": jsonutil.dumps(doc)}
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def status_item(self, pk: str, item_id: str, frm: str, to: str, stamp: str, at: str) -> dict[str, Any]:
        """Move a status (condition: still ``frm``), recording when in ``stamp``."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": pk, "sk": item_id}),
                "UpdateExpression": f"SET #st = :to, {stamp} = :at",
                "ConditionExpression": "#st = :from",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item({":to": to, ":from": frm, ":at": at}),
            }
        }

    def use_item(
        self,
        discount_id: str,
        subscription_id: str,
        before: tuple[int, str | None, int],
        after: tuple[int, str, int],
        invoice_id: str,
    ) -> dict[str, Any]:
        """Record the discount's use (periods counted, the last one's key, what it took in it) as
        ``after`` (condition: it is still ``before``, as read)."""
        used, period, taken = before
        condition = (
            "attribute_not_exists(pk)"
            if used == 0 and period is None
            else "used = :used AND #period = :period AND taken_minor = :taken"
        )
        was = {":used": used, ":period": period, ":taken": taken} if period is not None else {}
        if used and period is None:  # stored before periods were keyed: only the count is known
            condition, was = "used = :used AND attribute_not_exists(#period)", {":used": used}
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": f"DSCU#{discount_id}", "sk": subscription_id}),
                "UpdateExpression": "SET used = :next, #period = :key, taken_minor = :took, "
                "last_invoice_id = :inv",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#period": "period"},
                "ExpressionAttributeValues": to_item(
                    {":next": after[0], ":key": after[1], ":took": after[2], ":inv": invoice_id, **was}
                ),
            }
        }

    def jurisdiction_item(self, customer_id: str, doc: dict[str, Any]) -> dict[str, Any]:
        item = {"pk": f"TXJ#{customer_id}", "sk": "#", "doc": jsonutil.dumps(doc)}
        return {"Put": {"TableName": self.table_name, "Item": to_item(item)}}
