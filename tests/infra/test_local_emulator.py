"""The local stack's moto patches change how long moto takes and make it safe under concurrent requests;
they never change what it answers or stores: the same operations run on plain moto and on patched moto
must give the same answers, errors and final table contents."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from neruba_tools.local.emulator import EmulatorPatches

# moto's own code under each test (the session runs every test on patched moto: tests/conftest.py), so
# the unpatched runs below are moto as released
pytestmark = pytest.mark.usefixtures("moto_as_released")

REGION = "us-east-1"
TABLE = "emulator-check"
QUEUES = ("emulator-q", "emulator-dlq", "emulator-f.fifo")


def _dynamodb(endpoint: str | None = None) -> Any:
    return boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def _create(dynamodb: Any) -> None:
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
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    for p in range(6):
        for s in range(8):
            item = {"pk": {"S": f"P#{p}"}, "sk": {"S": f"{s:02d}"}, "n": {"N": str(s)}}
            if s % 3:
                item |= {"shard": {"S": f"x#{(p + s) % 3}"}, "due": {"S": f"2026-01-{1 + s:02d}"}}
            dynamodb.put_item(TableName=TABLE, Item=item)


def _key(p: str, s: str) -> dict[str, Any]:
    return {"pk": {"S": p}, "sk": {"S": s}}


def _put(p: str, s: str, **extra: Any) -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": {**_key(p, s), **extra}}}


def _add(p: str, s: str, condition: str | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {
        "TableName": TABLE,
        "Key": _key(p, s),
        "UpdateExpression": "ADD n :one SET tag = :t",
        "ExpressionAttributeValues": {":one": {"N": "1"}, ":t": {"S": "touched"}},
    }
    if condition:
        update["ConditionExpression"] = condition
    return {"Update": update}


TRANSACTIONS: list[list[dict[str, Any]]] = [
    # committed: a new item, an update, a delete
    [
        _put("P#9", "new", v={"S": "a"}),
        _add("P#1", "01"),
        {"Delete": {"TableName": TABLE, "Key": _key("P#2", "02")}},
    ],
    # cancelled by the last action: the new item, the update and the delete before it are undone
    [
        _put("P#9", "undone"),
        _add("P#1", "03"),
        {"Delete": {"TableName": TABLE, "Key": _key("P#3", "03")}},
        _add("P#4", "04", condition="attribute_not_exists(pk)"),
    ],
    # cancelled, with the old item returned
    [
        _add("P#5", "05"),
        {
            "ConditionCheck": {
                "TableName": TABLE,
                "Key": _key("P#0", "01"),
                "ConditionExpression": "n = :x",
                "ExpressionAttributeValues": {":x": {"N": "99"}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ],
    # one item named twice: rejected after the first action ran
    [_put("P#8", "twice"), _add("P#0", "02"), _add("P#0", "02")],
    # an invalid action after a valid one (a key of the wrong type)
    [_put("P#8", "bad-after"), {"Put": {"TableName": TABLE, "Item": {"pk": {"N": "1"}, "sk": {"S": "x"}}}}],
    # an index attribute written and removed in one committed transaction
    [_put("P#7", "idx", shard={"S": "x#1"}, due={"S": "2026-01-05"}), _add("P#1", "04")],
]

QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "P#1"}}},
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "P#9"}}, "Limit": 1},
    {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
        "ExpressionAttributeValues": {":p": {"S": "P#3"}, ":s": {"S": "0"}},
        "ScanIndexForward": False,
    },
    {
        "IndexName": "by-due",
        "KeyConditionExpression": "shard = :s AND due <= :d",
        "ExpressionAttributeValues": {":s": {"S": "x#1"}, ":d": {"S": "2026-01-06"}},
        "Limit": 2,
    },
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "nothing"}}},
]


def _answers(dynamodb: Any) -> dict[str, Any]:
    answers: list[Any] = []
    for actions in TRANSACTIONS:
        try:
            dynamodb.transact_write_items(TransactItems=actions)
            answers.append("committed")
        except ClientError as exc:
            answers.append(
                (exc.response["Error"]["Code"], json.dumps(exc.response.get("CancellationReasons")))
            )
    for query in QUERIES:
        pages = dynamodb.get_paginator("query").paginate(TableName=TABLE, **query)
        answers.append([[_text(i) for i in page["Items"]] for page in pages])
    items = dynamodb.scan(TableName=TABLE)["Items"]
    return {"answers": answers, "table": sorted(_text(i) for i in items)}


def _text(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True)


def _run(patched: bool, work: Callable[[Any], Any]) -> Any:
    with mock_aws():  # (inside another test module's session-wide mock, this one's state is shared)
        _forget()
        dynamodb = _dynamodb()
        _create(dynamodb)
        try:
            if not patched:
                return work(dynamodb)
            with EmulatorPatches():
                return work(dynamodb)
        finally:
            _forget()


def _forget() -> None:
    """Remove the table and queues these tests create."""
    dynamodb = _dynamodb()
    if TABLE in dynamodb.list_tables()["TableNames"]:
        dynamodb.delete_table(TableName=TABLE)
    sqs = boto3.client(
        "sqs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    for url in sqs.list_queues(QueueNamePrefix="").get("QueueUrls", []):
        if url.rsplit("/", 1)[-1] in QUEUES:
            sqs.delete_queue(QueueUrl=url)


def test_transactions_and_queries_answer_and_store_the_same_as_moto() -> None:
    # GIVEN the same table and the same transactions (committed, cancelled at each kind of failure) and
    # queries (partition, paged, reversed, index, empty)
    # WHEN they run on plain moto, then on patched moto
    plain = _run(False, _answers)
    patched = _run(True, _answers)
    # THEN every answer, every cancellation reason and the final table are the same
    assert patched == plain
    assert plain["answers"][0] == "committed"
    assert {a[0] for a in plain["answers"][1:5]} == {"TransactionCanceledException", "ValidationException"}


def test_the_patches_are_removed_on_exit() -> None:
    # GIVEN moto's own methods
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler
    from moto.sqs.models import Queue, SQSBackend

    before = [
        DynamoDBBackend.transact_write_items, Table.query, Table.all_items, DynamoHandler.call_action,
        Queue.attributes, SQSBackend.is_message_valid_based_on_retention_period, Queue.delete_message,
    ]  # fmt: skip
    # WHEN the patches are entered twice (two stacks) and left twice
    with EmulatorPatches(), EmulatorPatches():
        assert DynamoDBBackend.transact_write_items is not before[0]
    # THEN moto is as it was
    after = [
        DynamoDBBackend.transact_write_items, Table.query, Table.all_items, DynamoHandler.call_action,
        Queue.attributes, SQSBackend.is_message_valid_based_on_retention_period, Queue.delete_message,
    ]  # fmt: skip
    assert after == before


def _queue_answers(_: Any) -> list[Any]:
    sqs = boto3.client(
        "sqs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    dlq = sqs.create_queue(QueueName=QUEUES[1])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=QUEUES[0],
        Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"2"}}'},
    )["QueueUrl"]
    fifo = sqs.create_queue(
        QueueName=QUEUES[2], Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    answers: list[Any] = []
    for n in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    for _ in range(2):  # twice the same body: deduplicated by content
        sqs.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g")
    for _round in range(3):  # received and left in flight, made visible again: the third goes to the DLQ
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        answers.append(sorted((m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in got))
        for message in got:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    for queue in (url, dlq, fifo):
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        answers.append(
            {k: v for k, v in attributes.items() if k.startswith("Approximate") or k in ("FifoQueue",)}
        )
    got = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]
    answers.append([m["Body"] for m in got])
    return answers


def test_queues_send_receive_redrive_and_count_the_same_as_moto() -> None:
    # GIVEN a queue with a DLQ after 2 receives, and a FIFO queue deduplicating by content
    # WHEN the same sends, receives and visibility changes run on plain and on patched moto
    plain = _run(False, _queue_answers)
    patched = _run(True, _queue_answers)
    # THEN the same messages come back with the same receive counts, and the queues count the same
    assert patched == plain
    assert plain[-1] == ["same"]


def test_concurrent_transactions_on_one_counter_lose_nothing() -> None:
    # GIVEN a moto server (one thread per request) holding a counter, and the patches
    from moto.server import ThreadedMotoServer

    with EmulatorPatches():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
            dynamodb = _dynamodb(endpoint)
            if TABLE in dynamodb.list_tables()["TableNames"]:
                dynamodb.delete_table(TableName=TABLE)
            _create(dynamodb)
            for n in range(0, 1500, 25):  # enough items that moto's copy of the table takes a while
                dynamodb.batch_write_item(
                    RequestItems={
                        TABLE: [{"PutRequest": {"Item": _key("W", f"seed-{n + i}")}} for i in range(25)]
                    }
                )
            errors: list[str] = []

            def add(worker: int) -> None:
                client = _dynamodb(endpoint)
                for n in range(20):
                    try:  # each transaction also writes an item of its own, so the table copy is not tiny
                        client.transact_write_items(
                            TransactItems=[_add("C", "counter"), _put("W", f"{worker}-{n}")]
                        )
                    except ClientError as exc:
                        errors.append(exc.response["Error"]["Code"])

            # WHEN 6 clients add 1 twenty times each, in transactions, at the same time
            threads = [threading.Thread(target=add, args=(w,)) for w in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            # THEN every transaction committed, the counter holds every addition, and every item is there
            counter = dynamodb.get_item(TableName=TABLE, Key=_key("C", "counter"))["Item"]
            assert errors == []
            assert counter["n"] == {"N": "120"}
            assert (
                dynamodb.query(
                    TableName=TABLE,
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "W"}},
                    Select="COUNT",
                )["Count"]
                == 1620
            )
            dynamodb.delete_table(TableName=TABLE)
        finally:
            server.stop()


@pytest.mark.parametrize("items", [0, 200])
def test_a_transaction_copies_no_table(items: int) -> None:
    # GIVEN a table of `items` items under the patches
    import copy as copy_module

    with mock_aws():
        _forget()
        dynamodb = _dynamodb()
        _create(dynamodb)
        for n in range(0, items, 25):
            dynamodb.batch_write_item(
                RequestItems={
                    TABLE: [{"PutRequest": {"Item": _key("BULK", f"{n + i:05d}")}} for i in range(25)]
                }
            )
        calls: list[str] = []
        real = copy_module.deepcopy

        def counting(value: Any, *args: Any) -> Any:
            calls.append(type(value).__name__)
            return real(value, *args)

        with EmulatorPatches():
            copy_module.deepcopy = counting
            try:
                # WHEN a transaction is cancelled after its first action
                with pytest.raises(ClientError):
                    dynamodb.transact_write_items(
                        TransactItems=[
                            _put("P#9", "x"),
                            _add("P#1", "01", condition="attribute_not_exists(pk)"),
                        ]
                    )
            finally:
                copy_module.deepcopy = real
        # THEN no table was copied (only the named items), and the first action was undone
        assert "Table" not in calls
        assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=_key("P#9", "x"))
        _forget()


class _ListCallingBack(list):  # type: ignore[type-arg]
    """A message list that runs ``hook`` once, when an iteration over it has passed its last message."""

    def __init__(self, items: list[Any], hook: Callable[[], None]) -> None:
        super().__init__(items)
        self.hook: Callable[[], None] | None = hook

    def __iter__(self) -> Any:
        yield from list.__iter__(self)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()


@pytest.mark.parametrize("patched", [False, True])
def test_a_message_sent_while_another_is_deleted_is_kept(patched: bool) -> None:
    # GIVEN a queue holding three messages, one of them received (moto's threaded server runs a delete and
    # a send of other clients at the same time)
    from moto.sqs.models import sqs_backends

    with mock_aws():
        sqs = boto3.client(
            "sqs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        name = f"emulator-delete-{patched}-{threading.get_ident()}"  # a moto another test used may persist
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        sqs.purge_queue(QueueUrl=url)
        for n in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
        queue = sqs_backends["123456789012"][REGION].queues[name]
        sender = threading.Thread(target=lambda: sqs.send_message(QueueUrl=url, MessageBody="sent meanwhile"))

        def send_meanwhile() -> None:  # between the delete's scan of the messages and its new list
            sender.start()
            sender.join(timeout=0.5)  # a send waiting on the queue's lock cannot finish now

        queue._messages = _ListCallingBack(queue._messages, send_meanwhile)
        # WHEN the received message is deleted while another client sends one
        with EmulatorPatches() if patched else contextlib.nullcontext():
            sqs.delete_message(QueueUrl=url, ReceiptHandle=got["ReceiptHandle"])
            sender.join()
        # THEN the message sent meanwhile is in the queue with the two others (plain moto loses it)
        bodies = sorted(m.body for m in queue._messages)
        expected = sorted({"m0", "m1", "m2", "sent meanwhile"} - {got["Body"]})
        if patched:
            assert bodies == expected
        else:
            assert bodies != expected and "sent meanwhile" not in bodies  # the defect the patch removes


@pytest.mark.parametrize("patched", [False, True])
def test_a_message_moved_to_the_dlq_while_another_is_deleted_stays_moved(patched: bool) -> None:
    # GIVEN a queue (maxReceiveCount 1) holding a message received once and visible again, so the next
    # receive moves it to the DLQ, and another message received (moto's threaded server runs a delete and
    # a receive of other clients at the same time)
    from moto.sqs.models import sqs_backends

    with mock_aws():
        sqs = boto3.client(
            "sqs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        name = f"emulator-dlq-{patched}-{threading.get_ident()}"  # a moto another test used may persist
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]
        policy = json.dumps({"deadLetterTargetArn": dlq_arn["QueueArn"], "maxReceiveCount": 1})
        url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"]
        sqs.purge_queue(QueueUrl=url)
        sqs.purge_queue(QueueUrl=dlq_url)
        sqs.send_message(QueueUrl=url, MessageBody="spent")
        spent = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
        sqs.send_message(QueueUrl=url, MessageBody="done")
        done = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
        assert (spent["Body"], done["Body"]) == ("spent", "done")
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=spent["ReceiptHandle"], VisibilityTimeout=0)
        queue = sqs_backends["123456789012"][REGION].queues[name]
        receiver = threading.Thread(target=lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0))

        def receive_meanwhile() -> None:  # between the delete's scan of the messages and its new list
            receiver.start()
            receiver.join(timeout=0.5)  # a receive waiting on the queue's lock cannot finish now

        queue._messages = _ListCallingBack(queue._messages, receive_meanwhile)
        # WHEN the received message is deleted while another client's receive moves the spent one to the DLQ
        with EmulatorPatches() if patched else contextlib.nullcontext():
            sqs.delete_message(QueueUrl=url, ReceiptHandle=done["ReceiptHandle"])
            receiver.join()
        # THEN the spent message is in the DLQ only (plain moto also puts it back into the queue)
        in_dlq = [m.body for m in sqs_backends["123456789012"][REGION].queues[f"{name}-dlq"]._messages]
        in_queue = [m.body for m in queue._messages]
        assert in_dlq == ["spent"]
        if patched:
            assert in_queue == []
        else:
            assert in_queue == ["spent"]  # the defect the patch removes
