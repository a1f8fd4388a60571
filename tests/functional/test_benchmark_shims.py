"""The benchmark's emulator shims change how long moto takes, never what it answers."""

from __future__ import annotations

from typing import Any

from benchmarks.moto_shims import EmulatorShims
from neruba.dal.clients import client
from neruba.settings import get_settings


def _seed(table: str) -> None:
    dynamodb = client("dynamodb")
    for p in range(12):
        for s in range(15):
            item: dict[str, Any] = {"pk": {"S": f"P#{p:02d}"}, "sk": {"S": f"{s:03d}#"}, "n": {"N": str(s)}}
            if s % 3:  # a third of the items stay out of the sparse index
                item["due_shard"] = {"S": f"bst#{(p + s) % 4}"}
                item["due_at"] = {"S": f"2026-01-{1 + s:02d}"}
            dynamodb.put_item(TableName=table, Item=item)


def _all_pages(**request: Any) -> list[list[dict[str, Any]]]:
    pages = client("dynamodb").get_paginator("query").paginate(**request)
    return [[dict(sorted(i.items())) for i in page["Items"]] for page in pages]


def _queries(table: str) -> list[dict[str, Any]]:
    by_partition = {"TableName": table, "KeyConditionExpression": "pk = :p"}
    return [
        {**by_partition, "ExpressionAttributeValues": {":p": {"S": "P#03"}}},
        {**by_partition, "ExpressionAttributeValues": {":p": {"S": "P#03"}}, "Limit": 4},
        {**by_partition, "ExpressionAttributeValues": {":p": {"S": "P#07"}}, "ScanIndexForward": False},
        {
            "TableName": table,
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": {"S": "P#05"}, ":s": {"S": "01"}},
        },
        {**by_partition, "ExpressionAttributeValues": {":p": {"S": "P#99"}}},
        {
            "TableName": table,
            "IndexName": "by-due",
            "KeyConditionExpression": "due_shard = :s AND due_at <= :t",
            "ExpressionAttributeValues": {":s": {"S": "bst#2"}, ":t": {"S": "2026-01-09"}},
            "Limit": 5,
        },
        {
            "TableName": table,
            "IndexName": "by-due",
            "KeyConditionExpression": "due_shard = :s",
            "ExpressionAttributeValues": {":s": {"S": "bst#9"}},
        },
    ]


def test_queries_answer_the_same_pages_with_and_without_the_shims(aws: dict[str, str]) -> None:
    # GIVEN a table with 12 partitions of 15 items, two thirds of them in a sparse index
    table = get_settings().billing_table
    _seed(table)
    plain = [_all_pages(**q) for q in _queries(table)]

    # WHEN the same queries (table and index, paged, reversed, empty) run under the shims
    with EmulatorShims(check_every=1) as shims:
        shimmed = [_all_pages(**q) for q in _queries(table)]

    # THEN every page is the same, and the shim's own comparison with moto found no difference
    assert shimmed == plain
    assert [len(pages) for pages in plain][:2] == [1, 4]  # the limit really paged
    assert shims.snapshot()["checked_against_moto"] == shims.snapshot()["queries"] > 0
    assert shims.snapshot()["mismatches"] == 0


def test_moto_is_restored_after_the_shims(aws: dict[str, str]) -> None:
    # GIVEN moto's own query and queue attributes
    from moto.dynamodb.models.table import Table
    from moto.sqs.models import Queue

    before = (Table.query, Queue.attributes)

    # WHEN the shims are entered and left
    with EmulatorShims():
        assert Table.query is not before[0]

    # THEN moto's own functions are back
    assert (Table.query, Queue.attributes) == before


def test_queues_send_receive_and_count_under_the_shims(aws: dict[str, str]) -> None:
    # GIVEN a standard queue
    sqs = client("sqs")
    url = get_settings().billing_queue_url

    with EmulatorShims():
        # WHEN three messages are sent and one received
        for n in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30)["Messages"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    # THEN the message comes back and the counts are moto's
    assert received[0]["Body"].startswith("m")
    assert attributes["ApproximateNumberOfMessages"] == "2"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_transactions_still_commit_under_the_shims(aws: dict[str, str]) -> None:
    # GIVEN the shims (no table backup before a transaction)
    table = get_settings().billing_table
    dynamodb = client("dynamodb")

    with EmulatorShims():
        # WHEN a transaction writes two items
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "T#1"}, "sk": {"S": "#"}}}},
                {"Put": {"TableName": table, "Item": {"pk": {"S": "T#2"}, "sk": {"S": "#"}}}},
            ]
        )

    # THEN both are stored
    for pk in ("T#1", "T#2"):
        assert "Item" in dynamodb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "#"}})
