"""moto answers byte for byte the same with and without ``AnswerLookups`` (neruba_tools.local.answer_lookups):
the same DynamoDB and SQS requests, covering every attribute type, nested maps and lists, projections,
paging, batches, transactions cancelled with the old item, conditional failures, table and queue
descriptions and message attributes, give the same raw answer bodies."""

from __future__ import annotations

import base64
import contextlib
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from neruba_tools.local.answer_lookups import AnswerLookups

REGION = "us-east-1"
TABLE = "answer-lookups"
ITEM = {
    "pk": {"S": "P#1"},
    "sk": {"S": "01"},
    "s": {"S": "text é ✓"},
    "n": {"N": "-12.500"},
    "b": {"B": b"\x00\xffbytes"},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"y"]},
    "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"deep": {"BOOL": True}}}]}}},
    "l": {"L": [{"NULL": True}, {"BOOL": False}]},
    "shard": {"S": "x#1"},
    "due": {"S": "2026-01-05"},
}


def _clients() -> tuple[Any, Any, list[bytes]]:
    bodies: list[bytes] = []
    config = Config(retries={"max_attempts": 1})
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}
    dynamodb = boto3.client("dynamodb", config=config, **keys)
    sqs = boto3.client("sqs", config=config, **keys)
    for client in (dynamodb, sqs):
        client.meta.events.register(
            "before-parse.*.*", lambda response_dict, **_: bodies.append(response_dict["body"])
        )
    return dynamodb, sqs, bodies


def _dynamodb_work(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "shard", "due")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-due",
                "KeySchema": [
                    {"AttributeName": "shard", "KeyType": "HASH"},
                    {"AttributeName": "due", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["n"]},
            }
        ],
    )
    dynamodb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    dynamodb.put_item(TableName=TABLE, Item=ITEM)
    for s in range(2, 7):
        extra = {"sk": {"S": f"{s:02d}"}, "due": {"S": f"2026-02-0{s}"}}
        dynamodb.put_item(TableName=TABLE, Item={**ITEM, **extra})
    dynamodb.put_item(TableName=TABLE, Item={**ITEM, "s": {"S": "new"}}, ReturnValues="ALL_OLD")
    key = {"pk": {"S": "P#1"}, "sk": {"S": "01"}}
    dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
    dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "none"}, "sk": {"S": "x"}})
    dynamodb.get_item(
        TableName=TABLE,
        Key=key,
        ProjectionExpression="m.inner[2], ss, #n",
        ExpressionAttributeNames={"#n": "n"},
    )
    dynamodb.update_item(
        TableName=TABLE, Key=key, UpdateExpression="ADD n :one SET l[2] = :v", ReturnValues="ALL_NEW",
        ExpressionAttributeValues={":one": {"N": "1"}, ":v": {"M": {"k": {"S": "v"}}}},
    )  # fmt: skip
    dynamodb.update_item(TableName=TABLE, Key=key, UpdateExpression="REMOVE s", ReturnValues="UPDATED_OLD")
    with contextlib.suppress(ClientError):
        dynamodb.put_item(
            TableName=TABLE, Item=ITEM, ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )  # fmt: skip
    for page in dynamodb.get_paginator("query").paginate(
        TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "P#1"}},
        PaginationConfig={"PageSize": 2}, ScanIndexForward=False, ReturnConsumedCapacity="TOTAL",
    ):  # fmt: skip
        assert page["Items"]
    dynamodb.query(
        TableName=TABLE, IndexName="by-due", KeyConditionExpression="shard = :s AND due > :d",
        ExpressionAttributeValues={":s": {"S": "x#1"}, ":d": {"S": "2026-01-01"}}, Select="COUNT",
    )  # fmt: skip
    dynamodb.query(
        TableName=TABLE, IndexName="by-due", KeyConditionExpression="shard = :s",
        ExpressionAttributeValues={":s": {"S": "x#1"}}, Limit=3,
    )  # fmt: skip
    dynamodb.scan(TableName=TABLE, FilterExpression="n > :z", ExpressionAttributeValues={":z": {"N": "0"}})
    missing = {"pk": {"S": "no"}, "sk": {"S": "x"}}
    dynamodb.batch_get_item(
        RequestItems={TABLE: {"Keys": [key, {"pk": {"S": "P#1"}, "sk": {"S": "02"}}, missing]}}
    )
    dynamodb.batch_write_item(
        RequestItems={
            TABLE: [{"PutRequest": {"Item": {**ITEM, "sk": {"S": "09"}}}}, {"DeleteRequest": {"Key": key}}]
        }
    )
    second = {"pk": {"S": "P#1"}, "sk": {"S": "02"}}
    dynamodb.transact_get_items(TransactItems=[{"Get": {"TableName": TABLE, "Key": second}}])
    with contextlib.suppress(ClientError):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {**ITEM, "sk": {"S": "10"}}}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE, "Key": {"pk": {"S": "P#1"}, "sk": {"S": "02"}},
                        "ConditionExpression": "n = :x", "ExpressionAttributeValues": {":x": {"N": "99"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ]
        )  # fmt: skip
    dynamodb.describe_table(TableName=TABLE)
    dynamodb.describe_time_to_live(TableName=TABLE)
    dynamodb.list_tables()
    dynamodb.delete_table(TableName=TABLE)


def _sqs_work(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="answer-lookups-q", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {
                "Id": str(n),
                "MessageBody": f"body {n}",
                "MessageAttributes": {
                    "s": {"DataType": "String", "StringValue": "v"},
                    "b": {"DataType": "Binary", "BinaryValue": base64.b64decode("AAE=")},
                },
            }
            for n in range(3)
        ],
    )
    sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    )
    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    sqs.list_queues(QueueNamePrefix="answer-lookups")
    sqs.delete_queue(QueueUrl=url)


def _bodies(shortcuts: bool) -> list[bytes]:
    with mock_aws():
        dynamodb, sqs, bodies = _clients()
        if shortcuts:
            with AnswerLookups():
                _dynamodb_work(dynamodb)
                _sqs_work(sqs)
        else:
            _dynamodb_work(dynamodb)
            _sqs_work(sqs)
    return bodies


def _comparable(body: bytes) -> bytes:
    """The body without what differs from one run to the next (times, ids, receipt handles)."""
    import json
    import re

    text = body.decode()
    try:
        data = json.loads(text)
    except ValueError:
        return re.sub(rb"<(RequestId|ReceiptHandle|MessageId)>[^<]*<", rb"<\1>x<", body)
    for volatile in ("CreationDateTime", "LastIncreaseDateTime", "LastDecreaseDateTime", "TableId",
                     "TableArn"):  # fmt: skip
        _drop(data, volatile)
    for volatile in ("ReceiptHandle", "MessageId", "SentTimestamp", "ApproximateFirstReceiveTimestamp",
                     "CreatedTimestamp", "LastModifiedTimestamp"):  # fmt: skip
        _drop(data, volatile)
    return json.dumps(data).encode()  # in the order written: the shortcuts must keep moto's member order


def _drop(data: Any, key: str) -> None:
    if isinstance(data, dict):
        data.pop(key, None)
        for value in data.values():
            _drop(value, key)
    elif isinstance(data, list):
        for value in data:
            _drop(value, key)


@pytest.mark.usefixtures("moto_as_released")
def test_every_answer_is_the_same_with_and_without_the_shortcuts() -> None:
    # GIVEN the same requests, each answered by moto's own lookups, then by the shortcuts (twice: the
    # second time from what the first worked out)
    plain = _bodies(False)
    shortcut = _bodies(True)
    again = _bodies(True)
    # THEN every raw answer body is the same (apart from times and generated ids)
    assert len(plain) == len(shortcut) == len(again) > 30
    assert [_comparable(b) for b in shortcut] == [_comparable(b) for b in plain]
    assert [_comparable(b) for b in again] == [_comparable(b) for b in plain]


@pytest.mark.usefixtures("moto_as_released")
def test_the_shortcuts_are_removed_on_exit() -> None:
    from moto.core import responses, serialize

    serializer = serialize.ResponseSerializer

    def installed() -> tuple[Any, ...]:
        return responses.method_names_from_class, serializer.get_value, serializer._serialize_type_structure

    before = installed()
    with AnswerLookups(), AnswerLookups():
        assert serializer.get_value is not before[1]
        assert serializer._serialize_type_structure is not before[2]
    assert installed() == before
