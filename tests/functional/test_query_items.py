"""``dal.dynamo.query_items``, the one paginated Query/Scan read, on moto: every page in key order, a
caller that stops early reads no further page (the repositories that read through it are tested with
their own routes and workers)."""

from __future__ import annotations

from itertools import islice
from typing import Any

import pytest

from neruba.dal.clients import client
from neruba.dal.dynamo import partition_items, query_items, to_item
from neruba.settings import get_settings


@pytest.fixture
def table(aws: dict[str, str]) -> str:
    name = get_settings().ops_table
    for n in range(30):
        client("dynamodb").put_item(TableName=name, Item=to_item({"pk": "QI", "sk": f"{n:03d}", "n": n}))
    return name


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The Query requests sent (then answered by moto)."""
    dynamodb = client("dynamodb")
    real = dynamodb.query
    sent: list[dict[str, Any]] = []

    def counted(**request: Any) -> Any:
        sent.append(request)
        return real(**request)

    monkeypatch.setattr(dynamodb, "query", counted)
    return sent


def _request(table: str, **extra: Any) -> dict[str, Any]:
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "QI"}},
        **extra,
    }


def test_every_page_is_read_in_key_order(table: str, requests: list[dict[str, Any]]) -> None:
    # WHEN a partition of 30 items is read 10 a request
    found = list(query_items(_request(table, Limit=10)))
    # THEN every item comes back decoded, in order, each request starting after the one before
    assert [item["n"] for item in found] == list(range(30))
    assert len(requests) == 3
    assert [r.get("ExclusiveStartKey", {}).get("sk", {}).get("S") for r in requests] == [
        None,
        "009",
        "019",
    ]


def test_a_caller_that_stops_reads_no_further_page(table: str, requests: list[dict[str, Any]]) -> None:
    # WHEN only the first 12 items are taken, 10 a request, and backwards
    found = list(islice(query_items(_request(table, Limit=10, ScanIndexForward=False)), 12))
    # THEN two requests were sent, none after the page holding the 12th item
    assert [item["n"] for item in found] == list(range(29, 17, -1))
    assert len(requests) == 2


def test_the_request_given_is_not_changed(table: str) -> None:
    request = _request(table, Limit=10)
    list(query_items(request))
    assert "ExclusiveStartKey" not in request


def test_partition_items_reads_consistently(table: str, requests: list[dict[str, Any]]) -> None:
    assert len(list(partition_items(table, "QI"))) == 30
    assert all(r["ConsistentRead"] for r in requests)
