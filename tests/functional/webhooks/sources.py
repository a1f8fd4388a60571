"""Helpers of the exactly-once-at-the-source tests: the outbox as stored, and a crash of any transaction
that carries an outbox item (the process dying at the commit: the change and its event land together or
not at all)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from neruba.dal.clients import client
from neruba.settings import get_settings


class Crash(RuntimeError):
    """The process died at the commit of a transaction holding an outbox item."""


def outbox(event_type: str | None = None) -> list[dict[str, Any]]:
    """Outbox items not fanned out yet (type, customer_id, data), oldest first."""
    items = boto3.client("dynamodb").scan(TableName=get_settings().ops_table)["Items"]
    found = sorted((i["sk"]["S"], i["doc"]["S"]) for i in items if i["pk"]["S"].startswith("WHOUT#"))
    docs = [json.loads(doc) for _, doc in found]  # in the relay's order (one customer: one shard)
    return [d for d in docs if event_type in (None, d["type"])]


def _has_outbox(actions: list[dict[str, Any]]) -> bool:
    keys = [a.get("Put", {}).get("Item", {}).get("pk", {}).get("S", "") for a in actions]
    return any(str(key).startswith("WHOUT#") for key in keys)


@contextmanager
def crash_with_outbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every TransactWriteItems carrying an outbox item raises :class:`Crash` instead of committing;
    yields a one-item list counting the crashes (so a test knows the producer really tried)."""
    dynamodb = client("dynamodb")
    real = dynamodb.transact_write_items
    crashes = [0]

    def dying(**request: Any) -> Any:
        if _has_outbox(request["TransactItems"]):
            crashes[0] += 1
            raise Crash("killed before the commit")
        return real(**request)

    with monkeypatch.context() as patch:
        patch.setattr(dynamodb, "transact_write_items", dying)
        yield crashes
