"""Invoices and their number sequences in the billing table.

Items (``pk`` / ``sk``):

- ``INV#{id}`` / ``#`` - the invoice: top-level attributes for what conditions and indexes need
  (``status``, ``rev``, ``customer_id``, ``list_pk = INVC#{customer}``, ``list_sk = {period_start}#{id}``;
  ``by-list`` lists a customer's invoices, ``invoices-by-status`` (``status`` / ``list_sk``) every customer's)
  and the lines, credit applications and Stripe state as exact JSON. A draft carries
  ``due_shard = fin#{n}`` / ``due_at = finalize_at`` in the sparse ``by-due`` index; a finalized invoice
  not yet handed to Stripe sync carries ``due_shard = sync#{n}``; a voided invoice whose void is not yet
  handed to Stripe sync carries ``due_shard = vsync#{n}`` (written by the void's transaction).
- ``SEQ#{sequence}`` / ``#`` - ``n``, the last number given in a sequence; it moves only in the same
  transaction that finalizes an invoice, so numbers have no gaps.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from neruba import jsonutil
from neruba.dal.billing import LIST_INDEX, BillingRepository, shard_of
from neruba.dal.clients import client
from neruba.dal.cursors import decode_cursor, encode_cursor, names_item
from neruba.dal.dynamo import batch_get, from_item, is_condition_failure, query_items, to_item
from neruba.dal.transaction import Cancelled, Transaction
from neruba.domain.credits import CreditApplication
from neruba.timefmt import parse_ts, ts

STATUS_INDEX = "invoices-by-status"
VOID_SYNC_DUE = "vsync"  # the due-index prefix of a void waiting for its Stripe sync message
JSON_FIELDS = (
    "lines",
    "applications",
    "stripe",
    "window",
    "credit_notes",
    "line_credits",
    "completeness",
    "stripe_tax",
)
SEQUENCE = "INV"
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"finalized", "void"}),
    "finalized": frozenset({"paid", "payment_failed", "void"}),
    "payment_failed": frozenset({"paid", "void"}),
    "paid": frozenset(),
    "void": frozenset(),
}
"""The status moves an invoice may make (``set_status`` itself does not check them; callers such as
Stripe effects use :func:`can_transition` or :meth:`InvoicesRepository.transition`)."""


@dataclass(frozen=True)
class InvoiceLine:
    """One line of an invoice: what billing decides on, and the line as stored and answered."""

    line_id: str
    kind: str | None
    """``domain.pricing.LineKind``, ``adjustment`` or ``topup``; None on a line stored without one."""
    quantity: Decimal | None
    amount_minor: int
    description: str | None
    document: dict[str, Any]


@dataclass(frozen=True)
class Invoice:
    """A stored invoice: the fields logic decides on, and ``document``, the invoice as stored (what the
    API answers, less its bookkeeping fields, and what a revision starts from)."""

    id: str
    customer_id: str
    subscription_id: str | None
    currency: str
    status: str
    kind: str | None
    seq: int
    number: str | None
    period_start: str
    period_end: str
    lines: tuple[InvoiceLine, ...]
    applications: tuple[CreditApplication, ...]
    """Credits applied to the lines (the stored document does not keep the grant's kind)."""
    subtotal_minor: int
    credits_applied_minor: int
    total_minor: int
    amount_paid_minor: int | None
    rev: int
    created_at: str | None
    finalized_at: str | None
    stripe: dict[str, Any] | None
    """The Stripe sync state as ``logic/stripe/sync.py`` keeps it, None before a first attempt; what is
    decided on from it is below."""
    sync_status: str | None
    sync_updated_at: str | None
    stripe_invoice_id: str | None
    """The Stripe invoice sync created for this one."""
    stripe_customer_id: str | None
    """The Stripe customer sync sent it to."""
    document: dict[str, Any]


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def invoice_line(line: Mapping[str, Any]) -> InvoiceLine:
    """One line document as its record."""
    quantity = line.get("quantity")
    return InvoiceLine(
        line_id=str(line["line_id"]),
        kind=line.get("kind"),
        quantity=Decimal(str(quantity)) if quantity is not None else None,
        amount_minor=int(line["amount_minor"]),
        description=line.get("description"),
        document=dict(line),
    )


def invoice_record(doc: Mapping[str, Any]) -> Invoice:
    """An invoice document (as stored, or as billing just built it) as its record."""
    paid = doc.get("amount_paid_minor")
    sync = doc.get("stripe") or {}
    return Invoice(
        id=str(doc["id"]),
        customer_id=str(doc.get("customer_id")),
        subscription_id=doc.get("subscription_id"),
        currency=str(doc.get("currency")),
        status=str(doc.get("status")),
        kind=doc.get("kind"),
        seq=_int(doc.get("seq")),
        number=doc.get("number"),
        period_start=str(doc.get("period_start")),
        period_end=str(doc.get("period_end")),
        lines=tuple(invoice_line(line) for line in doc.get("lines") or []),
        applications=tuple(
            CreditApplication(str(a["grant_id"]), str(a["line_id"]), int(a["amount_minor"]))
            for a in doc.get("applications") or []
        ),
        subtotal_minor=_int(doc.get("subtotal_minor")),
        credits_applied_minor=_int(doc.get("credits_applied_minor")),
        total_minor=_int(doc.get("total_minor")),
        amount_paid_minor=int(paid) if paid is not None else None,
        rev=_int(doc.get("rev")),
        created_at=doc.get("created_at"),
        finalized_at=doc.get("finalized_at"),
        stripe=dict(sync) if sync else None,
        sync_status=sync.get("status"),
        sync_updated_at=sync.get("updated_at"),
        stripe_invoice_id=sync.get("invoice_id"),
        stripe_customer_id=sync.get("customer_id"),
        document=dict(doc),
    )


class InvoiceConflictError(Exception):
    """The invoice is not in the expected state (or changed meanwhile)."""


def _key(invoice_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"INV#{invoice_id}"}, "sk": {"S": "#"}}


def format_number(sequence: str, n: int) -> str:
    """``INV-000042``.

    Example:
        >>> format_number("INV", 42)
        'INV-000042'
    """
    return f"{sequence}-{n:06d}"


def can_transition(current: str, new: str) -> bool:
    """Whether an invoice in ``current`` may move to ``new``.

    Example:
        >>> can_transition("payment_failed", "paid"), can_transition("paid", "payment_failed")
        (True, False)
    """
    return new in STATUS_TRANSITIONS.get(current, frozenset())


class InvoicesRepository:
    """Read, create, finalize and update invoices (the contract Stripe sync uses too)."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ---------------------------------------------------------------- reads
    def get(self, invoice_id: str) -> Invoice | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=_key(invoice_id), ConsistentRead=True
        )
        return _invoice(from_item(response["Item"])) if "Item" in response else None

    def get_many(self, invoice_ids: Sequence[str]) -> dict[str, Invoice]:
        """The invoices of ``invoice_ids`` that exist, by id: consistent reads, 100 in one request."""
        found = batch_get(self.table_name, [_key(i) for i in dict.fromkeys(invoice_ids)])
        invoices = [_invoice(item) for item in found]
        return {invoice.id: invoice for invoice in invoices}

    def list(
        self,
        customer_id: str | None,
        status: str | None,
        limit: int,
        cursor: str | None,
        period: tuple[str | None, str | None] = (None, None),
    ) -> tuple[list[Invoice], str | None]:
        """Invoices newest period first, and the next cursor: a customer's (``by-list``, optionally of one
        status), or of one status across customers (``invoices-by-status``; ``customer_id`` None).
        ``period`` bounds ``list_sk`` (``{period_start}#{id}``): (lowest, highest) text, either open."""
        low, high = period
        if customer_id is not None:
            partition, value, index = "list_pk", f"INVC#{customer_id}", LIST_INDEX
        elif status is not None:
            partition, value, index = "status", status, STATUS_INDEX
        else:
            raise ValueError("a customer or a status is needed")
        condition = "#part = :p"
        if low is not None and high is not None:
            condition += " AND list_sk BETWEEN :lo AND :hi"
        elif low is not None:
            condition += " AND list_sk >= :lo"
        elif high is not None:
            condition += " AND list_sk <= :hi"
        by_status = status is not None and customer_id is not None
        names = {"#part": partition, **({"#st": "status"} if by_status else {})}
        values = {":p": value, ":lo": low, ":hi": high, ":inv": "INV#", ":st": status if by_status else None}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "FilterExpression": "begins_with(pk, :inv)" + (" AND #st = :st" if by_status else ""),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item(values),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        query = {"list": "invoices", "customer": customer_id, "status": status, "period": [low, high]}
        query["order"] = "newest"
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(
                cursor,
                query,
                keys=frozenset({"pk", "sk", partition, "list_sk"}),
                within=(partition, value),
                between=("list_sk", low, high),
                agrees=names_item("INV#"),
            )
        docs: list[Invoice] = []
        while True:
            response = client("dynamodb").query(**kwargs)
            docs += [_invoice(from_item(i)) for i in response.get("Items", [])]
            last = response.get("LastEvaluatedKey")
            if not last or len(docs) >= limit:
                break
            kwargs["ExclusiveStartKey"] = last
            kwargs["Limit"] = limit - len(docs)
        return docs, encode_cursor(last, query) if last else None

    def of_customer(self, customer_id: str, since: str | None = None) -> builtins.list[Invoice]:
        """Every invoice of a customer, newest period first (every page of ``list``); with ``since``, only
        those whose ``list_sk`` (``{period_start}#{id}``) sorts at or after that text: a range of the
        ``by-list`` index, so the invoices of earlier periods are never read."""
        found: builtins.list[Invoice] = []
        cursor = None
        while True:
            page, cursor = self.list(customer_id, None, 100, cursor, period=(since, None))
            found += page
            if cursor is None:
                return found

    def drafts_due(self, shard: int, now: datetime) -> Iterator[Invoice]:
        """Drafts whose grace period has passed, in one shard."""
        for item in BillingRepository(self.table_name)._due("fin", shard, now):
            yield _invoice(item)

    def voids_pending(self, shard: int, now: datetime) -> Iterator[Invoice]:
        """Voided invoices whose void is not yet handed to Stripe sync, in one shard."""
        for item in BillingRepository(self.table_name)._due(VOID_SYNC_DUE, shard, now):
            yield _invoice(item)

    def sync_pending(self, shard: int, now: datetime) -> Iterator[Invoice]:
        """Finalized invoices not yet handed to Stripe sync, in one shard."""
        for item in BillingRepository(self.table_name)._due("sync", shard, now):
            yield _invoice(item)

    def sequence_value(self, sequence: str = SEQUENCE) -> int:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"SEQ#{sequence}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        return int(response["Item"]["n"]["N"]) if "Item" in response else 0

    # ---------------------------------------------------------------- transaction actions
    def put_item(self, doc: dict[str, Any], finalize_at: datetime) -> dict[str, Any]:
        """A Put of a new draft invoice (condition: no invoice with that id), due for finalization."""
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(_item(doc, due=("fin", finalize_at))),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def revise_item(self, doc: dict[str, Any], expected_rev: int) -> dict[str, Any]:
        """A Put replacing a draft with a recomputed one (condition: still a draft at ``expected_rev``)."""
        due = ("fin", parse_ts(doc["finalize_at"]))
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(_item({**doc, "rev": expected_rev + 1}, due=due)),
                "ConditionExpression": "#st = :draft AND rev = :rev",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item({":draft": "draft", ":rev": expected_rev}),
            }
        }

    def finalize_items(self, invoice: Invoice, now: datetime) -> builtins.list[dict[str, Any]]:
        """The counter move and the status change that finalize a draft, as two transaction actions.

        The counter's condition is the value read, the invoice's is ``status = draft AND rev = read``; the
        number is the counter's next value, so a number is given exactly when an invoice is finalized.
        """
        current = self.sequence_value(SEQUENCE)
        number = format_number(SEQUENCE, current + 1)
        counter: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": f"SEQ#{SEQUENCE}"}, "sk": {"S": "#"}},
            "UpdateExpression": "SET n = :next",
            "ConditionExpression": "attribute_not_exists(pk)" if current == 0 else "n = :cur",
            "ExpressionAttributeValues": to_item(
                {":next": current + 1, ":cur": current if current else None}
            ),
        }
        invoice_update = {
            "TableName": self.table_name,
            "Key": _key(invoice.id),
            "UpdateExpression": (
                "SET #st = :fin, #num = :num, finalized_at = :now, due_shard = :sh, due_at = :now"
            ),
            "ConditionExpression": "#st = :draft AND rev = :rev",
            "ExpressionAttributeNames": {"#st": "status", "#num": "number"},
            "ExpressionAttributeValues": to_item(
                {
                    ":fin": "finalized",
                    ":num": number,
                    ":now": ts(now),
                    ":sh": shard_of(invoice.id, "sync"),
                    ":draft": "draft",
                    ":rev": invoice.rev,
                }
            ),
        }
        return [{"Update": counter}, {"Update": invoice_update}]

    def void_item(self, invoice: Invoice, *, voided_at: str, replaced_by: str) -> dict[str, Any]:
        """A transaction ``Update`` voiding a finalized invoice that received nothing and has no credit
        note: conditional on the status read, no payment recorded and no credit note (``cn_rev``)."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _key(invoice.id),
                "UpdateExpression": (
                    "SET #st = :void, voided_at = :at, replaced_by = :by, due_shard = :sh, due_at = :at"
                ),
                "ConditionExpression": (
                    "#st = :read AND attribute_not_exists(cn_rev) AND "
                    "(attribute_not_exists(amount_paid_minor) OR amount_paid_minor = :zero)"
                ),
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(
                    {
                        ":void": "void",
                        ":at": voided_at,
                        ":by": replaced_by,
                        ":read": invoice.status,
                        ":zero": 0,
                        ":sh": shard_of(invoice.id, VOID_SYNC_DUE),
                    }
                ),
            }
        }

    # ---------------------------------------------------------------- single writes
    def set_status(
        self, invoice_id: str, status: str, *, expected: str, extra: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Move an invoice from ``expected`` to ``status``; raises InvoiceConflictError otherwise."""
        self._update(invoice_id, "SET #st = :new", {":new": status, ":old": expected}, "#st = :old", extra)

    def transition(
        self, invoice_id: str, status: str, *, expected: str, extra: Sequence[dict[str, Any]] = ()
    ) -> None:
        """``set_status`` for an allowed move only (see ``STATUS_TRANSITIONS``); raises
        InvoiceConflictError for a move the table does not allow or when the invoice changed meanwhile.
        ``extra`` actions (a webhook event) commit with the move."""
        if not can_transition(expected, status):
            raise InvoiceConflictError(f"invoice {invoice_id!r} cannot move from {expected} to {status}")
        self.set_status(invoice_id, status, expected=expected, extra=extra)

    def payment_item(
        self,
        invoice_id: str,
        *,
        status_before: str,
        status_after: str,
        paid_before: int,
        paid_after: int,
        remaining: int,
        cn_rev: int = 0,
        credits: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """A transaction ``Update`` recording a payment on the invoice: ``amount_paid_minor`` (the running
        total received), ``amount_remaining_minor``, the status and, for a payment above what credit notes
        left due, the credited totals it moves (``credits``: what credit notes took before payment becomes
        customer credit balance); conditional on the status, the paid total and the credit note counter
        ``cn_rev`` read (an invoice without the attribute has received nothing recorded, or no note)."""
        if status_after != status_before and not can_transition(status_before, status_after):
            raise InvoiceConflictError(
                f"invoice {invoice_id!r} cannot move from {status_before} to {status_after}"
            )
        paid = (
            "(attribute_not_exists(amount_paid_minor) OR amount_paid_minor = :before)"
            if paid_before == 0
            else "amount_paid_minor = :before"
        )
        rev = "attribute_not_exists(cn_rev)" if cn_rev == 0 else "cn_rev = :rev"
        names = {"#st": "status"}
        values: dict[str, Any] = {
            ":after_st": status_after,
            ":before_st": status_before,
            ":after": paid_after,
            ":before": paid_before,
            ":rest": remaining,
            ":rev": cn_rev or None,
        }
        sets = ["#st = :after_st", "amount_paid_minor = :after", "amount_remaining_minor = :rest"]
        for n, (name, value) in enumerate(sorted((credits or {}).items())):
            names[f"#c{n}"] = name
            values[f":c{n}"] = value
            sets.append(f"#c{n} = :c{n}")
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _key(invoice_id),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": f"#st = :before_st AND {paid} AND {rev}",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": to_item(values),
            }
        }

    def stripe_tax_item(
        self, invoice: Invoice, record: dict[str, Any], exclusive_minor: int, inclusive_minor: int
    ) -> dict[str, Any]:
        """A transaction ``Update`` amending a finalized invoice with the tax Stripe Tax computed: the
        record (``stripe_tax``), ``tax_minor`` and ``total_minor`` raised by the exclusive part,
        ``tax_included_minor`` by the inclusive part; conditional on no tax recorded yet and on the
        total and status read (a void invoice is never amended)."""
        doc = invoice.document
        values = {
            ":rec": jsonutil.dumps(record),
            ":tax": int(doc.get("tax_minor") or 0) + exclusive_minor,
            ":inc": int(doc.get("tax_included_minor") or 0) + inclusive_minor,
            ":total": invoice.total_minor + exclusive_minor,
            ":before": invoice.total_minor,
            ":st": invoice.status,
        }
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _key(invoice.id),
                "UpdateExpression": (
                    "SET stripe_tax = :rec, tax_minor = :tax, tax_included_minor = :inc, total_minor = :total"
                ),
                "ConditionExpression": (
                    "attribute_not_exists(stripe_tax) AND total_minor = :before AND #st = :st"
                ),
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item(values),
            }
        }

    def set_sync(self, invoice_id: str, sync: dict[str, Any], extra: Sequence[dict[str, Any]] = ()) -> None:
        """Store the Stripe sync state (``invoice_id``, ``status``, ``attempts``, ``last_error``), with
        ``extra`` actions (a webhook event) in the same transaction when given."""
        self._update(
            invoice_id, "SET stripe = :s", {":s": jsonutil.dumps(sync)}, "attribute_exists(pk)", extra
        )

    def clear_sync_due(self, invoice_id: str) -> None:
        """Take an invoice out of the sync-pending index once its sync (or void) message is sent."""
        self._update(invoice_id, "REMOVE due_shard, due_at", {}, "attribute_exists(pk)")

    def _update(
        self,
        invoice_id: str,
        expression: str,
        values: dict[str, Any],
        condition: str,
        extra: Sequence[dict[str, Any]] = (),
    ) -> None:
        """One conditional update; with ``extra`` actions (a webhook event), one transaction with them."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": _key(invoice_id),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
        }
        if "#st" in expression + condition:
            kwargs["ExpressionAttributeNames"] = {"#st": "status"}
        if values:
            kwargs["ExpressionAttributeValues"] = to_item(values)
        if extra:
            try:
                Transaction([{"Update": kwargs}, *extra]).commit()
            except Cancelled as exc:
                raise InvoiceConflictError(f"invoice {invoice_id!r} is not in the expected state") from exc
            return
        try:
            client("dynamodb").update_item(**kwargs)
        except Exception as exc:
            if is_condition_failure(exc):
                raise InvoiceConflictError(f"invoice {invoice_id!r} is not in the expected state") from exc
            raise

    def transact(self, actions: builtins.list[dict[str, Any]]) -> None:
        Transaction(actions).commit()

    # ---------------------------------------------------------------- reads for the ops sweep
    def finalized_since(self, customer_id: str, period_from: datetime) -> Iterator[Invoice]:
        """A customer's invoices in status ``finalized`` whose period starts at or after ``period_from``
        (the by-list index, bounded by its sort key ``{period_start}#{id}``; other statuses filtered out
        by DynamoDB after the read)."""
        request = {
            "TableName": self.table_name,
            "IndexName": LIST_INDEX,
            "KeyConditionExpression": "list_pk = :p AND list_sk >= :lo",
            "FilterExpression": "#st = :fin",
            "ExpressionAttributeNames": {"#st": "status"},
            "ExpressionAttributeValues": to_item(
                {":p": f"INVC#{customer_id}", ":lo": ts(period_from), ":fin": "finalized"}
            ),
        }
        yield from (_invoice(item) for item in query_items(request))


def _item(doc: dict[str, Any], due: tuple[str, datetime] | None) -> dict[str, Any]:
    item = {
        "pk": f"INV#{doc['id']}",
        "sk": "#",
        "list_pk": f"INVC#{doc['customer_id']}",
        "list_sk": f"{doc['period_start']}#{doc['id']}",
        **{k: v for k, v in doc.items() if k not in JSON_FIELDS},
        **{k: jsonutil.dumps(doc[k]) for k in JSON_FIELDS if k in doc},
    }
    if due is not None:
        item["due_shard"] = shard_of(doc["id"], due[0])
        item["due_at"] = ts(due[1])
    return item


def _invoice(item: dict[str, Any]) -> Invoice:
    """A stored invoice item as its record."""
    return invoice_record(_doc(item))


def _doc(item: dict[str, Any]) -> dict[str, Any]:
    from neruba.dal.billing import _public

    doc = _public(item)
    for name in JSON_FIELDS:
        if name in doc:
            doc[name] = jsonutil.loads(doc[name])
    doc.setdefault("number", None)
    doc.setdefault("finalized_at", None)
    doc.setdefault("stripe", None)
    return doc
