"""Webhook fixtures: a scripted HTTP receiver on 127.0.0.1, the webhooks context on the test tables, and a
queue kept in memory for the tests that move the clock (SQS delays run on the real clock)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from neruba.dal.webhooks import WebhooksRepository
from neruba.logic.idempotency import Actor
from neruba.logic.webhooks.context import Webhooks
from neruba.settings import get_settings
from tests.support.aws import queue_url

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADMIN = Actor("key:test", "req_1")


class Receiver:
    """Answers with ``statuses`` in turn (the last one from then on); keeps (raw body, headers)."""

    def __init__(self, statuses: list[int] | None = None, location: str | None = None) -> None:
        self.statuses = list(statuses or [200])
        self.received: list[tuple[bytes, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((raw, dict(self.headers.items())))
                n = len(receiver.received) - 1
                status = receiver.statuses[min(n, len(receiver.statuses) - 1)]
                body = json.dumps({"status": status, "note": "x" * 600}).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def event_ids(self) -> list[str]:
        return [json.loads(raw)["id"] for raw, _ in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MemoryQueue(Webhooks):
    """The context with the delivery queue kept as a list of (body, delay) (the clock is the test's)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queue: list[tuple[str, int]] = []

    def enqueue(self, messages: list[tuple[str, int]]) -> None:
        self.queue.extend(messages)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def hooks(aws: dict[str, str]) -> Webhooks:
    """The context on the test tables and the template's WebhookDeliveryQueue."""
    settings = get_settings()
    return Webhooks(
        repo=WebhooksRepository(settings.ops_table),
        queue_url=queue_url("WebhookDeliveryQueue"),
        stage="local",
        ops_table=settings.ops_table,
    )


@pytest.fixture
def memory_hooks(aws: dict[str, str]) -> MemoryQueue:
    settings = get_settings()
    return MemoryQueue(
        repo=WebhooksRepository(settings.ops_table),
        queue_url=None,
        stage="local",
        ops_table=settings.ops_table,
    )
