"""Billing state, billing runs, pending adjustments and operator idempotency in the billing table.

Items (``pk`` / ``sk``):

- ``BST#{subscription}`` / ``#`` - the subscription's billing state: ``anchor``, ``interval``,
  ``next_seq`` (the next window to bill), ``status`` (active, ended), ``ends_at``, ``last_invoice_id``,
  ``enqueued_seq`` / ``enqueued_at``. While a window is due it carries ``due_shard = bst#{n}`` and
  ``due_at`` (sparse index ``by-due``), so the scheduler reads only what is due.
- ``RUN#{id}`` / ``#`` - a billing run record, listed through ``by-list`` (``list_pk = RUNS``).
- ``ADJ#{subscription}`` / ``{original_invoice}#{line_id}#{n}`` - a correction of a finalized invoice's
  line (late events, an operator rerun): ``pending`` until the next invoice carries it, then ``applied``.
  While pending it is listed through ``by-list`` (``list_pk = ADJP#{subscription}``, ``list_sk`` its
  key; taken out by the update applying it), so the pending ones are read without the applied ones
  (:meth:`BillingRepository.pending_adjustments`).
- ``IDEM#{scope}#{key}`` / ``#`` - the first result of an operator action sent with an Idempotency-Key.
- ``OOC#{customer}`` / ``{charge_id}`` - a one-off charge (dal/one_offs.py).
- ``BACKFILL`` / ``{backfill_id}`` and ``BFEV#{backfill_id}`` - backfills and their held events
  (dal/backfills.py).
- ``CN#{id}`` / ``#`` and ``SEQ#CN`` - credit notes and their numbers (dal/credit_notes.py).
- ``THR#{subscription}`` / ``{period_start}`` - what threshold invoices billed of a period
  (dal/thresholds.py).
- ``ADV#``, ``ADVP#``, ``ADVU#`` - pay-in-advance billing (dal/advance.py).
- ``CPN``, ``DSC#...``, ``DSCU#...``, ``TXR``, ``TXJ#...`` - coupons, discounts, tax rates (dal/discounts.py).
- ``LOCK#{name}`` (dal/locks.py), ``INV#{id}`` and ``SEQ#{sequence}`` (dal/invoices.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from neruba import jsonutil
from neruba.dal.clients import client
from neruba.dal.cursors import decode_cursor, encode_cursor, names_item
from neruba.dal.due_index import DUE_SHARDS as DUE_SHARDS
from neruba.dal.due_index import due_items
from neruba.dal.due_index import shard_of as shard_of
from neruba.dal.dynamo import TransactionCancelledError as TransactionCancelledError  # importers use both
from neruba.dal.dynamo import (
    batch_get,
    from_item,
    partition_items,
    plain,
    put_if_absent,
    query_items,
    record,
    to_item,
)
from neruba.timefmt import ts

if TYPE_CHECKING:
    from neruba.dal.advance import AdvanceRepository
    from neruba.dal.backfills import BackfillsRepository
    from neruba.dal.credit_notes import CreditNotesRepository
    from neruba.dal.discounts import DiscountsRepository
    from neruba.dal.features import FeaturesRepository
    from neruba.dal.one_offs import OneOffRepository
    from neruba.dal.thresholds import ThresholdsRepository

LIST_INDEX = "by-list"
PENDING = "ADJP#"  # by-list partition of a subscription's pending adjustments


@dataclass(frozen=True)
class BillingState:
    """A subscription's billing state: the next window to bill, and while one is due, when."""

    subscription_id: str
    customer_id: str
    status: Literal["active", "ended"]
    anchor: str
    """The subscription's start, where its windows are counted from (stored time text)."""
    interval: str
    next_seq: int
    """The next window to bill (0 is the opening window)."""
    due_at: str | None = None
    ends_at: str | None = None
    enqueued_seq: int | None = None
    """The last window sent to the billing queue, and when (a scheduler does not send it again soon)."""
    enqueued_at: str | None = None
    thresholds_issued: int = 0
    """Threshold invoices issued for the subscription so far (``dal.thresholds``)."""


def _billing_state(item: dict[str, Any]) -> BillingState:
    return record(BillingState, item)


def _new_state_item(state: BillingState) -> dict[str, Any]:
    """The item of a new billing state (version 1), in the due index while a window is due."""
    item: dict[str, Any] = {
        "pk": f"BST#{state.subscription_id}",
        "sk": "#",
        "ver": 1,
        "subscription_id": state.subscription_id,
        "customer_id": state.customer_id,
        "anchor": state.anchor,
        "interval": state.interval,
        "next_seq": state.next_seq,
        "status": state.status,
    }
    if state.thresholds_issued:
        item["thresholds_issued"] = state.thresholds_issued
    if state.due_at is not None:
        item["due_shard"] = shard_of(state.subscription_id, "bst")
        item["due_at"] = state.due_at
    return item


@dataclass(frozen=True)
class StoredResult:
    """The first answer of an operator action, stored under its Idempotency-Key."""

    fingerprint: str
    """What the request was reduced to (``logic.idempotency.fingerprint``)."""
    result: Any


@dataclass(frozen=True)
class Adjustment:
    """A correction of a finalized invoice's line, waiting for (``pending``) or carried by (``applied``)
    an invoice of the subscription."""

    key: str
    """``{original_invoice}#{line_id}#{n:03d}``: what applies it."""
    original_invoice_id: str
    original_line_id: str
    status: Literal["pending", "applied"]
    line: dict[str, Any]
    """The adjustment line as an invoice carries it."""
    applied_to: str | None = None
    """The invoice that carries it, once applied."""
    created_at: str | None = None


def _adjustment(item: dict[str, Any]) -> Adjustment:
    return record(Adjustment, item, key=str(item["sk"]), line=jsonutil.loads(item["line"]))


@dataclass(frozen=True)
class BillingRun:
    """A billing run: what triggered it, how it ended, what it counted, and ``document``, the run as
    stored (what the admin API answers)."""

    id: str
    trigger: str
    as_of: str
    document: dict[str, Any]
    status: str | None = None
    """``running`` while it works, then ``completed``, ``skipped_locked`` or ``lock_lost``."""
    customer_id: str | None = None
    """The one customer a targeted run covers (None: every due subscription)."""
    windows_found: int = 0
    enqueued: int = 0
    """Windows the scheduler found due, and the jobs it sent (``document`` also counts those it left)."""
    invoiced: int = 0
    failed: int = 0
    """Jobs the worker billed, and jobs that failed for good (counted as each ends)."""
    finalized: int = 0
    """Drafts the run finalized (their grace had passed)."""
    started_at: str | None = None
    ended_at: str | None = None
    lock_token: int | None = None
    """The fencing token of the scheduler lease the run held (None when it held none)."""
    lock_holder: str | None = None
    """The run that held the lease, for a run that found it held (``skipped_locked``)."""


def billing_run(doc: dict[str, Any]) -> BillingRun:
    """A run document (as stored less its keys, or as the scheduler has just built it) as its record."""
    return record(BillingRun, doc, document=doc)


def _state_key(subscription_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"BST#{subscription_id}"}, "sk": {"S": "#"}}


class BillingRepository:
    """Billing states, runs, adjustments and idempotency records of one billing table."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ---------------------------------------------------------------- billing state
    @property
    def thresholds(self) -> ThresholdsRepository:
        """What threshold invoices billed of each period, stored in this table (``dal.thresholds``)."""
        from neruba.dal.thresholds import ThresholdsRepository

        return ThresholdsRepository(self.table_name)

    @property
    def backfills(self) -> BackfillsRepository:
        """The backfills and the events they hold, stored in this table (``dal.backfills``)."""
        from neruba.dal.backfills import BackfillsRepository

        return BackfillsRepository(self.table_name)

    @property
    def one_offs(self) -> OneOffRepository:
        """The one-off charges, stored in this table (``dal.one_offs``)."""
        from neruba.dal.one_offs import OneOffRepository

        return OneOffRepository(self.table_name)

    @property
    def credit_notes(self) -> CreditNotesRepository:
        """The credit notes, stored in this table (``dal.credit_notes``)."""
        from neruba.dal.credit_notes import CreditNotesRepository

        return CreditNotesRepository(self.table_name)

    @property
    def advance(self) -> AdvanceRepository:
        """What events billed in advance, and each period's position (``dal.advance``)."""
        from neruba.dal.advance import AdvanceRepository

        return AdvanceRepository(self.table_name)

    @property
    def discounts(self) -> DiscountsRepository:
        """Coupons, discounts and tax rates, stored in this table (``dal.discounts``)."""
        from neruba.dal.discounts import DiscountsRepository

        return DiscountsRepository(self.table_name)

    @property
    def features(self) -> FeaturesRepository:
        """Which optional billing features a customer and the deployment use (``dal.features``)."""
        from neruba.dal.features import FeaturesRepository

        return FeaturesRepository(self.table_name)

    def put_state_if_absent(self, state: BillingState) -> bool:
        """Create a billing state unless one exists; True if this call created it."""
        return put_if_absent(self.table_name, _new_state_item(state))

    def state_put_item(self, state: BillingState) -> dict[str, Any]:
        """A TransactWriteItems ``Put`` creating a billing state (condition: none exists yet)."""
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(_new_state_item(state)),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def end_item(self, state: BillingState, ends_at: datetime) -> dict[str, Any] | None:
        """An Update ending billing of an active ``state`` (as read) early, at ``ends_at`` (a subscription
        canceled immediately), for the cancellation's transaction.

        Records ``ends_at`` and brings ``due_at`` forward to it when the next window was due later, so the
        final (clipped) window is billed at the end, not at the period's old end. The condition (still
        active, ``due_at`` as read) makes a state that moved meanwhile cancel the transaction, so the
        caller reads it again. None when the state is not active.
        """
        if state.status != "active":
            return None
        due = str(state.due_at)
        expression = "SET ends_at = :e" + (", due_at = :e" if due > ts(ends_at) else "") + " ADD ver :one"
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _state_key(state.subscription_id),
                "UpdateExpression": expression,
                "ConditionExpression": "#st = :active AND due_at = :due",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(
                    {":e": ts(ends_at), ":active": "active", ":one": 1, ":due": due}
                ),
            }
        }

    def state(self, subscription_id: str) -> BillingState | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=_state_key(subscription_id), ConsistentRead=True
        )
        return _billing_state(from_item(response["Item"])) if "Item" in response else None

    def due_states(self, now: datetime, shard: int) -> Iterator[BillingState]:
        """Billing states due at ``now`` in one shard of the sparse index (pages of 1 MB)."""
        yield from (_billing_state(item) for item in self._due("bst", shard, now))

    def _due(self, prefix: str, shard: int, now: datetime) -> Iterator[dict[str, Any]]:
        yield from due_items(self.table_name, prefix, shard, now)

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
        thresholds_issued: int | None = None,
    ) -> dict[str, Any]:
        """Move the state from window ``seq`` to ``seq + 1`` (condition: it is still at ``seq``).

        ``next_due`` None ends billing (the subscription ended): the state leaves the due index.
        ``thresholds_issued`` (the count the window's invoice deducted, ``dal.thresholds``) adds the
        condition that no threshold invoice was issued since it was read.
        """
        values: dict[str, Any] = {":seq": seq, ":next": seq + 1, ":inv": invoice_id, ":one": 1}
        condition = "next_seq = :seq"
        if thresholds_issued == 0:
            condition += " AND attribute_not_exists(thresholds_issued)"
        elif thresholds_issued is not None:
            condition += " AND thresholds_issued = :thr"
            values[":thr"] = thresholds_issued
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
            "ConditionExpression": condition,
            "ExpressionAttributeValues": to_item(values),
        }
        if next_due is None:
            update["ExpressionAttributeNames"] = {"#st": "status"}
        return {"Update": update}

    def threshold_claim_item(self, subscription_id: str, seq: int, issued: int) -> dict[str, Any]:
        """An Update adding one to the state's threshold count, on the condition that billing is still
        active and has not billed usage window ``seq`` yet (the open period's own: the state's next window
        may be an earlier one, the opening included) and the count is ``issued`` (as read)."""
        condition = "next_seq <= :seq AND #st = :active AND "
        condition += "attribute_not_exists(thresholds_issued)" if issued == 0 else "thresholds_issued = :n"
        values: dict[str, Any] = {":seq": seq, ":active": "active", ":one": 1}
        if issued:
            values[":n"] = issued
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _state_key(subscription_id),
                "UpdateExpression": "ADD thresholds_issued :one",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(values),
            }
        }

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

    def run(self, run_id: str) -> BillingRun | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        return billing_run(_public(from_item(response["Item"]))) if "Item" in response else None

    def runs(self, limit: int, cursor: str | None) -> tuple[list[BillingRun], str | None]:
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
        return [billing_run(_public(from_item(i))) for i in response.get("Items", [])], encode_cursor(
            last, query
        ) if last else None

    # ---------------------------------------------------------------- adjustments
    def adjustments(self, subscription_id: str) -> list[Adjustment]:
        """Every adjustment recorded for a subscription's finalized invoices (pending and applied), as
        written by :meth:`adjustment_put_item`; its ``key`` is what :meth:`adjustment_apply_item` takes."""
        return [_adjustment(item) for item in partition_items(self.table_name, f"ADJ#{subscription_id}")]

    def adjustments_of(self, subscription_id: str, invoice_id: str) -> list[Adjustment]:
        """The adjustments recorded for one finalized invoice of the subscription (its keys start with
        ``{invoice_id}#``): one query of that key range, whatever the subscription's other invoices."""
        request = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :inv)",
            "ExpressionAttributeValues": to_item({":pk": f"ADJ#{subscription_id}", ":inv": f"{invoice_id}#"}),
            "ConsistentRead": True,
        }
        return [_adjustment(item) for item in query_items(request)]

    def pending_adjustments(self, subscription_id: str) -> list[Adjustment]:
        """The subscription's pending adjustments, in key order: their keys from ``by-list`` (only pending
        ones are listed there), then the items read consistently and kept while still pending (the index
        follows the table a moment later: one applied meanwhile is left out, one pending a moment ago
        is found by the next reader)."""
        request = {
            "TableName": self.table_name,
            "IndexName": LIST_INDEX,
            "KeyConditionExpression": "list_pk = :p",
            "ExpressionAttributeValues": to_item({":p": f"{PENDING}{subscription_id}"}),
            "ProjectionExpression": "pk, sk",
        }
        keys = [{"pk": {"S": str(i["pk"])}, "sk": {"S": str(i["sk"])}} for i in query_items(request)]
        found = [_adjustment(item) for item in batch_get(self.table_name, keys)]
        return sorted((a for a in found if a.status == "pending"), key=lambda a: a.key)

    def adjustment_put_item(self, subscription_id: str, adjustment: Adjustment) -> dict[str, Any]:
        """A Put of a new adjustment (condition: that key is new); a pending one is listed in ``by-list``
        until it is applied."""
        listed = {"list_pk": f"{PENDING}{subscription_id}", "list_sk": adjustment.key}
        item = {
            **(listed if adjustment.status == "pending" else {}),
            "pk": f"ADJ#{subscription_id}",
            "sk": adjustment.key,
            "original_invoice_id": adjustment.original_invoice_id,
            "original_line_id": adjustment.original_line_id,
            "status": adjustment.status,
            "applied_to": adjustment.applied_to,
            "created_at": adjustment.created_at,
            "line": jsonutil.dumps(adjustment.line),
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def adjustment_apply_item(self, subscription_id: str, key: str, invoice_id: str) -> dict[str, Any]:
        """Mark a pending adjustment applied to ``invoice_id`` (condition: still pending), out of the
        pending list."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": {"S": f"ADJ#{subscription_id}"}, "sk": {"S": key}},
                "UpdateExpression": "SET #st = :applied, applied_to = :inv REMOVE list_pk, list_sk",
                "ConditionExpression": "#st = :pending",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(
                    {":applied": "applied", ":pending": "pending", ":inv": invoice_id}
                ),
            }
        }

    def adjustment_move_item(self, subscription_id: str, key: str, was: str, to: str) -> dict[str, Any]:
        """Move an applied adjustment from ``was`` to ``to`` (a draft revised below zero settling it by
        a credit note; condition: still applied to ``was``)."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": {"S": f"ADJ#{subscription_id}"}, "sk": {"S": key}},
                "UpdateExpression": "SET applied_to = :to",
                "ConditionExpression": "#st = :applied AND applied_to = :was",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item({":applied": "applied", ":was": was, ":to": to}),
            }
        }

    # ---------------------------------------------------------------- markers
    def marker(self, name: str) -> str | None:
        """When a one-off marker (``MARK#{name}``) was set, e.g. that the billing-state backfill ran;
        None when it was not."""
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"MARK#{name}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        return str(from_item(response["Item"]).get("at")) if "Item" in response else None

    def set_marker(self, name: str, at: datetime) -> None:
        item = {"pk": f"MARK#{name}", "sk": "#", "at": ts(at)}
        client("dynamodb").put_item(TableName=self.table_name, Item=to_item(item))

    # ---------------------------------------------------------------- operator idempotency
    def idempotent_result(self, scope: str, key: str) -> StoredResult | None:
        """The stored first result of ``key``, or None."""
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"IDEM#{scope}#{key}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        item = from_item(response["Item"])
        return StoredResult(str(item["fingerprint"]), jsonutil.loads(item["result"]))

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
    return {k: plain(v) for k, v in item.items() if k not in hidden}
