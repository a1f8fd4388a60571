"""Every attempt emits per-endpoint metrics (EMF): WebhookEndpointAttempts by endpoint and outcome, and
WebhookEndpointLatency by endpoint."""

from __future__ import annotations

import json
from typing import Any

import pytest

from neruba.logic.webhooks import delivery, relay
from neruba.logic.webhooks.http import Answer
from tests.functional.webhooks.conftest import NOW, MemoryQueue
from tests.functional.webhooks.test_delivery import endpoint, new_customer


def test_attempts_and_latency_are_measured_per_endpoint(
    memory_hooks: MemoryQueue, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    answers = [Answer(503, 40, "busy"), Answer(200, 12, "ok")]
    memory_hooks.post = lambda *args, **kwargs: answers.pop(0)
    created = endpoint(memory_hooks, "https://hooks.example.com/x")
    new_customer("acme")
    relay.relay_once(memory_hooks, NOW)
    capsys.readouterr()
    body, _ = memory_hooks.queue.pop(0)
    assert delivery.process_message(body, memory_hooks, NOW, rng=lambda: 0.0) == "pending"
    body, _ = memory_hooks.queue.pop(0)
    assert delivery.process_message(body, memory_hooks, NOW, rng=lambda: 0.0) == "delivered"
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    seen: list[tuple[str, Any, Any]] = []
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                seen.append((metric["Name"], blob.get("outcome"), blob[metric["Name"]]))
                assert blob["endpoint_id"] == created["id"]
    names = [(name, outcome) for name, outcome, _ in seen]
    assert names == [
        ("WebhookEndpointAttempts", "retrying"),
        ("WebhookEndpointLatency", None),
        ("WebhookEndpointAttempts", "delivered"),
        ("WebhookEndpointLatency", None),
    ]
    latencies = [value for name, _, value in seen if name == "WebhookEndpointLatency"]
    assert [v[0] if isinstance(v, list) else v for v in latencies] == [40, 12]
