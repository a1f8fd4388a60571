"""Credit notes in the billing table, next to the invoices they credit.

Items (``pk`` / ``sk``):

- ``CN#{id}`` / ``#``: the credit note (``invoice_id``, ``customer_id``, ``number``, ``status``, amounts;
  ``lines``, ``split``, ``posting`` and ``stripe`` as exact JSON). Put once, conditional on not existing.
- ``SEQ#CN`` / ``#``: ``n``, the last credit note number; it moves only in the transaction that writes a
  credit note, so ``CN-000001``, ``CN-000002``, ... have no gaps and no duplicates.
- The invoice item (``INV#{id}``) records what its credit notes took (``credited_minor``,
  ``pre_payment_credited_minor``, ``credited_balance_minor``, ``line_credits``, ``credit_notes``), moved by
  :meth:`CreditNotesRepository.invoice_credit_item` on the condition that nothing moved since it was read
  (``cn_rev``, the status and the paid total): two credit notes racing for the same remainder cannot both
  commit.
- While its Stripe sync message has not been sent, a credit note carries ``due_shard = cnsync#{n}`` and
  ``due_at`` (its creation) in the sparse ``by-due`` index (``dal.due_index``): written by the put, so the
  transaction that creates the note also records that Stripe must hear of it; removed once the message is
  sent (:meth:`CreditNotesRepository.clear_sync_due`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from neruba import jsonutil
from neruba.dal.clients import client
from neruba.dal.due_index import clear_due_item, due_items, shard_of
from neruba.dal.dynamo import from_item, plain, to_item

SEQUENCE = "CN"
SYNC_DUE = "cnsync"  # the due-index prefix of a credit note waiting for its Stripe sync message
JSON_FIELDS = ("lines", "split", "posting", "stripe", "metadata")


def _key(credit_note_id: str) -> dict[str, Any]:
    return to_item({"pk": f"CN#{credit_note_id}", "sk": "#"})


def _doc(item: dict[str, Any]) -> dict[str, Any]:
    doc = {k: plain(v) for k, v in item.items() if k not in ("pk", "sk", "due_shard", "due_at")}
    for name in JSON_FIELDS:
        if isinstance(doc.get(name), str):
            doc[name] = jsonutil.loads(doc[name])
    for name in ("invoice_number", "ticket", "memo", "stripe"):  # stored without a None value
        doc.setdefault(name, None)
    return doc


class CreditNotesRepository:
    """Read and write credit notes (the billing table)."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def get(self, credit_note_id: str) -> dict[str, Any] | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=_key(credit_note_id), ConsistentRead=True
        )
        return _doc(from_item(response["Item"])) if "Item" in response else None

    def sequence_value(self) -> int:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=to_item({"pk": f"SEQ#{SEQUENCE}", "sk": "#"}), ConsistentRead=True
        )
        return int(response["Item"]["n"]["N"]) if "Item" in response else 0

    # ---------------------------------------------------------------- transaction actions
    def number_item(self, current: int) -> tuple[str, dict[str, Any]]:
        """The next number after ``current`` (the value read) and the counter move, conditional on it."""
        numbers, move = self.numbers_item(current, 1)
        return numbers[0], move

    def numbers_item(self, current: int, count: int) -> tuple[list[str], dict[str, Any]]:
        """The ``count`` next numbers after ``current`` (the value read) and the one counter move taking
        them all, conditional on it (several notes of one transaction share it)."""
        return [f"{SEQUENCE}-{current + n:06d}" for n in range(1, count + 1)], {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": f"SEQ#{SEQUENCE}", "sk": "#"}),
                "UpdateExpression": "SET n = :next",
                "ConditionExpression": "attribute_not_exists(pk)" if current == 0 else "n = :cur",
                "ExpressionAttributeValues": to_item({":next": current + count, ":cur": current or None}),
            }
        }

    def put_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        item = {
            "pk": f"CN#{doc['id']}",
            "sk": "#",
            **{k: v for k, v in doc.items() if k not in JSON_FIELDS},
            **{k: jsonutil.dumps(doc[k]) for k in JSON_FIELDS if k in doc},
            "due_shard": shard_of(str(doc["id"]), SYNC_DUE),
            "due_at": str(doc["created_at"]),
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def written_by(self, actions: Iterable[dict[str, Any]]) -> list[str]:
        """The ids of the credit notes a transaction's ``actions`` put (:meth:`put_item`), in order: what
        its writer sends to Stripe sync once it committed (``logic.billing.sync_due.send_written``)."""
        ids: list[str] = []
        for action in actions:
            put = action.get("Put") or {}
            item = put.get("Item") or {}
            if put.get("TableName") != self.table_name or (item.get("sk") or {}).get("S") != "#":
                continue
            pk = str((item.get("pk") or {}).get("S") or "")
            if pk.startswith("CN#"):
                ids.append(pk.removeprefix("CN#"))
        return ids

    def set_stripe(self, credit_note_id: str, stripe: dict[str, Any]) -> None:
        """Store the Stripe sync state of a credit note."""
        client("dynamodb").update_item(
            TableName=self.table_name,
            Key=_key(credit_note_id),
            UpdateExpression="SET stripe = :s",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":s": jsonutil.dumps(stripe)}),
        )

    def sync_pending(self, shard: int, before: datetime) -> Iterator[str]:
        """The ids of the credit notes of one shard created at or before ``before`` whose Stripe sync
        message is not sent yet, oldest first."""
        for item in due_items(self.table_name, SYNC_DUE, shard, before):
            yield str(item["pk"]).removeprefix("CN#")

    def clear_sync_due(self, credit_note_id: str) -> None:
        """Take a credit note out of the sync-pending index once its sync message is sent."""
        key = {"pk": f"CN#{credit_note_id}", "sk": "#"}
        client("dynamodb").update_item(**clear_due_item(self.table_name, key))

    def invoice_credit_item(
        self,
        invoice_id: str,
        *,
        read: dict[str, Any],
        changes: dict[str, Any],
    ) -> dict[str, Any]:
        """The invoice's move for one more credit note: SET ``changes`` (JSON fields as JSON), conditional
        on the invoice being as ``read`` (``status``, ``cn_rev``, ``amount_paid_minor``)."""
        json_fields = ("credit_notes", "line_credits")
        values: dict[str, Any] = {}
        sets = []
        names = {"#st": "status"}
        for n, (name, value) in enumerate(sorted(changes.items())):
            alias = f"#f{n}"
            names[alias] = name
            values[f":v{n}"] = jsonutil.dumps(value) if name in json_fields else value
            sets.append(f"{alias} = :v{n}")
        rev, paid = int(read.get("cn_rev") or 0), int(read.get("amount_paid_minor") or 0)
        conditions = [
            "#st = :st",
            "attribute_not_exists(cn_rev)" if rev == 0 else "cn_rev = :rev",
            "(attribute_not_exists(amount_paid_minor) OR amount_paid_minor = :paid)"
            if paid == 0
            else "amount_paid_minor = :paid",
        ]
        values.update({":st": read["status"], ":rev": rev or None, ":paid": paid, ":next": rev + 1})
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": f"INV#{invoice_id}", "sk": "#"}),
                "UpdateExpression": "SET " + ", ".join([*sets, "cn_rev = :next"]),
                "ConditionExpression": " AND ".join(conditions),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": to_item(values),
            }
        }
