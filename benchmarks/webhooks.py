"""Outgoing webhooks: DynamoDB writes per state change, per relayed event and per attempt, and the time
from the state change's commit to the receiver holding the verified event (relay run at once).

In-process moto with a real HTTP receiver on 127.0.0.1; the relay runs right after each change, so the
figure leaves out the wait for the relay's one-minute schedule (add up to 60 s on AWS)::

    python -m benchmarks.webhooks --events 200 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


class _Counter:
    """DynamoDB requests by operation, and written items (a transaction's actions each count)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.items = 0

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.requests[model.name] += 1
        if model.name == "TransactWriteItems":
            self.items += len(params["TransactItems"])
        elif model.name in WRITES:
            self.items += 1

    def take(self) -> tuple[int, dict[str, int]]:
        items, requests = self.items, dict(self.requests)
        self.items, self.requests = 0, Counter()
        return items, requests


def _receiver() -> tuple[HTTPServer, list[float]]:
    arrived: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            arrived.append(time.perf_counter())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrived


def main(events: int = 200) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from neruba import bootstrap
    from neruba.dal.clients import client
    from neruba.logic.catalog.entries import create_customer
    from neruba.logic.idempotency import Actor
    from neruba.logic.webhooks import endpoints, process_message, relay_once
    from neruba.models.catalog import Customer
    from neruba.models.webhooks import EndpointCreate
    from tests.support.aws import create_resources

    server, arrived = _receiver()
    counter = _Counter()
    with mock_aws():
        bootstrap.reset()
        create_resources()
        hooks = bootstrap.webhooks()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        endpoints.create(
            hooks, EndpointCreate(url=url, enabled_events=["customer.created"]), Actor(), datetime.now(UTC)
        )
        client("dynamodb").meta.events.register("provide-client-params.dynamodb.*", counter)
        sqs = boto3.client("sqs")
        change_items = relay_items = attempt_items = 0
        latencies = []
        for n in range(events):
            counter.take()
            started = time.perf_counter()
            create_customer(bootstrap.plans(), Customer(external_id=f"c{n}", name="C", currency="USD"))
            change_items += counter.take()[0]
            relay_once(hooks, datetime.now(UTC))
            relay_items += counter.take()[0]
            for message in sqs.receive_message(QueueUrl=str(hooks.queue_url), MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                process_message(message["Body"], hooks, datetime.now(UTC))
                sqs.delete_message(QueueUrl=str(hooks.queue_url), ReceiptHandle=message["ReceiptHandle"])
            attempt_items += counter.take()[0]
            latencies.append((arrived[-1] - started) * 1000)
    server.shutdown()
    latencies.sort()
    return {
        "events": events,
        "endpoints": 1,
        "items_written_per_customer_created": round(change_items / events, 2),
        "of_which_outbox": 1,
        "items_written_by_the_relay_per_event": round(relay_items / events, 2),
        "items_written_per_delivered_attempt": round(attempt_items / events, 2),
        "ms_commit_to_received_p50": round(statistics.median(latencies), 1),
        "ms_commit_to_received_p95": round(latencies[int(len(latencies) * 0.95) - 1], 1),
        "note": "in-process moto; relay run at once (on AWS add up to 60 s of relay schedule)",
    }


if __name__ == "__main__":
    from tests.conftest import TEST_ENVIRONMENT

    for key, value in {**TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR"}.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print only, write nothing")
    args = parser.parse_args()
    result = main(args.events)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        (RESULTS / "webhooks.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
