"""Operator tooling against the local stack over real HTTP and a moto server: the smoke test (passing, and
failing at a named step), DLQ list/show/redrive through the CLI (the mover, since moto has no move
tasks) ending in a ``replay`` outcome, and the migrations the stack ran at start-up."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import boto3
import pytest

from neruba_tools.cli import main
from tests.support.faults import poison_ingest
from tests.support.stack import HTTP_TIMEOUT_S

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo(local_stack: Any) -> Any:
    from neruba_tools.local.seed import seed_demo

    return seed_demo()


def test_smoke_passes_and_a_broken_setup_fails_at_the_named_step(
    local_stack: Any, demo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["smoke", "--base-url", local_stack.base_url, "--timeout", "20"]
    # WHEN the smoke test runs with a good key against the running stack
    assert main([*base, "--api-key", demo.api_key]) == 0
    out = capsys.readouterr().out
    # THEN every step passes
    for step in ("health", "ready", "ingest", "accepted", "read-back", "duplicate"):
        assert f"ok   {step}" in out
    # WHEN the key is wrong, it stops at the first keyed step and names it
    assert main([*base, "--api-key", "nrb_0123456789ab_" + "z" * 43]) == 1
    out = capsys.readouterr().out
    assert "FAIL ingest: POST /v1/events answered 401" in out and "ok   ready" in out
    # WHEN the API refuses the event (an unknown customer), it fails at "ingest" with the event's code
    assert main([*base, "--api-key", demo.api_key, "--customer", "nobody"]) == 1
    out = capsys.readouterr().out
    assert "FAIL ingest: POST /v1/events answered 400" in out and "unknown_customer" in out
    # WHEN nothing listens at the URL, it fails at "health"
    assert main(["smoke", "--base-url", "http://127.0.0.1:9", "--api-key", demo.api_key]) == 1
    assert "FAIL health" in capsys.readouterr().out


def _post(local_stack: Any, key: str, events: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        local_stack.base_url + "/v1/events", data=json.dumps({"events": events}).encode(), method="POST"
    )
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        assert response.status == 202


def _outcomes(local_stack: Any, key: str, customer: str, tx: str) -> list[str]:
    request = urllib.request.Request(f"{local_stack.base_url}/v1/events/{tx}?customer_id={customer}")
    request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return [o["outcome"] for o in json.loads(response.read())["outcomes"]]
    except urllib.error.HTTPError:
        return []


def _wait(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def test_dlq_redrive_through_the_cli_replays_the_event(
    local_stack: Any, demo: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a worker bug that fails one event until it lands in IngestDLQ (a failed message comes back
    # after the queue's visibility timeout, as on AWS: shortened here so its receives take seconds)

    fix = poison_ingest(monkeypatch)
    event = {"transaction_id": "dlq-1", "customer_id": demo.customer_id, "code": demo.meter_code,
             "properties": {"value": 2, "poison": True}}  # fmt: skip
    sqs = boto3.client("sqs", endpoint_url=local_stack.moto_url, region_name="us-east-1")
    ingest_url, dlq_url = local_stack.queue_urls["IngestQueue"], local_stack.queue_urls["IngestDLQ"]

    def depth() -> int:
        attributes = sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    visibility = sqs.get_queue_attributes(QueueUrl=ingest_url, AttributeNames=["VisibilityTimeout"])
    sqs.set_queue_attributes(QueueUrl=ingest_url, Attributes={"VisibilityTimeout": "1"})
    time.sleep(2)  # a receive applies the visibility timeout its queue had when its long poll (1 s) began
    try:
        _post(local_stack, demo.api_key, [event])
        assert _wait(lambda: depth() == 1, 40), "the poison event never reached the DLQ"
    finally:
        sqs.set_queue_attributes(QueueUrl=ingest_url, Attributes=visibility["Attributes"])
    fix()  # the fix is deployed
    cli = ["--endpoint-url", local_stack.moto_url, "dlq"]
    stack = ["--stack", local_stack.stack_name]
    # WHEN the operator lists the DLQs
    assert main([*cli, "list", *stack]) == 0
    listing = capsys.readouterr().out
    # THEN IngestDLQ shows one message and an age
    row = next(line for line in listing.splitlines() if line.startswith("IngestDLQ"))
    assert row.split()[1:4] == ["IngestQueue", "1", "0"], listing
    # WHEN they look at it: the event key and the stored failure, and the message stays
    assert main([*cli, "show", "IngestDLQ", *stack]) == 0
    shown = json.loads(capsys.readouterr().out.splitlines()[1])
    assert shown["event_key"] == f"{demo.customer_id}/dlq-1"
    assert shown["failure_reason"].startswith("stored status failed")
    assert depth() == 1
    # WHEN they redrive it (moto lacks StartMessageMoveTask: the CLI says so and uses the mover)
    assert main([*cli, "redrive", "IngestDLQ", *stack]) == 0
    out = capsys.readouterr().out
    assert "no SQS message move tasks; moving the messages one by one" in out and "Moved 1 message(s)" in out
    assert "<html" not in out.lower()  # not moto's error page
    # THEN the DLQ is empty and the event ends accepted as a replay
    assert depth() == 0
    assert _wait(
        lambda: _outcomes(local_stack, demo.api_key, demo.customer_id, "dlq-1")[-1:] == ["replay"], 20
    )
    assert main([*cli, "status", "IngestDLQ", *stack]) == 0
    assert "no message move tasks" in capsys.readouterr().out


def test_the_stack_ran_the_migrations_at_start_up(
    local_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--list"]) == 0
    out = capsys.readouterr().out
    assert "0001 catalog_index_keys" in out and "pending" not in out and "Schema version: 2" in out
