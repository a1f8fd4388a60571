"""Outgoing webhooks: DynamoDB writes per state change (and how many of them are the outbox item), per
relayed event and per attempt, and the time from the state change's commit to the receiver holding the
event (relay run at once), over many events of three producers.

Each round changes one customer three times (created, updated, credit granted: ``customer.created``,
``customer.updated``, ``credit_grant.created``); one endpoint takes all three. The run also checks that
each customer's events arrive with increasing sequence numbers in the order of the changes.

In-process moto with a real HTTP receiver on 127.0.0.1; the relay runs right after each change, so the
figure leaves out the wait for the relay's one-minute schedule (add up to 60 s on AWS)::

    python -m benchmarks.webhooks --events 600 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
        self.outbox = 0

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.requests[model.name] += 1
        if model.name == "TransactWriteItems":
            self.items += len(params["TransactItems"])
            keys = [
                str(a.get("Put", {}).get("Item", {}).get("pk", {}).get("S", ""))
                for a in params["TransactItems"]
            ]
            self.outbox += sum(key.startswith("WHOUT#") for key in keys)
        elif model.name in WRITES:
            self.items += 1

    def take(self) -> tuple[int, dict[str, int], int]:
        items, requests, outbox = self.items, dict(self.requests), self.outbox
        self.items, self.requests, self.outbox = 0, Counter(), 0
        return items, requests, outbox


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


CHANGES = ("customer.created", "customer.updated", "credit_grant.created")


def main(events: int = 600) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from neruba import bootstrap
    from neruba.dal.clients import client
    from neruba.logic.catalog.entries import create_customer, update_customer
    from neruba.logic.idempotency import Actor
    from neruba.logic.ledger.credits import create_grant
    from neruba.logic.webhooks import endpoints, process_message, relay_once
    from neruba.models.catalog import Customer, CustomerUpdate
    from neruba.models.webhooks import EndpointCreate
    from tests.support.aws import create_resources

    server, arrived = _receiver()
    counter = _Counter()
    rounds = max(1, events // len(CHANGES))

    def change(kind: str, n: int) -> None:
        if kind == "customer.created":
            create_customer(bootstrap.plans(), Customer(external_id=f"c{n}", name="C", currency="USD"))
        elif kind == "customer.updated":
            update_customer(bootstrap.plans(), f"c{n}", CustomerUpdate(name=f"C {n}"))
        else:
            create_grant(bootstrap.ledger(), customer_id=f"c{n}", kind="promotional", amount_minor=500,
                         currency="USD", idempotency_key=f"welcome-{n}", actor="bench")  # fmt: skip

    per_kind: dict[str, dict[str, int]] = {k: {"items": 0, "outbox": 0, "requests": 0} for k in CHANGES}
    relay_items = attempt_items = 0
    latencies: list[float] = []
    sequences: dict[str, list[int]] = {}
    with mock_aws():
        bootstrap.reset()
        create_resources()
        hooks = bootstrap.webhooks()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        endpoints.create(
            hooks, EndpointCreate(url=url, enabled_events=list(CHANGES)), Actor(), datetime.now(UTC)
        )
        client("dynamodb").meta.events.register("provide-client-params.dynamodb.*", counter)
        sqs = boto3.client("sqs")
        began = time.perf_counter()
        for n in range(rounds):
            for kind in CHANGES:
                counter.take()
                started = time.perf_counter()
                change(kind, n)
                items, requests, outbox = counter.take()
                per_kind[kind]["items"] += items
                per_kind[kind]["outbox"] += outbox
                per_kind[kind]["requests"] += sum(
                    v for k, v in requests.items() if k in WRITES or k == "TransactWriteItems"
                )
                relay_once(hooks, datetime.now(UTC))
                relay_items += counter.take()[0]
                got = sqs.receive_message(QueueUrl=str(hooks.queue_url), MaxNumberOfMessages=10)
                for message in got.get("Messages", []):
                    process_message(message["Body"], hooks, datetime.now(UTC))
                    sqs.delete_message(QueueUrl=str(hooks.queue_url), ReceiptHandle=message["ReceiptHandle"])
                    body = json.loads(message["Body"])
                    stored = hooks.repo.event(body["event_id"])
                    assert stored is not None
                    sequences.setdefault(str(stored["customer_id"]), []).append(int(stored["sequence"]))
                attempt_items += counter.take()[0]
                latencies.append((arrived[-1] - started) * 1000)
        seconds = time.perf_counter() - began
    server.shutdown()
    latencies.sort()
    total = rounds * len(CHANGES)
    out_of_order = sum(1 for seq in sequences.values() if seq != sorted(seq) or len(set(seq)) != len(seq))
    return {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_1m_at_end": round(os.getloadavg()[0], 1),
        "events": total,
        "endpoints": 1,
        "per_state_change": {
            kind: {
                "items_written": round(v["items"] / rounds, 2),
                "of_which_outbox": round(v["outbox"] / rounds, 2),
                "write_requests": round(v["requests"] / rounds, 2),
            }
            for kind, v in per_kind.items()
        },
        "items_written_by_the_relay_per_event": round(relay_items / total, 2),
        "items_written_per_delivered_attempt": round(attempt_items / total, 2),
        "ms_commit_to_received_p50": round(statistics.median(latencies), 1),
        "ms_commit_to_received_p95": round(latencies[int(len(latencies) * 0.95) - 1], 1),
        "ms_commit_to_received_p99": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "events_per_second": round(total / seconds, 1),
        "customers_with_sequences_out_of_order": out_of_order,
        "note": "in-process moto; relay run at once (on AWS add up to 60 s of relay schedule)",
    }


if __name__ == "__main__":
    from tests.conftest import TEST_ENVIRONMENT

    for key, value in {**TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR"}.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--json", action="store_true", help="print only, write nothing")
    args = parser.parse_args()
    result = main(args.events)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        (RESULTS / "webhooks.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
