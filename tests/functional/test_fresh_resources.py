"""Every functional test starts from empty tables and queues, whatever the test before it did.

``fresh_resources`` restores the template's tables and queues from a copy taken when they were first
created (tests/support/aws.py); these tests write, delete and alter everything between two calls and
check that the second call gives back exactly what a real reset and provisioning gives.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.support.aws import create_resources, fresh_resources

VOLATILE_TABLE_FIELDS = ("CreationDateTime", "TableId")
VOLATILE_QUEUE_FIELDS = ("CreatedTimestamp", "LastModifiedTimestamp")


def _shape(names: dict[str, str]) -> dict[str, Any]:
    """What the tests can see of the tables and queues, without timestamps and ids."""
    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    tables = {}
    for name in sorted(dynamodb.list_tables()["TableNames"]):
        table = dynamodb.describe_table(TableName=name)["Table"]
        for field in VOLATILE_TABLE_FIELDS:
            table.pop(field, None)
        table["ttl"] = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        table["items"] = dynamodb.scan(TableName=name)["Items"]
        tables[name] = table
    queues = {}
    for url in sorted(sqs.list_queues().get("QueueUrls", [])):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for field in VOLATILE_QUEUE_FIELDS:
            attributes.pop(field, None)
        queues[url] = attributes
    return {"names": names, "tables": tables, "queues": queues}


def _spoil(names: dict[str, str]) -> None:
    """Everything a test could leave behind: items in every table, messages (visible and in flight) in
    every queue, a deleted table, a dropped index, a changed queue attribute and TTL, an extra table."""
    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    tables = [name for logical_id, name in names.items() if logical_id.endswith("Table")]
    queues = [url for logical_id, url in names.items() if not logical_id.endswith("Table")]
    for name in tables:
        keys = dynamodb.describe_table(TableName=name)["Table"]["KeySchema"]
        dynamodb.put_item(TableName=name, Item={key["AttributeName"]: {"S": "left-over"} for key in keys})
    for url in queues:
        for body in ("visible", "in-flight"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)
    sqs.set_queue_attributes(QueueUrl=names["IngestQueue"], Attributes={"VisibilityTimeout": "5"})
    dynamodb.update_table(
        TableName=names["LedgerTable"], GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by-customer"}}]
    )
    dynamodb.update_time_to_live(
        TableName=names["OpsTable"], TimeToLiveSpecification={"Enabled": False, "AttributeName": "ttl"}
    )
    dynamodb.delete_table(TableName=names["KeysTable"])
    dynamodb.create_table(
        TableName="test-Extra",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def moto(_moto: Any) -> Any:
    """The session's moto mock (reset by ``fresh_resources``)."""
    return _moto


def test_the_next_test_sees_none_of_what_a_test_wrote_deleted_or_changed(moto: Any) -> None:
    names = fresh_resources(moto)
    clean = _shape(names)
    assert all(not table["items"] for table in clean["tables"].values())
    assert all(queue["ApproximateNumberOfMessages"] == "0" for queue in clean["queues"].values())

    _spoil(names)
    spoiled = _shape(names)
    assert spoiled != clean  # (the spoiling did change what a test sees)

    assert _shape(fresh_resources(moto)) == clean
    ledger = boto3.client("dynamodb").describe_table(TableName=names["LedgerTable"])["Table"]
    assert {index["IndexName"] for index in ledger["GlobalSecondaryIndexes"]} == {"by-customer", "by-expiry"}


def test_the_restored_resources_are_those_the_template_creates(moto: Any) -> None:
    restored = _shape(fresh_resources(moto))
    moto.reset()
    assert _shape(create_resources()) == restored
