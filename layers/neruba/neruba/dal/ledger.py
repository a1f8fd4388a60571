"""Postings, balances and credit grants in the ledger table.

Items (all strings keys ``pk``/``sk``; times as fixed-width UTC text so they compare as strings):

- ``IDEM#{customer}#{idempotency_key}`` / ``#``: the posting's guard, holding the posting itself.
  Put with ``attribute_not_exists(pk)`` and ``ReturnValuesOnConditionCheckFailure=ALL_OLD``, always the
  FIRST action of the transaction, so a retry is cancelled there and the stored posting comes back in
  ``CancellationReasons[0].Item``.
- ``CUS#{customer}`` / ``PST#{at}#{posting_id}``: the posting for listing and reconciliation (immutable).
- ``CUS#{customer}`` / ``BAL#{currency}#{account}[#{grant}]``: materialised debit-positive balance,
  ``ADD bal`` in the posting's transaction.
- ``GRANT#{grant_id}`` / ``#``: a credit grant with ``remaining_minor``; GSI ``by-customer``
  (``gsi1pk=GRT#{customer}``, ``gsi1sk``) lists a customer's grants, sparse GSI ``by-expiry``
  (``exp_pending``, ``expires_at``) finds grants due to expire.
- ``GRS#{invoice_id}`` / ``GRANT#{grant_id}``: what corrections gave back to a grant of what the invoice
  consumed (``restored_minor``, per line and per source), put conditional on the record as read.
- ``DSP#{dispute_id}`` / ``#`` disputes, ``CUS#{customer}`` / ``TOPUP#{currency}`` auto top-up rules,
  ``CUS#{customer}`` / ``TOPUPREQ#{request_id}`` top-up requests (see ``neruba.dal.top_ups``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from neruba.dal.clients import client
from neruba.dal.cursors import decode_cursor, encode_cursor
from neruba.dal.disputes import DisputesRepository
from neruba.dal.dynamo import batch_get, from_item, query_items, to_item, to_value
from neruba.dal.payments import PaymentsRepository
from neruba.dal.top_ups import TopUpRepository
from neruba.dal.transaction import Cancelled, Transaction
from neruba.domain.credits import CreditApplication, CreditGrant, applied_by_grant
from neruba.domain.ledger import NEVER_NEGATIVE, Posting
from neruba.timefmt import parse_ts, ts

POSTING_GUARD = "posting_guard"
"""The name of a posting's actions in a transaction (``Transaction.extend(..., name=POSTING_GUARD)``):
:meth:`LedgerRepository.retried_posting` finds the idempotency guard's cancellation reason by it."""


class LedgerConflictError(Exception):
    """A ledger transaction was cancelled for another reason than a retried posting (e.g. a grant's
    remainder changed): read again and retry."""

    def __init__(self, message: str, reasons: list[str | None] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []


def grant_from_item(values: dict[str, Any]) -> CreditGrant:
    codes = values.get("meter_codes")
    return CreditGrant(
        grant_id=values["grant_id"],
        customer_id=values["customer_id"],
        kind=values["kind"],
        amount_minor=int(values["amount_minor"]),
        remaining_minor=int(values["remaining_minor"]),
        currency=values["currency"],
        priority=int(values["priority"]),
        effective_at=parse_ts(values["effective_at"]),
        expires_at=parse_ts(values["expires_at"]) if values.get("expires_at") else None,
        meter_codes=tuple(json.loads(codes)) if codes is not None else None,
        status=values["status"],
        created_at=parse_ts(values["created_at"]) if values.get("created_at") else None,
    )


@dataclass(frozen=True, slots=True)
class BalanceDifference:
    """One difference :meth:`LedgerRepository.reconcile` found: a materialised balance (``kind``
    ``balance``: its currency and key) or a grant's remainder (``grant``: its id) that is ``stored``
    while the postings give ``computed``."""

    kind: str
    stored: int
    computed: int
    currency: str | None = None
    key: str | None = None
    grant_id: str | None = None

    def view(self) -> dict[str, Any]:
        """The difference as the sweep report shows it."""
        if self.kind == "grant":
            return {
                "kind": "grant",
                "grant_id": self.grant_id,
                "stored": self.stored,
                "computed": self.computed,
            }
        return {"kind": self.kind, "currency": self.currency, "key": self.key, "stored": self.stored,
                "computed": self.computed}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RestoredGrant:
    """What corrections gave back to one grant of what one invoice consumed of it: in all, per line of
    the invoice, and per source (``{source_id, amount_minor, posting_id, at}``)."""

    grant_id: str
    restored_minor: int
    lines: dict[str, int]
    sources: list[dict[str, Any]]


class LedgerRepository:
    """Idempotent postings, balances and grants."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ------------------------------------------------------------------ records sharing the table
    # Payments, disputes and top-ups live in the ledger's table: their items join a posting's transaction,
    # so the ledger hands out the repositories on its own table rather than callers building them.
    @property
    def payments(self) -> PaymentsRepository:
        """Payment records on this ledger's table."""
        return PaymentsRepository(self.table_name)

    @property
    def disputes(self) -> DisputesRepository:
        """Disputes on this ledger's table."""
        return DisputesRepository(self.table_name)

    @property
    def top_ups(self) -> TopUpRepository:
        """Auto top-up rules and requests on this ledger's table."""
        return TopUpRepository(self.table_name)

    # ------------------------------------------------------------------ postings
    def posting_items(self, posting: Posting) -> list[dict[str, Any]]:
        """TransactWriteItems actions for ``posting``; the first is the idempotency guard.

        Add them to a :class:`Transaction` under the name ``POSTING_GUARD``; on :class:`Cancelled` call
        :meth:`retried_posting` to recognise a retry (it reads the guard by that name, wherever it stands).
        """
        doc = json.dumps(posting.to_dict(), sort_keys=True)
        customer = posting.customer_id
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": to_item(
                        {
                            "pk": f"IDEM#{customer}#{posting.idempotency_key}",
                            "sk": "#",
                            "posting": doc,
                            "posting_sk": f"PST#{ts(posting.at)}#{posting.posting_id}",
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": to_item(
                        {
                            "pk": f"CUS#{customer}",
                            "sk": f"PST#{ts(posting.at)}#{posting.posting_id}",
                            "posting": doc,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        for key, delta in sorted(posting.deltas().items()):
            if delta == 0:
                continue
            items.append(self._balance_move(customer, posting.currency, key, delta, 1))
        return items

    def _balance_move(
        self, customer: str, currency: str, key: str, delta: int, postings: int
    ) -> dict[str, Any]:
        """The update moving one materialised balance by ``delta`` for ``postings`` postings."""
        update: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": to_item({"pk": f"CUS#{customer}", "sk": f"BAL#{currency}#{key}"}),
            "UpdateExpression": "ADD bal :d, postings :one",
            "ExpressionAttributeValues": to_item({":d": delta, ":one": postings}),
        }
        if key in NEVER_NEGATIVE and delta < 0:  # the balance read by the write itself: no race
            update["ConditionExpression"] = "bal >= :need"
            update["ExpressionAttributeValues"][":need"] = to_value(-delta)
        return {"Update": update}

    def combine_balance_moves(self, actions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``actions`` with the moves of one materialised balance (several postings in one transaction:
        a correction's credit notes and its own invoice) combined into one update, where the first of them
        stood: DynamoDB refuses two actions on one item in a transaction. The combined move adds the sum of
        the deltas and counts every posting; a never-negative balance is checked against the sum, which
        is what the transaction leaves (docs/ledger.md, "Several postings in one transaction")."""
        moves: dict[tuple[str, str], tuple[int, int]] = {}
        for action in actions:
            key = self._balance_key(action)
            if key is not None:
                values = from_item(action["Update"]["ExpressionAttributeValues"])
                delta, count = moves.get(key, (0, 0))
                moves[key] = (delta + int(values[":d"]), count + int(values[":one"]))
        combined: list[dict[str, Any]] = []
        for action in actions:
            key = self._balance_key(action)
            if key is None:
                combined.append(action)
            elif key in moves:
                (customer, balance), (delta, count) = key, moves.pop(key)
                _bal, currency, account = balance.split("#", 2)
                combined.append(
                    self._balance_move(customer.removeprefix("CUS#"), currency, account, delta, count)
                )
        return combined

    def _balance_key(self, action: dict[str, Any]) -> tuple[str, str] | None:
        """(pk, sk) of a materialised balance's move on this table; None for any other action."""
        update = action.get("Update")
        if not update or update.get("TableName") != self.table_name:
            return None
        key = from_item(update["Key"])
        sk = str(key["sk"])
        return (str(key["pk"]), sk) if sk.startswith("BAL#") else None

    def retried_posting(self, exc: Exception, name: str = POSTING_GUARD) -> Posting | None:
        """The stored posting when ``exc`` cancelled a transaction on the idempotency guard of the actions
        named ``name`` (a retry of a posting already written); else None.

        The guard's reason is found by the actions' name (:class:`Cancelled`), never by position: another
        action that failed first (a grant's decrement on the same retry) is not read as the guard.
        """
        if not isinstance(exc, Cancelled) or not exc.failed(name):
            return None
        stored = exc.item(name)
        if stored is None or "posting" not in stored:
            return None
        return Posting.from_dict(json.loads(stored["posting"]))

    def post(self, posting: Posting, extra_items: Sequence[dict[str, Any]] = ()) -> Posting:
        """Write ``posting`` (and ``extra_items``) in one transaction; a retry returns the stored posting.

        Raises LedgerConflictError when another condition (a grant, a dispute) cancelled it.
        """
        guard, *rest = self.posting_items(posting)
        unit = Transaction().add(guard, name=POSTING_GUARD).extend(rest).extend(extra_items)
        try:
            unit.commit()
        except Cancelled as exc:
            stored = self.retried_posting(exc)
            if stored is not None:  # a retry: the guard holds the posting written first
                return stored
            raise LedgerConflictError("ledger transaction cancelled", exc.reasons) from exc
        from neruba.observability import metrics

        metrics.add_metric(name="LedgerPostings", unit="Count", value=1)
        return posting

    def stored_posting(self, customer_id: str, idempotency_key: str) -> Posting | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key=to_item({"pk": f"IDEM#{customer_id}#{idempotency_key}", "sk": "#"}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        return Posting.from_dict(json.loads(from_item(response["Item"])["posting"]))

    def postings(
        self, customer_id: str, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[Posting], str | None]:
        """A page of the customer's postings, newest first, and the next page's cursor."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": to_item({":p": f"CUS#{customer_id}", ":s": "PST#"}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        query = {"list": "postings", "customer": customer_id, "order": "newest"}
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(
                cursor,
                query,
                keys=frozenset({"pk", "sk"}),
                within=("pk", f"CUS#{customer_id}"),
                prefix=("sk", "PST#"),
            )
        response = client("dynamodb").query(**kwargs)
        found = [Posting.from_dict(json.loads(from_item(i)["posting"])) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return found, encode_cursor(last, query) if last else None

    def _query_all(self, pk: str, prefix: str) -> list[dict[str, Any]]:
        return list(
            query_items(
                {
                    "TableName": self.table_name,
                    "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
                    "ExpressionAttributeValues": to_item({":p": pk, ":s": prefix}),
                    "ConsistentRead": True,
                }
            )
        )

    def balances(self, customer_id: str) -> dict[str, dict[str, int]]:
        """Materialised balances: currency -> balance key (``account`` or ``account#grant``) -> amount."""
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for item in self._query_all(f"CUS#{customer_id}", "BAL#"):
            _, currency, key = item["sk"].split("#", 2)
            out[currency][key] = int(item["bal"])
        return dict(out)

    def reconcile(self, customer_id: str) -> list[BalanceDifference]:
        """Recompute every balance from the postings' entries and report each difference.

        Also checks each grant's ``remaining_minor`` against its ``prepaid_credit#{grant}`` balance.
        An empty list means the materialised balances agree with the entries.
        """
        computed: dict[tuple[str, str], int] = defaultdict(int)
        for item in self._query_all(f"CUS#{customer_id}", "PST#"):
            posting = Posting.from_dict(json.loads(item["posting"]))
            for key, delta in posting.deltas().items():
                computed[(posting.currency, key)] += delta
        stored = {
            (currency, key): value
            for currency, values in self.balances(customer_id).items()
            for key, value in values.items()
        }
        differences = [
            BalanceDifference("balance", stored.get((c, k), 0), v, currency=c, key=k)
            for (c, k), v in sorted({**dict.fromkeys(stored, 0), **computed}.items())
            if stored.get((c, k), 0) != v
        ]
        for grant in self.grants(customer_id, None, None):
            from_ledger = -computed.get((grant.currency, f"prepaid_credit#{grant.grant_id}"), 0)
            if from_ledger != grant.remaining_minor:
                differences.append(
                    BalanceDifference("grant", grant.remaining_minor, from_ledger, grant_id=grant.grant_id)
                )
        return differences

    # ------------------------------------------------------------------ grants
    def grant_item(self, grant: CreditGrant) -> dict[str, Any]:
        """The Put of a new grant (its posting's guard makes a retry a no-op)."""
        values: dict[str, Any] = {
            "pk": f"GRANT#{grant.grant_id}",
            "sk": "#",
            "gsi1pk": f"GRT#{grant.customer_id}",
            "gsi1sk": f"{ts(grant.effective_at)}#{grant.grant_id}",
            "grant_id": grant.grant_id,
            "customer_id": grant.customer_id,
            "kind": grant.kind,
            "amount_minor": grant.amount_minor,
            "remaining_minor": grant.remaining_minor,
            "currency": grant.currency,
            "priority": grant.priority,
            "effective_at": ts(grant.effective_at),
            "expires_at": ts(grant.expires_at) if grant.expires_at else None,
            "exp_pending": "1" if grant.expires_at else None,
            "meter_codes": json.dumps(list(grant.meter_codes)) if grant.meter_codes is not None else None,
            "status": grant.status,
            "created_at": ts(grant.created_at) if grant.created_at else None,
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(values),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def grant_consumption_items(
        self, applications: Iterable[CreditApplication], *, at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """One conditional decrement per grant: enough remainder, active, effective at ``at`` and not
        expired at the later of ``at`` and now (an expired remainder is never applied, even to an
        invoice of an earlier period).

        ``at`` defaults to now; pass the time the credits were allocated at.
        """
        now = datetime.now(UTC)
        moment = ts(at or now)
        expiry_moment = ts(max(at or now, now))
        items = []
        for grant_id, amount in sorted(applied_by_grant(applications).items()):
            if amount <= 0:
                raise ValueError("applications are positive amounts")
            items.append(
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": to_item({"pk": f"GRANT#{grant_id}", "sk": "#"}),
                        "UpdateExpression": "SET remaining_minor = remaining_minor - :a",
                        "ConditionExpression": (
                            "remaining_minor >= :a AND #st = :active AND effective_at <= :at"
                            " AND (attribute_not_exists(expires_at) OR expires_at > :now)"
                        ),
                        "ExpressionAttributeNames": {"#st": "status"},
                        "ExpressionAttributeValues": to_item(
                            {":a": amount, ":active": "active", ":at": moment, ":now": expiry_moment}
                        ),
                    }
                }
            )
        return items

    def grant_close_item(self, grant: CreditGrant, status: str) -> dict[str, Any]:
        """Expire or void a grant: remainder to 0, conditional on the remainder it had when read."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": f"GRANT#{grant.grant_id}", "sk": "#"}),
                "UpdateExpression": "SET #st = :status, remaining_minor = :zero REMOVE exp_pending",
                "ConditionExpression": "#st = :active AND remaining_minor = :seen",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(
                    {":status": status, ":zero": 0, ":active": "active", ":seen": grant.remaining_minor}
                ),
            }
        }

    def grant_restore_item(self, grant: CreditGrant, amount_minor: int, now: datetime) -> dict[str, Any]:
        """Raise an active grant's remainder by ``amount_minor`` (credit a correction gives back to it,
        ``logic.billing.grant_restores``): conditional on the grant still active, not expired at ``now``
        and its remainder staying within its amount. A grant closed meanwhile cancels the transaction, and
        the retry decides again (restore and close at once)."""
        if amount_minor <= 0:
            raise ValueError("a restoration is a positive amount")
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": f"GRANT#{grant.grant_id}", "sk": "#"}),
                "UpdateExpression": "SET remaining_minor = remaining_minor + :r",
                "ConditionExpression": (
                    "#st = :active AND remaining_minor <= :room"
                    " AND (attribute_not_exists(expires_at) OR expires_at > :now)"
                ),
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(
                    {
                        ":r": amount_minor,
                        ":room": grant.amount_minor - amount_minor,
                        ":active": "active",
                        ":now": ts(now),
                    }
                ),
            }
        }

    def combine_grant_moves(self, actions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``actions`` with a grant's consumption and its restoration in one transaction (a window
        consuming credit of a grant that one of its corrections gives back to) merged into one update,
        where the consumption stood: the remainder moved by their difference, on both conditions, the
        consumption's remainder floor lowered by what the restoration adds (the window may apply the
        credit it gives back: ``logic.billing.context.credits_for``), so the remainder as read covers
        the difference and the result stays within the grant's amount."""
        actions = self._fold_restorations(actions)
        restores: dict[str, dict[str, Any]] = {}
        consumed: set[str] = set()
        for action in actions:
            update = action.get("Update") or {}
            key = str(from_item(update.get("Key") or {}).get("pk", "")) if update else ""
            if update.get("TableName") != self.table_name or not key.startswith("GRANT#"):
                continue
            if ":r" in update["ExpressionAttributeValues"]:
                restores[key] = action
            elif ":a" in update["ExpressionAttributeValues"]:
                consumed.add(key)
        merged = {k: v for k, v in restores.items() if k in consumed}
        if not merged:
            return list(actions)
        out: list[dict[str, Any]] = []
        for action in actions:
            update = action.get("Update") or {}
            key = str(from_item(update.get("Key") or {}).get("pk", "")) if update else ""
            if key in merged and action is merged[key]:
                continue  # folded into the consumption
            if key in merged and update.get("TableName") == self.table_name:
                restore = merged[key]["Update"]
                given = from_item(restore["ExpressionAttributeValues"])
                taken = int(from_item(update["ExpressionAttributeValues"])[":a"])
                need = max(taken - int(given[":r"]), 0)
                values = {
                    **update["ExpressionAttributeValues"],
                    **to_item({":r": int(given[":r"]), ":room": int(given[":room"]) + taken, ":need": need}),
                }
                condition = update["ConditionExpression"].replace(
                    "remaining_minor >= :a", "remaining_minor >= :need"
                )
                out.append({"Update": {
                    **update,
                    "UpdateExpression": "SET remaining_minor = remaining_minor - :a + :r",
                    "ConditionExpression": condition + " AND remaining_minor <= :room",
                    "ExpressionAttributeValues": values,
                }})  # fmt: skip
                continue
            out.append(action)
        return out

    def _fold_restorations(self, actions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``actions`` with two restorations of one grant (a draft's revision giving back what its
        settlement and its own lines took of it) folded into the first: the remainder raised by their
        sum, within the grant's amount."""
        first: dict[str, int] = {}
        out: list[dict[str, Any]] = []
        for action in actions:
            update = action.get("Update") or {}
            key = str(from_item(update.get("Key") or {}).get("pk", "")) if update else ""
            restoring = update.get("TableName") == self.table_name and key.startswith("GRANT#")
            if (
                not restoring
                or ":r" not in update["ExpressionAttributeValues"]
                or ":a" in update["ExpressionAttributeValues"]
            ):
                out.append(action)
                continue
            if key not in first:
                first[key] = len(out)
                out.append(action)
                continue
            kept = out[first[key]]["Update"]
            was = from_item(kept["ExpressionAttributeValues"])
            more = int(from_item(update["ExpressionAttributeValues"])[":r"])
            values = {
                **kept["ExpressionAttributeValues"],
                **to_item({":r": int(was[":r"]) + more, ":room": int(was[":room"]) - more}),
            }
            out[first[key]] = {"Update": {**kept, "ExpressionAttributeValues": values}}
        return out

    def restored(self, invoice_id: str) -> dict[str, RestoredGrant]:
        """What corrections gave back to each grant of what ``invoice_id`` consumed (grant id -> record)."""
        out: dict[str, RestoredGrant] = {}
        for item in self._query_all(f"GRS#{invoice_id}", "GRANT#"):
            grant_id = str(item["sk"]).removeprefix("GRANT#")
            out[grant_id] = RestoredGrant(
                grant_id,
                int(item["restored_minor"]),
                {k: int(v) for k, v in json.loads(item["lines"]).items()},
                list(json.loads(item["sources"])),
            )
        return out

    def restoration_item(
        self, invoice_id: str, seen: RestoredGrant | None, after: RestoredGrant
    ) -> dict[str, Any]:
        """The record of what ``invoice_id`` has given back to grant ``after.grant_id`` in all, conditional
        on the record as read (``seen``; None: none yet): two corrections giving back the same invoice's
        credit at once commit one, the other decides again, so a grant never gets back more than the
        invoice consumed of it."""
        values = {
            "pk": f"GRS#{invoice_id}",
            "sk": f"GRANT#{after.grant_id}",
            "invoice_id": invoice_id,
            "grant_id": after.grant_id,
            "restored_minor": after.restored_minor,
            "lines": json.dumps(after.lines, sort_keys=True),
            "sources": json.dumps(after.sources, sort_keys=True),
        }
        put: dict[str, Any] = {"TableName": self.table_name, "Item": to_item(values)}
        if seen is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "restored_minor = :seen"
            put["ExpressionAttributeValues"] = to_item({":seen": seen.restored_minor})
        return {"Put": put}

    def grant(self, grant_id: str) -> CreditGrant | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key=to_item({"pk": f"GRANT#{grant_id}", "sk": "#"}),
            ConsistentRead=True,
        )
        return grant_from_item(from_item(response["Item"])) if "Item" in response else None

    def grants(self, customer_id: str, currency: str | None, at: datetime | None = None) -> list[CreditGrant]:
        """The customer's grants (in ``currency`` when given); with ``at``, only those usable at ``at``.

        Membership comes from the GSI; each grant is then read consistently.
        """
        members = query_items(
            {
                "TableName": self.table_name,
                "IndexName": "by-customer",
                "KeyConditionExpression": "gsi1pk = :p",
                "ExpressionAttributeValues": to_item({":p": f"GRT#{customer_id}"}),
                "ProjectionExpression": "pk, sk",
            }
        )
        keys = [to_item({"pk": item["pk"], "sk": item["sk"]}) for item in members]
        found = self._read_grants(keys)
        grants = [g for g in found if currency is None or g.currency == currency]
        if at is not None:
            grants = [g for g in grants if g.usable_at(at)]
        return sorted(grants, key=lambda g: (g.effective_at, g.grant_id))

    def grants_page(
        self, customer_id: str, limit: int, cursor: str | None
    ) -> tuple[list[CreditGrant], str | None]:
        """One page of the customer's grants, oldest effective first (the ``by-customer`` index's order),
        and the cursor of the next (None: the last page); a cursor another list handed out, or one whose
        table key is not the grant its index key names, raises ``InvalidCursorError``."""
        partition = f"GRT#{customer_id}"
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "by-customer",
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": to_item({":p": partition}),
            "ProjectionExpression": "pk, sk",
            "Limit": limit,
        }
        query = {"list": "credit_grants", "customer": customer_id, "order": "effective"}
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(
                cursor,
                query,
                keys=frozenset({"pk", "sk", "gsi1pk", "gsi1sk"}),
                within=("gsi1pk", partition),
                agrees=_names_grant,
            )
        response = client("dynamodb").query(**kwargs)
        found = self._read_grants([{"pk": i["pk"], "sk": i["sk"]} for i in response.get("Items", [])])
        last = response.get("LastEvaluatedKey")
        page = sorted(found, key=lambda g: (g.effective_at, g.grant_id))
        return page, encode_cursor(last, query) if last else None

    def _read_grants(self, keys: list[dict[str, Any]]) -> list[CreditGrant]:
        """The grants of these table keys, each read consistently (``batch_get``), in no particular order."""
        return [grant_from_item(item) for item in batch_get(self.table_name, keys)]

    def grants_due(self, now: datetime, limit: int = 100) -> list[CreditGrant]:
        """Active grants whose ``expires_at`` is at or before ``now`` (the expiry job's work)."""
        response = client("dynamodb").query(
            TableName=self.table_name,
            IndexName="by-expiry",
            KeyConditionExpression="exp_pending = :one AND expires_at <= :now",
            ExpressionAttributeValues=to_item({":one": "1", ":now": ts(now)}),
            Limit=limit,
        )
        ids = [from_item(i)["grant_id"] for i in response.get("Items", [])]
        grants = [self.grant(grant_id) for grant_id in ids]
        return [g for g in grants if g is not None]

    def all_postings(self) -> Iterable[Posting]:
        """Every posting of every customer (a table scan: for migrations)."""
        from neruba.dal import maintenance

        for item in maintenance.scan(self.table_name, "begins_with(sk, :p)", {":p": "PST#"}):
            yield Posting.from_dict(json.loads(item["posting"]))

    # ------------------------------------------------------------------ reads for the ops sweep
    def posting_docs_between(self, customer_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The customer's postings with ``at`` in ``[start, end)`` as stored (the raw JSON documents, not
        validated, so an unbalanced one can still be read and reported). Each gets ``_sk``, its sort key.

        One query on the customer's partition, bounded by the sort key (``PST#{at}#...``).
        """
        out: list[dict[str, Any]] = []
        request = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": to_item(
                {":p": f"CUS#{customer_id}", ":lo": f"PST#{ts(start)}", ":hi": f"PST#{ts(end)}"}
            ),
            "ConsistentRead": True,
        }
        for item in query_items(request):
            if item["sk"] >= f"PST#{ts(end)}":
                continue
            doc = json.loads(item["posting"])
            doc["_sk"] = item["sk"]
            out.append(doc)
        return out

    def balance_records(self, customer_id: str) -> dict[tuple[str, str], tuple[int, int]]:
        """Materialised balances with their posting counters: (currency, key) -> (``bal``, ``postings``)."""
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for item in self._query_all(f"CUS#{customer_id}", "BAL#"):
            _, currency, key = item["sk"].split("#", 2)
            out[(currency, key)] = (int(item.get("bal", 0)), int(item.get("postings", 0)))
        return out


def _names_grant(key: dict[str, str]) -> bool:
    """A ``by-customer`` cursor names one grant: its table key is ``GRANT#{id}`` / ``#`` and its index
    key ends with ``#{id}``."""
    grant_id = key["pk"].removeprefix("GRANT#")
    return key["pk"].startswith("GRANT#") and key["sk"] == "#" and key["gsi1sk"].endswith(f"#{grant_id}")
