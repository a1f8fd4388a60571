"""The unit of work on moto: one commit for all actions, cancellation reasons read by name."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.dal.clients import client
from neruba.dal.dynamo import to_item
from neruba.dal.transaction import LIMIT, Cancelled, Transaction


def _put(table: str, pk: str, *, once: bool = True) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": table, "Item": to_item({"pk": pk, "sk": "#", "v": 1})}
    if once:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
        put["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Put": put}


def _exists(table: str, pk: str) -> bool:
    return "Item" in client("dynamodb").get_item(TableName=table, Key=to_item({"pk": pk, "sk": "#"}))


def test_a_cancelled_unit_names_what_failed_and_writes_nothing(ledger: Any) -> None:
    table = ledger.table_name
    # GIVEN an item that already exists
    Transaction().add(_put(table, "T#taken")).commit()
    # WHEN a unit puts a new item, then (named) the taken one, then another new one
    unit = Transaction().add(_put(table, "T#new"), name="first")
    unit.add(_put(table, "T#taken"), name="guard").add(_put(table, "T#later"))
    with pytest.raises(Cancelled) as caught:
        unit.commit()
    # THEN the reason is read by the action's name whatever its position, with the stored item
    assert caught.value.failed("guard") and not caught.value.failed("first")
    assert caught.value.reason("guard") == "ConditionalCheckFailed"
    assert (caught.value.item("guard") or {})["pk"] == "T#taken"
    # AND nothing of the unit was written
    assert not _exists(table, "T#new") and not _exists(table, "T#later")


def test_a_unit_over_the_limit_is_refused_before_any_request(ledger: Any) -> None:
    unit = Transaction(_put(ledger.table_name, f"T#{n}", once=False) for n in range(LIMIT + 1))
    with pytest.raises(ValueError, match="100-action"):
        unit.commit()
    assert not _exists(ledger.table_name, "T#0")
