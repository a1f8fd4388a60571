"""Usage limits in storage: each customer's limit settings and the period counters the ingest worker keeps.

Items:

- settings: the customer's catalog item (``CUS#{customer}`` / ``#``) holds them in ``lim`` (JSON,
  ``domain.limits.LimitSettings``), so the worker's catalog lookup reads them with the customer at no
  extra request;
- entitlement grants: the same item's ``egr`` (JSON, ``domain.entitlement_grants``), replaced by each
  grant on condition that it is still what was read;
- plan-version defaults: the same item holds one ``pd_{subscription}`` attribute (JSON,
  ``domain.plan_defaults``) per subscription of the customer whose plan versions set defaults, written in
  the transaction that creates or changes the subscription, so the reads of the customer carry them;
- counter (usage table) ``LIM#{customer}#{meter}`` / ``{period start}``: the meter's usage in that period
  ``u`` (exact), the events it counts ``n``, the alert levels fired this period ``f``, a version ``v``
  and the period's end ``pe``; with amounts (docs/limits.md, "Caps and alerts in amounts") the meter's
  amount in minor units ``a``; ``p``: the write it last moved for, compressed (``dal.limit_pending``:
  the contribution, refusals and alerts that complete it). Written only for meters that have limits, on
  condition of the version read (``v``), so two batches never both add to one value they read: by one
  conditional put recording ``p`` (completed by the writer, or by the next writer of the counter), or in
  the transaction of the contribution when one put cannot carry the write (``logic.limits.gate``);
- balance version: the same catalog item's ``bv`` (a number, absent as 0), kept only for customers with
  balance alert levels: every write changing their usable credit moves it in its own transaction (the
  writes that evaluate the levels on condition that it is still the value read with the levels), so two
  of them never both decide from one balance (docs/limits.md, "Balance alerts");
- spend counter (usage table) ``LIM#{customer}#$spend`` / ``{period start}`` (``SPEND``, not a meter
  code): the customer's rated spend in the period ``u`` (minor units), each meter's amount ``m`` and the
  version of that meter's counter it was taken from ``mv``, the spend levels fired ``f``, a version ``v``
  and the alerts its last write fired ``p`` (``dal.limit_pending``); written with a meter's counter
  when its amount changes, in its transaction, or after its one put as a step the put records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import batch_get, from_item, is_condition_failure, to_item
from neruba.dal.transaction import Transaction
from neruba.timefmt import iso

SETTINGS_ATTRIBUTE = "lim"
SPEND = "$spend"  # the spend counter's place of a meter code (meter codes start with a letter or digit)
PLAN_DEFAULTS_PREFIX = "pd_"
GRANTS_ATTRIBUTE = "egr"
BALANCE_VERSION_ATTRIBUTE = "bv"


@dataclass(frozen=True, slots=True)
class StoredLimits:
    """What a customer's catalog item holds of limits: its own settings (``lim``), its subscriptions'
    plan-version defaults (``pd_*``) and its entitlement grants (``egr``), as stored."""

    own: str | None
    plan: dict[str, str]
    grants: str | None


def plan_defaults_of(values: Mapping[str, Any]) -> dict[str, str]:
    """The defaults records (subscription id -> JSON text) of a customer's catalog item, as read."""
    return {
        name.removeprefix(PLAN_DEFAULTS_PREFIX): str(text)
        for name, text in values.items()
        if name.startswith(PLAN_DEFAULTS_PREFIX) and text
    }


def balance_version_of(values: Mapping[str, Any]) -> int:
    """The balance version of a customer's catalog item, as read (0 before the first write moves it)."""
    return int(values.get(BALANCE_VERSION_ATTRIBUTE) or 0)


def balance_version_item(catalog_table: str, customer_id: str, seen: int | None) -> dict[str, Any]:
    """The action moving the customer's balance version on: on condition that it is still ``seen``
    (a write that evaluated the balance alert levels from it), or whatever it is (``seen`` None: a
    write raising the balance, which decides nothing itself)."""
    update: dict[str, Any] = {
        "TableName": catalog_table,
        "Key": {"pk": {"S": f"CUS#{customer_id}"}, "sk": {"S": "#"}},
        "ExpressionAttributeNames": {"#v": BALANCE_VERSION_ATTRIBUTE},
    }
    if seen is None:
        update["UpdateExpression"] = "SET #v = if_not_exists(#v, :zero) + :one"
        update["ConditionExpression"] = "attribute_exists(pk)"
        update["ExpressionAttributeValues"] = to_item({":zero": 0, ":one": 1})
    elif seen == 0:
        update["UpdateExpression"] = "SET #v = :next"
        update["ConditionExpression"] = "attribute_exists(pk) AND attribute_not_exists(#v)"
        update["ExpressionAttributeValues"] = to_item({":next": 1})
    else:
        update["UpdateExpression"] = "SET #v = :next"
        update["ConditionExpression"] = "#v = :seen"
        update["ExpressionAttributeValues"] = to_item({":next": seen + 1, ":seen": seen})
    return {"Update": update}


def counter_key(customer_id: str, meter_code: str, start: datetime) -> dict[str, Any]:
    return {"pk": {"S": f"LIM#{customer_id}#{meter_code}"}, "sk": {"S": iso(start)}}


@dataclass(slots=True)
class Counter:
    """One meter's usage of one customer in one limit period, as last read."""

    customer_id: str
    meter_code: str
    start: datetime
    end: datetime
    used: Decimal = Decimal(0)
    events: int = 0
    fired: set[str] = field(default_factory=set)
    version: int = 0  # 0: not stored yet
    amount: int = 0  # the meter's amount in the period, minor units (amount caps, spend alerts)
    amounts: dict[str, int] = field(default_factory=dict)  # spend counter: each meter's amount
    pending: bytes | None = None  # the write this counter moved for, maybe not complete (dal.limit_pending)
    versions: dict[str, int] = field(default_factory=dict)  # spend counter: each meter's counter version


class LimitsRepository:
    """Period counters (usage table) and limit settings (catalog table)."""

    def __init__(self, usage_table: str, catalog_table: str) -> None:
        self.usage_table = usage_table
        self.catalog_table = catalog_table

    def counter(self, customer_id: str, meter_code: str, start: datetime, end: datetime) -> Counter:
        """The counter as stored now (a strongly consistent read), or a zero one."""
        response = client("dynamodb").get_item(
            TableName=self.usage_table, Key=counter_key(customer_id, meter_code, start), ConsistentRead=True
        )
        found = Counter(customer_id, meter_code, start, end)
        if "Item" in response:
            _fill(found, from_item(response["Item"]))
        return found

    def counters(self, wanted: Sequence[tuple[str, str, datetime, datetime]]) -> list[Counter]:
        """Several counters (customer, meter, period start, end), read consistently (``batch_get``)."""
        found = [Counter(*w) for w in wanted]
        if not found:
            return found
        keys = [counter_key(c.customer_id, c.meter_code, c.start) for c in found]
        by_key = {(k["pk"]["S"], k["sk"]["S"]): c for k, c in zip(keys, found, strict=True)}
        for item in batch_get(self.usage_table, keys):
            _fill(by_key[(str(item["pk"]), str(item["sk"]))], item)
        return found

    def counter_put(
        self,
        seen: Counter,
        used: Decimal,
        events: int,
        fired: set[str],
        amount: int | None = None,
        amounts: dict[str, int] | None = None,
        pending: bytes | None = None,
        versions: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """The action writing the counter's new state, on condition that it is still ``seen``
        (``amount``: the meter's amount; ``amounts``: the spend counter's amount of each meter;
        ``pending``: the write it moves for, ``dal.limit_pending``; without it any recorded write is
        dropped, so the writer completes it first; ``versions``: the spend counter's version of each
        meter's counter whose amount it holds)."""
        item: dict[str, Any] = {
            "u": used,
            "n": events,
            "v": seen.version + 1,
            "pe": iso(seen.end),
            "cid": seen.customer_id,
            "mc": seen.meter_code,
        }
        if fired:
            item["f"] = set(fired)
        if amount is not None:
            item["a"] = amount
        if amounts:
            item["m"] = dict(amounts)
        if pending is not None:
            item["p"] = pending
        if versions:
            item["mv"] = dict(versions)
        put: dict[str, Any] = {
            "TableName": self.usage_table,
            "Item": {**counter_key(seen.customer_id, seen.meter_code, seen.start), **to_item(item)},
        }
        if seen.version == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "v = :v"
            put["ExpressionAttributeValues"] = {":v": {"N": str(seen.version)}}
        return {"Put": put}

    def write_counter(self, action: dict[str, Any]) -> bool:
        """Commit a ``counter_put`` action on its own (one conditional put, not a transaction); False when
        the counter moved since it was read."""
        try:
            client("dynamodb").put_item(**action["Put"])
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def over_limit_update(
        self, customer_id: str, transaction_id: str, held_by: str, message: str
    ) -> dict[str, Any]:
        """The action refusing an accepted event its batch holds (never counted) as ``over_limit``."""
        from neruba.dal.limit_pending import refusal_update

        return {"Update": refusal_update(self.usage_table, customer_id, transaction_id, held_by, message)}

    def refuse_before(
        self, batch: str, shards: int, day: tuple[str, str, str], refusals: Sequence[dict[str, Any]]
    ) -> bool:
        """Commit ``refusals`` (``over_limit_update`` actions, at most 99) on condition that the batch's
        contribution for the (customer, meter, day) does not exist yet; False when it does (an earlier
        attempt of the batch decided these events) or a refused event is no longer held."""
        from neruba.dal.contributions import contribution_key, shard_of
        from neruba.dal.transaction import Cancelled

        check = {
            "ConditionCheck": {
                "TableName": self.usage_table,
                "Key": contribution_key(*day, batch, shard_of(batch, shards)),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        try:
            Transaction([check, *refusals]).commit()
        except Cancelled:
            return False
        return True

    # ------------------------------------------------------------------ settings
    def settings_text(self, customer_id: str) -> str | None:
        response = client("dynamodb").get_item(
            TableName=self.catalog_table,
            Key={"pk": {"S": f"CUS#{customer_id}"}, "sk": {"S": "#"}},
            ProjectionExpression="pk, #l",
            ExpressionAttributeNames={"#l": SETTINGS_ATTRIBUTE},
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise LookupError(customer_id)
        value = from_item(response["Item"]).get(SETTINGS_ATTRIBUTE)
        return None if value is None else str(value)

    def settings_and_balance_version(self, customer_id: str) -> tuple[str | None, int]:
        """The customer's own settings and its balance version, in one read (LookupError: no customer)."""
        response = client("dynamodb").get_item(
            TableName=self.catalog_table,
            Key={"pk": {"S": f"CUS#{customer_id}"}, "sk": {"S": "#"}},
            ProjectionExpression="pk, #l, #v",
            ExpressionAttributeNames={"#l": SETTINGS_ATTRIBUTE, "#v": BALANCE_VERSION_ATTRIBUTE},
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise LookupError(customer_id)
        values = from_item(response["Item"])
        value = values.get(SETTINGS_ATTRIBUTE)
        return None if value is None else str(value), balance_version_of(values)

    def settings_texts(self, customer_id: str) -> StoredLimits:
        """The customer's own settings, its subscriptions' plan-version defaults and its entitlement
        grants, in one read."""
        response = client("dynamodb").get_item(
            TableName=self.catalog_table,
            Key={"pk": {"S": f"CUS#{customer_id}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise LookupError(customer_id)
        values = from_item(response["Item"])
        own, grants = values.get(SETTINGS_ATTRIBUTE), values.get(GRANTS_ATTRIBUTE)
        return StoredLimits(
            None if own is None else str(own),
            plan_defaults_of(values),
            None if grants is None else str(grants),
        )

    def grants_item(self, customer_id: str, text: str | None, before: str | None) -> dict[str, Any]:
        """The action replacing the customer's entitlement grants (``text`` None: none left) if they are
        still ``before`` (as read), for the grant's transaction (named ``grants``)."""
        values: dict[str, Any] = {}
        if before is None:
            condition = "attribute_exists(pk) AND attribute_not_exists(#g)"
        else:
            condition = "attribute_exists(pk) AND #g = :before"
            values[":before"] = before
        if text is not None:
            values[":g"] = text
        update: dict[str, Any] = {
            "TableName": self.catalog_table,
            "Key": {"pk": {"S": f"CUS#{customer_id}"}, "sk": {"S": "#"}},
            "UpdateExpression": "REMOVE #g" if text is None else "SET #g = :g",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#g": GRANTS_ATTRIBUTE},
        }
        if values:
            update["ExpressionAttributeValues"] = to_item(values)
        return {"Update": update}

    def plan_defaults_item(
        self, customer_id: str, subscription_id: str, record: str | None
    ) -> dict[str, Any]:
        """The action writing (``record`` None: removing) a subscription's defaults record on the customer's
        item, for the transaction that creates or changes the subscription."""
        names = {"#d": f"{PLAN_DEFAULTS_PREFIX}{subscription_id}"}
        update: dict[str, Any] = {
            "TableName": self.catalog_table,
            "Key": {"pk": {"S": f"CUS#{customer_id}"}, "sk": {"S": "#"}},
            "UpdateExpression": "REMOVE #d" if record is None else "SET #d = :d",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": names,
        }
        if record is not None:
            update["ExpressionAttributeValues"] = to_item({":d": record})
        return {"Update": update}

    def set_settings(
        self, customer_id: str, text: str | None, before: str | None, extra: Sequence[dict[str, Any]]
    ) -> None:
        """Replace the customer's settings if they are still ``before``; ``extra`` (audit, idempotency
        record) commit with it. Raises ``Cancelled`` (named ``settings``) when they changed meanwhile."""
        values: dict[str, Any] = {}
        if before is None:
            condition = "attribute_exists(pk) AND attribute_not_exists(#l)"
        else:
            condition = "attribute_exists(pk) AND #l = :before"
            values[":before"] = before
        if text is None:
            expression = "REMOVE #l"
        else:
            expression = "SET #l = :lim"
            values[":lim"] = text
        update: dict[str, Any] = {
            "TableName": self.catalog_table,
            "Key": {"pk": {"S": f"CUS#{customer_id}"}, "sk": {"S": "#"}},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#l": SETTINGS_ATTRIBUTE},
        }
        if values:
            update["ExpressionAttributeValues"] = to_item(values)
        Transaction().add({"Update": update}, name="settings").extend(extra).commit()


def _fill(counter: Counter, item: dict[str, Any]) -> None:
    counter.used = Decimal(item.get("u", 0))
    counter.events = int(item.get("n", 0))
    counter.fired = {str(f) for f in item.get("f") or ()}
    counter.version = int(item.get("v", 0))
    counter.amount = int(item.get("a", 0))
    counter.amounts = {str(k): int(v) for k, v in (item.get("m") or {}).items()}
    counter.versions = {str(k): int(v) for k, v in (item.get("mv") or {}).items()}
    pending = item.get("p")
    counter.pending = None if pending is None else bytes(getattr(pending, "value", pending))
