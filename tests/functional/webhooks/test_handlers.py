"""The relay and delivery handlers as Lambda runs them: a schedule event, then an SQS batch."""

from __future__ import annotations

import importlib
import json
from typing import Any

import boto3

from neruba import bootstrap
from neruba.logic.webhooks import endpoints, verify
from neruba.models.webhooks import EndpointCreate
from tests.functional.webhooks.conftest import ADMIN, NOW, Receiver
from tests.functional.webhooks.test_delivery import new_customer
from tests.support.api import fixture
from tests.support.aws import queue_url
from tests.support.lambda_context import FakeContext


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    event = fixture("webhook_delivery.json")
    template = event["Records"][0]
    event["Records"] = [
        {**template, "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]}
        for m in messages
    ]
    return event


def test_schedule_then_queue_deliver_a_signed_event(aws: dict[str, str], receiver: Receiver) -> None:
    hooks = bootstrap.webhooks()
    created = endpoints.create(
        hooks, EndpointCreate(url=receiver.url, enabled_events=["customer.created"]), ADMIN, NOW
    )
    new_customer("acme")
    relay = importlib.import_module("functions.webhook_relay.app")
    assert relay.lambda_handler(fixture("webhook_relay.json"), FakeContext()) == {"events": 1, "messages": 1}
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url("WebhookDeliveryQueue"), MaxNumberOfMessages=10)[
        "Messages"
    ]
    worker = importlib.import_module("functions.webhook_delivery.app")
    answer = worker.lambda_handler(sqs_event(messages), FakeContext())
    assert answer == {"batchItemFailures": []}
    [(raw, headers)] = receiver.received
    assert verify(raw, headers["Neruba-Signature"], created["secret"])
    assert json.loads(raw)["type"] == "customer.created"


def test_a_malformed_message_fails_only_itself(aws: dict[str, str]) -> None:
    worker = importlib.import_module("functions.webhook_delivery.app")
    good = {"event_id": "evt_" + "1" * 24, "endpoint_id": "we_" + "2" * 20, "attempt": 1, "due_at": "x"}
    messages = [
        {"MessageId": "m1", "ReceiptHandle": "r1", "Body": "not json"},
        {"MessageId": "m2", "ReceiptHandle": "r2", "Body": json.dumps(good)},  # no such delivery: dropped
    ]
    answer = worker.lambda_handler(sqs_event(messages), FakeContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
