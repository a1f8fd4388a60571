"""Local stack mechanics: template-driven resources, port conflicts, DLQ redrive policy, schedules."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import boto3
import pytest

from neruba_tools.local.stack import LocalStack, PortInUseError

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_every_table_and_queue_of_the_template_exists(local_stack: Any) -> None:
    from neruba_tools.local.template import resources_of

    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.moto_url)
    sqs = boto3.client("sqs", endpoint_url=local_stack.moto_url)
    tables = set(dynamodb.list_tables()["TableNames"])
    for logical_id in resources_of(local_stack.template, "AWS::DynamoDB::Table"):
        assert f"neruba-it-{logical_id}" in tables
    url = sqs.get_queue_url(QueueName="neruba-it-IngestQueue")["QueueUrl"]
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"
        ]
    )
    assert policy["deadLetterTargetArn"].endswith(":neruba-it-IngestDLQ")
    assert int(policy["maxReceiveCount"]) == 5


def test_a_port_in_use_is_reported(local_stack: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"{port}.*--port"):
            LocalStack("template.yaml", ROOT, api_port=port, moto_port=0).start()


def test_schedule_fires_on_demand_over_http(local_stack: Any) -> None:
    import urllib.request

    name = "SweeperFunction.Schedule"
    request = urllib.request.Request(f"{local_stack.base_url}/_local/schedules/{name}/fire", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert body["schedule"] == name
    assert "batches_checked" in body["result"]


def test_a_message_that_keeps_failing_lands_in_the_dlq(local_stack: Any) -> None:
    # GIVEN a message the ingest worker cannot read, sent straight to the ingest queue
    import time

    sqs = boto3.client("sqs", endpoint_url=local_stack.moto_url)
    url = sqs.get_queue_url(QueueName="neruba-it-IngestQueue")["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName="neruba-it-IngestDLQ")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="not a queued event")
    # WHEN the pollers keep feeding it to the worker, which reports it as a batch item failure
    deadline = time.monotonic() + 30
    moved: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not moved:
        moved = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages", [])
        time.sleep(0.3)
    # THEN after maxReceiveCount receives it waits in the DLQ, where an operator can redrive it
    assert [m["Body"] for m in moved] == ["not a queued event"]
