"""Billing state, billing runs, pending adjustments and operator idempotency in the billing table.

Items (``pk`` / ``sk``):

- ``BST#{subscription}`` / ``#`` - the subscription's billing state: ``anchor``, ``interval``,
  ``next_seq`` (the next window to bill), ``status`` (active, ended), ``ends_at``, ``last_invoice_id``,
  ``enqueued_seq`` / ``enqueued_at``. While a window is due it carries ``due_shard = bst#{n}`` and
  ``due_at`` (sparse index ``by-due``), so the scheduler reads only what is due.
- ``RUN#{id}`` / ``#`` - a billing run record, listed through ``by-list`` (``list_pk = RUNS``).
- ``ADJ#{subscription}`` / ``{original_invoice}#{line_id}#{n}`` - a correction of a finalized invoice's
  line (late events, an operator rerun): ``pending`` until the next invoice carries it, then ``applied``.
- ``IDEM#{scope}#{key}`` / ``#`` - the first result of an operator action sent with an Idempotency-Key.
- ``LOCK#{name}`` (dal/locks.py), ``INV#{id}`` and ``SEQ#{sequence}`` (dal/invoices.py).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from neruba import jsonutil
from neruba.dal.clients import client
from neruba.dal.cursors import decode_cursor, encode_cursor, names_item
from neruba.dal.dynamo import TransactionCancelledError as TransactionCancelledError  # importers use both
from neruba.dal.dynamo import from_item, put_if_absent, to_item
from neruba.dal.transaction import Transaction
from neruba.timefmt import ts

DUE_INDEX = "by-due"
LIST_INDEX = "by-list"
DUE_SHARDS = 8


def shard_of(key: str, prefix: str) -> str:
    """The due-index shard of a key: ``{prefix}#{0..DUE_SHARDS-1}``.

    Example:
        >>> shard_of("sub_1", "bst").startswith("bst#")
        True
    """
    return f"{prefix}#{int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % DUE_SHARDS}"


def _state_key(subscription_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"BST#{subscription_id}"}, "sk": {"S": "#"}}


class BillingRepository:
    """Billing states, runs, adjustments and idempotency records of one billing table."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ---------------------------------------------------------------- billing state
    def put_state_if_absent(self, state: dict[str, Any]) -> bool:
        """Create a billing state unless one exists; True if this call created it."""
        return put_if_absent(
            self.table_name, {"pk": f"BST#{state['subscription_id']}", "sk": "#", "ver": 1, **state}
        )

    def state_put_item(self, state: dict[str, Any]) -> dict[str, Any]:
        """A TransactWriteItems ``Put`` creating a billing state (condition: none exists yet)."""
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item({"pk": f"BST#{state['subscription_id']}", "sk": "#", "ver": 1, **state}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def end_item(self, state: dict[str, Any], ends_at: datetime) -> dict[str, Any] | None:
        """An Update ending billing of an active ``state`` (as read) early, at ``ends_at`` (a subscription
        canceled immediately), for the cancellation's transaction.

        Records ``ends_at`` and brings ``due_at`` forward to it when the next window was due later, so the
        final (clipped) window is billed at the end, not at the period's old end. The condition (still
        active, ``due_at`` as read) makes a state that moved meanwhile cancel the transaction, so the
        caller reads it again. None when the state is not active.
        """
        if state.get("status") != "active":
            return None
        due = str(state["due_at"])
        expression = "SET ends_at = :e" + (", due_at = :e" if due > ts(ends_at) else "") + " ADD ver :one"
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _state_key(str(state["subscription_id"])),
                "UpdateExpression": expression,
                "ConditionExpression": "#st = :active AND due_at = :due",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(
                    {":e": ts(ends_at), ":active": "active", ":one": 1, ":due": due}
                ),
            }
        }

    def state(self, subscription_id: str) -> dict[str, Any] | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=_state_key(subscription_id), ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None

    def due_states(self, now: datetime, shard: int) -> Iterator[dict[str, Any]]:
        """Billing states due at ``now`` in one shard of the sparse index (pages of 1 MB)."""
        yield from self._due("bst", shard, now)

    def _due(self, prefix: str, shard: int, now: datetime) -> Iterator[dict[str, Any]]:
        paginator = client("dynamodb").get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table_name,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_shard = :s AND due_at <= :now",
            ExpressionAttributeValues=to_item({":s": f"{prefix}#{shard}", ":now": ts(now)}),
        ):
            yield from (from_item(item) for item in page.get("Items", []))

    def mark_enqueued_item(self, subscription_id: str, seq: int, now: datetime) -> dict[str, Any]:
        """An Update action recording that windows up to ``seq`` were enqueued at ``now``."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _state_key(subscription_id),
                "UpdateExpression": "SET enqueued_seq = :seq, enqueued_at = :now",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": to_item({":seq": seq, ":now": ts(now)}),
            }
        }

    def advance_item(
        self,
        subscription_id: str,
        seq: int,
        invoice_id: str,
        next_due: datetime | None,
        ends_at: datetime | None,
    ) -> dict[str, Any]:
        """Move the state from window ``seq`` to ``seq + 1`` (condition: it is still at ``seq``).

        ``next_due`` None ends billing (the subscription ended): the state leaves the due index.
        """
        values: dict[str, Any] = {":seq": seq, ":next": seq + 1, ":inv": invoice_id, ":one": 1}
        sets = ["next_seq = :next", "last_invoice_id = :inv", "last_seq = :seq"]
        removes: list[str] = []
        if next_due is None:
            sets.append("#st = :ended")
            values[":ended"] = "ended"
            removes += ["due_shard", "due_at"]
        else:
            sets.append("due_at = :due")
            values[":due"] = ts(next_due)
        if ends_at is not None:
            sets.append("ends_at = :ends")
            values[":ends"] = ts(ends_at)
        expression = "SET " + ", ".join(sets) + " ADD ver :one"
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        update: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": _state_key(subscription_id),
            "UpdateExpression": expression,
            "ConditionExpression": "next_seq = :seq",
            "ExpressionAttributeValues": to_item(values),
        }
        if next_due is None:
            update["ExpressionAttributeNames"] = {"#st": "status"}
        return {"Update": update}

    def end_state_item(self, subscription_id: str, seq: int) -> dict[str, Any]:
        """An Update ending billing of a subscription whose window ``seq`` does not exist."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _state_key(subscription_id),
                "UpdateExpression": "SET #st = :ended ADD ver :one REMOVE due_shard, due_at",
                "ConditionExpression": "next_seq = :seq",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item({":ended": "ended", ":seq": seq, ":one": 1}),
            }
        }

    def state_unchanged_item(self, subscription_id: str) -> dict[str, Any]:
        """A ConditionCheck that billing of the subscription has not ended (or has no state yet): writes
        meant for its next invoice are refused once no next invoice will exist."""
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": _state_key(subscription_id),
                "ConditionExpression": "attribute_not_exists(pk) OR #st <> :ended",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item({":ended": "ended"}),
            }
        }

    # ---------------------------------------------------------------- runs
    def run_put_item(self, run: dict[str, Any]) -> dict[str, Any]:
        item = {
            "pk": f"RUN#{run['id']}",
            "sk": "#",
            "list_pk": "RUNS",
            "list_sk": f"{run['started_at']}#{run['id']}",
            **run,
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def run_update_item(self, run_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        names = {f"#f{i}": name for i, name in enumerate(changes)}
        values = {f":v{i}": value for i, value in enumerate(changes.values())}
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "#"}},
                "UpdateExpression": "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(changes))),
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": to_item(values),
            }
        }

    def run_counter_item(self, run_id: str, counter: str, by: int = 1) -> dict[str, Any]:
        """An Update action adding ``by`` to a run's counter (only if the run exists)."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "#"}},
                "UpdateExpression": "ADD #c :by",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": {"#c": counter},
                "ExpressionAttributeValues": to_item({":by": by}),
            }
        }

    def add_to_run(self, run_id: str, counter: str, by: int = 1) -> None:
        """Add to a run's counter outside a transaction (a missing run is ignored)."""
        with contextlib.suppress(TransactionCancelledError):
            Transaction([self.run_counter_item(run_id, counter, by)]).commit()

    def run(self, run_id: str) -> dict[str, Any] | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        return _public(from_item(response["Item"])) if "Item" in response else None

    def runs(self, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Runs, newest first, and the cursor of the next page."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": LIST_INDEX,
            "KeyConditionExpression": "list_pk = :p",
            "ExpressionAttributeValues": to_item({":p": "RUNS"}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        query = {"list": "billing_runs", "order": "newest"}
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(
                cursor,
                query,
                keys=frozenset({"pk", "sk", "list_pk", "list_sk"}),
                within=("list_pk", "RUNS"),
                agrees=names_item("RUN#"),
            )
        response = client("dynamodb").query(**kwargs)
        last = response.get("LastEvaluatedKey")
        return [_public(from_item(i)) for i in response.get("Items", [])], encode_cursor(
            last, query
        ) if last else None

    # ---------------------------------------------------------------- adjustments
    def adjustments(self, subscription_id: str) -> list[dict[str, Any]]:
        """Every adjustment recorded for a subscription's finalized invoices (pending and applied), each
        as written by :meth:`adjustment_put_item`: identified by its ``key`` (what
        :meth:`adjustment_apply_item` takes), its ``line`` decoded, without the table's key attributes."""
        items: list[dict[str, Any]] = []
        paginator = client("dynamodb").get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=to_item({":pk": f"ADJ#{subscription_id}"}),
            ConsistentRead=True,
        ):
            items.extend(from_item(i) for i in page.get("Items", []))
        for item in items:
            item["line"] = jsonutil.loads(item["line"])
            item["key"] = item.pop("sk")
            del item["pk"]
        return items

    def adjustment_put_item(self, subscription_id: str, adjustment: dict[str, Any]) -> dict[str, Any]:
        """A Put of a new adjustment (condition: that key is new)."""
        item = {
            "pk": f"ADJ#{subscription_id}",
            "sk": adjustment["key"],
            **{k: v for k, v in adjustment.items() if k not in ("line", "key")},
            "line": jsonutil.dumps(adjustment["line"]),
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def adjustment_apply_item(self, subscription_id: str, key: str, invoice_id: str) -> dict[str, Any]:
        """Mark a pending adjustment applied to ``invoice_id`` (condition: still pending)."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": {"S": f"ADJ#{subscription_id}"}, "sk": {"S": key}},
                "UpdateExpression": "SET #st = :applied, applied_to = :inv",
                "ConditionExpression": "#st = :pending",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(
                    {":applied": "applied", ":pending": "pending", ":inv": invoice_id}
                ),
            }
        }

    # ---------------------------------------------------------------- markers
    def marker(self, name: str) -> dict[str, Any] | None:
        """A one-off marker (``MARK#{name}``), e.g. that the billing-state backfill ran."""
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"MARK#{name}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        return from_item(response["Item"]) if "Item" in response else None

    def set_marker(self, name: str, at: datetime) -> None:
        item = {"pk": f"MARK#{name}", "sk": "#", "at": ts(at)}
        client("dynamodb").put_item(TableName=self.table_name, Item=to_item(item))

    # ---------------------------------------------------------------- operator idempotency
    def idempotent_result(self, scope: str, key: str) -> dict[str, Any] | None:
        """The stored first result of ``key`` (``fingerprint``, ``result``), or None."""
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"IDEM#{scope}#{key}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        item = from_item(response["Item"])
        return {"fingerprint": item["fingerprint"], "result": jsonutil.loads(item["result"])}

    def idempotency_put_item(self, scope: str, key: str, fingerprint: str, result: Any) -> dict[str, Any]:
        item = {
            "pk": f"IDEM#{scope}#{key}",
            "sk": "#",
            "fingerprint": fingerprint,
            "result": jsonutil.dumps(result),
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """A stored record without its key and index attributes; whole Decimals become ints."""
    hidden = {"pk", "sk", "list_pk", "list_sk", "due_shard", "due_at"}
    return {k: _plain(v) for k, v in item.items() if k not in hidden}


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
