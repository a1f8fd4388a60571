"""Audit records of operator actions in the ops table, written in the same transaction as the action.

Item: ``pk=AUD#{customer_id}``, ``sk={at}#{audit_id}`` (newest first when queried backwards). The
``audit_id`` is derived from the action's idempotency key when there is one, so a retried action cannot
leave two records.

Example::

    repo = AuditRepository("ops-table")
    put = repo.record_item(actor="key:ab12", action="credit_grant.create", customer_id="acme",
                           target="cg_1", reason="onboarding", ticket="SUP-1", before={}, after={...},
                           at=now, request_id="req-1")
    Transaction([*ledger_items, put]).commit()
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from typing import Any

from neruba.dal.clients import client
from neruba.dal.cursors import decode_cursor, encode_cursor
from neruba.dal.dynamo import from_item, to_item
from neruba.timefmt import iso, ts

GLOBAL_AUDIT = (
    "_global"  # the audit "customer" of actions on no one customer (all-customer runs, meters, plans)
)


class AuditRepository:
    """Write and list audit records."""

    def __init__(self, ops_table: str) -> None:
        self.table_name = ops_table

    def record_item(
        self,
        *,
        actor: str,
        action: str,
        customer_id: str,
        target: str,
        reason: str | None,
        ticket: str | None,
        before: Any,
        after: Any,
        at: datetime,
        request_id: str | None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """A TransactWriteItems ``Put`` of one audit record (condition: it does not exist yet)."""
        seed = f"{customer_id}\x1f{action}\x1f{idempotency_key}" if idempotency_key else secrets.token_hex(16)
        audit_id = "aud_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
        record = {
            "id": audit_id,
            "object": "audit_record",
            "actor": actor,
            "action": action,
            "customer_id": customer_id,
            "target": target,
            "reason": reason,
            "ticket": ticket,
            "before": before,
            "after": after,
            "at": iso(at),
            "request_id": request_id,
        }
        item = {
            "pk": f"AUD#{customer_id}",
            "sk": f"{ts(at)}#{audit_id}",
            "doc": json.dumps(record, sort_keys=True, default=str),
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def record(self, **fields: Any) -> dict[str, Any]:
        """Write one audit record on its own (same keyword arguments as :meth:`record_item`)."""
        put = self.record_item(**fields)["Put"]
        client("dynamodb").put_item(**put)
        return json.loads(from_item(put["Item"])["doc"])  # type: ignore[no-any-return]

    def list(
        self, customer_id: str, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a customer's audit records, newest first, and the next page's cursor."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": to_item({":p": f"AUD#{customer_id}"}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        query = {"list": "audit", "customer": customer_id, "order": "newest"}
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(
                cursor, query, keys=frozenset({"pk", "sk"}), within=("pk", f"AUD#{customer_id}")
            )
        response = client("dynamodb").query(**kwargs)
        records = [json.loads(from_item(i)["doc"]) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return records, encode_cursor(last, query) if last else None
