"""Customers and meters in the catalog table.

Items: ``pk=CUS#{external_id}, sk=#`` for a customer, ``pk=MTR#{code}, sk=#`` for a meter; a
customer also keeps ``billed_through`` (ISO time up to which usage has been invoiced), which ingest
uses to flag late events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from neruba.dal.clients import client
from neruba.dal.cursors import InvalidCursorError as InvalidCursorError  # callers catch it from here too
from neruba.dal.cursors import decode_cursor, encode_cursor
from neruba.dal.dynamo import TransactionCancelledError, batch_get, from_item, to_item
from neruba.dal.limits import balance_version_of, plan_defaults_of
from neruba.dal.transaction import Cancelled, Transaction
from neruba.domain.event_rules import EventRule
from neruba.domain.plan_defaults import any_threshold, effective_text
from neruba.models.catalog import Customer, Meter
from neruba.models.fields import STORED
from neruba.timefmt import iso, parse_ts

LIST_CURSOR_KEYS = frozenset({"pk", "sk", "kind", "list_key"})  # a key of the by-kind index


class CatalogConflictError(Exception):
    """A customer or meter with that key already exists."""


class CatalogNotFoundError(LookupError):
    """No such customer, meter, plan or subscription."""


def _customer_key(external_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"CUS#{external_id}"}, "sk": {"S": "#"}}


def _meter_key(code: str) -> dict[str, Any]:
    return {"pk": {"S": f"MTR#{code}"}, "sk": {"S": "#"}}


def _names_listed_item(key: dict[str, str]) -> bool:
    """Whether a by-kind cursor's table key is the item its index key names (``CUS#{list_key}`` for a
    customer, ``SUB#{id}`` for a subscription listed as ``{customer}#{id}``, ...)."""
    kind, list_key = key["kind"], key["list_key"]
    if kind == "subscription":
        expected = "SUB#" + list_key.rpartition("#")[2]
    else:
        expected = {"customer": "CUS#", "meter": "MTR#", "plan": "PLN#"}.get(kind, "\0") + list_key
    return key["sk"] == "#" and key["pk"] == expected


class CatalogRepository:
    """Read and write customers and meters."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def create_customer(self, customer: Customer, extra: Sequence[dict[str, Any]] = ()) -> Customer:
        """Create a customer; ``extra`` actions (an audit record) commit in the same transaction."""
        stored = customer.model_copy(update={"created_at": customer.created_at or datetime.now(UTC)})
        self._put_new(
            _customer_key(customer.external_id),
            "customer",
            customer.external_id,
            stored.model_dump(mode="json"),
            extra,
        )
        return stored

    def update_customer(
        self,
        external_id: str,
        changes: dict[str, Any],
        extra: Callable[[Customer, Customer], Sequence[dict[str, Any]]] | None = None,
    ) -> Customer:
        """Apply ``changes`` to a customer (optimistic: retried if another write lands in between).

        ``extra(before, after)`` gives actions (an audit record) committed in the same transaction.
        """
        for _attempt in range(5):
            values = self._get(_customer_key(external_id))
            if values is None:
                raise CatalogNotFoundError(f"no customer {external_id!r}")
            doc = {**json.loads(values["doc"]), **changes}
            customer = Customer.model_validate(doc, context=STORED)
            update = {
                "TableName": self.table_name,
                "Key": _customer_key(external_id),
                "UpdateExpression": "SET doc = :new",
                "ConditionExpression": "doc = :old",
                "ExpressionAttributeValues": to_item(
                    {
                        ":new": json.dumps(customer.model_dump(mode="json"), sort_keys=True),
                        ":old": values["doc"],
                    }
                ),
            }
            before = Customer.model_validate(json.loads(values["doc"]), context=STORED)
            try:
                Transaction([{"Update": update}, *(extra(before, customer) if extra else ())]).commit()
                return customer
            except TransactionCancelledError:
                continue
        raise CatalogConflictError("the customer kept changing; try again")

    def create_meter(self, meter: Meter, extra: Sequence[dict[str, Any]] = ()) -> Meter:
        """Create a meter; ``extra`` actions (an audit record) commit in the same transaction."""
        stored = meter.model_copy(update={"created_at": meter.created_at or datetime.now(UTC)})
        self._put_new(_meter_key(meter.code), "meter", meter.code, stored.model_dump(mode="json"), extra)
        return stored

    def list_docs(
        self, kind: str, limit: int, cursor: str | None, prefix: str = ""
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a kind's documents in ``list_key`` order, and the cursor of the next page."""
        items, next_cursor = self._list_items(kind, limit, cursor, prefix)
        return [json.loads(item["doc"]) for item in items], next_cursor

    def _list_items(
        self, kind: str, limit: int, cursor: str | None, prefix: str = ""
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a kind's stored items in ``list_key`` order, and the cursor of the next page."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "by-kind",
            "KeyConditionExpression": "kind = :k" + (" AND begins_with(list_key, :p)" if prefix else ""),
            "ExpressionAttributeValues": to_item({":k": kind, ":p": prefix or None}),
            "Limit": limit,
        }
        query = {"list": kind, "prefix": prefix, "order": "list_key"}
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(
                cursor,
                query,
                keys=LIST_CURSOR_KEYS,
                within=("kind", kind),
                prefix=("list_key", prefix) if prefix else None,
                agrees=_names_listed_item,
            )
        response = client("dynamodb").query(**kwargs)
        items = [from_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return items, encode_cursor(last, query) if last else None

    def get_customer(self, external_id: str) -> Customer | None:
        values = self._get(_customer_key(external_id))
        return Customer.model_validate(json.loads(values["doc"]), context=STORED) if values else None

    def customer_limits_and_balance_version(
        self, external_id: str
    ) -> tuple[Customer | None, str | None, int]:
        """The customer, its usage limit settings and its balance version (``dal.limits``), in one read."""
        values = self._get(_customer_key(external_id))
        if not values:
            return None, None, 0
        customer = Customer.model_validate(json.loads(values["doc"]), context=STORED)
        lim = None if values.get("lim") is None else str(values["lim"])
        return customer, lim, balance_version_of(values)

    def customer_with_defaults(self, external_id: str) -> tuple[Customer | None, dict[str, str]]:
        """The customer and its subscriptions' plan-version defaults records (``dal.limits``), one read."""
        values = self._get(_customer_key(external_id))
        if not values:
            return None, {}
        return Customer.model_validate(json.loads(values["doc"]), context=STORED), plan_defaults_of(values)

    def get_meter(self, code: str) -> Meter | None:
        values = self._get(_meter_key(code))
        return Meter.model_validate(json.loads(values["doc"]), context=STORED) if values else None

    def register_event_rules(self, code: str, rules: Mapping[str, EventRule]) -> None:
        """Add per-event pricing rules (digest -> rule) to meter ``code``, so the ingest worker prices its
        events by them (``domain.event_rules``); registering a rule again changes nothing."""
        if not rules:
            return
        names = {f"#r{i}": f"{EVENT_RULE_PREFIX}{name}" for i, name in enumerate(sorted(rules))}
        values = {
            f":r{i}": json.dumps(rules[name].stored(), sort_keys=True) for i, name in enumerate(sorted(rules))
        }
        client("dynamodb").update_item(
            TableName=self.table_name,
            Key=_meter_key(code),
            UpdateExpression="SET " + ", ".join(f"#r{i} = :r{i}" for i in range(len(rules))),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_item(values),
        )

    def register_advance_meter(self, code: str) -> None:
        """Mark meter ``code`` as billed in advance by some plan version: the ingest worker then sends
        each of its counted events to billing (``logic.billing.advance``). Marking it again changes
        nothing; the mark is never removed (an event no version bills in advance is recorded as not
        billed)."""
        client("dynamodb").update_item(
            TableName=self.table_name,
            Key=_meter_key(code),
            UpdateExpression=f"SET {ADVANCE_MARK} = :t",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":t": True}),
        )

    def set_billed_through(self, external_id: str, at: datetime) -> None:
        client("dynamodb").update_item(
            TableName=self.table_name,
            Key=_customer_key(external_id),
            UpdateExpression="SET billed_through = :t",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":t": iso(at)}),
        )

    def lookup(
        self, customer_ids: Iterable[str], meter_codes: Iterable[str], *, consistent: bool = False
    ) -> CatalogSnapshot:
        """Fetch many customers and meters at once (one BatchGetItem per 100 keys; ``consistent`` reads
        what was written last, at twice the read units)."""
        keys = [_customer_key(c) for c in sorted(set(customer_ids))] + [
            _meter_key(m) for m in sorted(set(meter_codes))
        ]
        snapshot = CatalogSnapshot()
        for item in batch_get(self.table_name, keys, consistent=consistent):
            snapshot.add(item)
        return snapshot

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = client("dynamodb").get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
        return from_item(response["Item"]) if "Item" in response else None

    def _put_new(
        self,
        key: dict[str, Any],
        kind: str,
        list_key: str,
        doc: dict[str, Any],
        extra: Sequence[dict[str, Any]] = (),
    ) -> None:
        item = {
            **key,
            **to_item({"kind": kind, "list_key": list_key, "doc": json.dumps(doc, sort_keys=True)}),
        }
        put = {"TableName": self.table_name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        try:
            Transaction().add({"Put": put}, name="item").extend(extra).commit()
        except Cancelled as exc:
            if exc.failed("item"):
                raise CatalogConflictError(f"{kind} already exists") from exc
            raise


ADVANCE_MARK = "adv"  # a meter item's mark: some plan version bills the meter in advance
EVENT_RULE_PREFIX = "er_"  # a meter item's attribute per registered per-event rule: er_{digest} = JSON


def _event_rules(values: Mapping[str, Any]) -> dict[str, EventRule]:
    return {
        name.removeprefix(EVENT_RULE_PREFIX): EventRule.from_stored(json.loads(str(text)))
        for name, text in values.items()
        if name.startswith(EVENT_RULE_PREFIX)
    }


class CatalogSnapshot:
    """Customers and meters found by one lookup, with each customer's ``billed_through``."""

    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.meters: dict[str, Meter] = {}
        self.billed_through: dict[str, datetime] = {}
        self.event_rules: dict[str, dict[str, EventRule]] = {}  # meter code -> digest -> rule
        self.limits: dict[str, str] = {}  # customer -> its usage limit settings (``dal.limits``), as stored
        self.plan_defaults: dict[str, dict[str, str]] = {}  # customer -> subscription -> defaults record
        self.advance_meters: set[str] = set()  # meters some charge bills in advance

    def add(self, values: dict[str, Any]) -> None:
        doc = json.loads(values["doc"])
        if values.get("kind") == "customer":
            customer = Customer.model_validate(doc, context=STORED)
            self.customers[customer.external_id] = customer
            if values.get("billed_through"):
                self.billed_through[customer.external_id] = parse_ts(values["billed_through"])
            if values.get("lim"):
                self.limits[customer.external_id] = str(values["lim"])
            defaults = plan_defaults_of(values)
            if defaults:
                self.plan_defaults[customer.external_id] = defaults
        elif values.get("kind") == "meter":
            meter = Meter.model_validate(doc, context=STORED)
            self.meters[meter.code] = meter
            self.event_rules[meter.code] = _event_rules(values)
            if values.get(ADVANCE_MARK):
                self.advance_meters.add(meter.code)

    def limit_settings(self, customer_id: str, at: datetime) -> str | None:
        """The limits that apply to the customer at ``at``: its own over its plan versions' defaults
        (``domain.plan_defaults``), as the stored text the ingest gate reads."""
        return effective_text(self.limits.get(customer_id), self.plan_defaults.get(customer_id, {}), at)

    def has_invoice_threshold(self, customer_id: str, at: datetime) -> bool:
        """Whether the customer, or a plan version it is subscribed to, sets an invoice threshold."""
        customer = self.customers.get(customer_id)
        own = None if customer is None else customer.invoice_threshold_minor
        return any_threshold(own, self.plan_defaults.get(customer_id, {}), at)


class CatalogCache:
    """Per-process cache of found customers and meters (a miss is never cached, so a customer created
    after a parked event is seen at once)."""

    def __init__(
        self, repository: CatalogRepository, ttl_seconds: float = 60.0, *, consistent: bool = False
    ) -> None:
        self.repository = repository
        self.ttl_seconds = ttl_seconds
        self.consistent = consistent
        self._snapshot = CatalogSnapshot()
        self._loaded_at: dict[str, float] = {}

    def lookup(self, customer_ids: set[str], meter_codes: set[str]) -> CatalogSnapshot:
        now = time.monotonic()
        fresh = {k for k, at in self._loaded_at.items() if now - at < self.ttl_seconds}
        missing_customers = {c for c in customer_ids if f"c:{c}" not in fresh}
        missing_meters = {m for m in meter_codes if f"m:{m}" not in fresh}
        if missing_customers or missing_meters:
            found = self.repository.lookup(missing_customers, missing_meters, consistent=self.consistent)
            self._snapshot.customers.update(found.customers)
            self._snapshot.meters.update(found.meters)
            self._snapshot.billed_through.update(found.billed_through)
            self._snapshot.event_rules.update(found.event_rules)
            for customer in found.customers:  # limits removed since the last lookup are removed here too
                self._snapshot.limits.pop(customer, None)
                self._snapshot.plan_defaults.pop(customer, None)
            self._snapshot.limits.update(found.limits)
            self._snapshot.plan_defaults.update(found.plan_defaults)
            self._snapshot.advance_meters.update(found.advance_meters)
            self._loaded_at.update({f"c:{c}": now for c in found.customers})
            self._loaded_at.update({f"m:{m}": now for m in found.meters})
        return self._snapshot
