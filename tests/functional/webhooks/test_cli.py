"""``neruba webhooks listen`` verifies and prints what the worker delivers; ``neruba webhooks resend``."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from neruba.logic.webhooks import delivery, endpoints, relay
from neruba.models.webhooks import EndpointCreate
from neruba_tools.webhooks import make_handler
from tests.functional.webhooks.conftest import ADMIN, NOW, MemoryQueue
from tests.functional.webhooks.test_delivery import drive, new_customer


def listening(secrets: list[str], lines: list[str]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(secrets, lines.append))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_listen_prints_verified_events_and_refuses_others(memory_hooks: MemoryQueue) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)  # the receiver checks the timestamp against its own clock
    lines: list[str] = []
    placeholder = listening(["whsec_unknown"], lines)
    url = f"http://127.0.0.1:{placeholder.server_address[1]}/"
    created = endpoints.create(
        memory_hooks, EndpointCreate(url=url, enabled_events=["customer.created"]), ADMIN, NOW
    )
    try:
        # a receiver holding the wrong secret answers 400: the attempt failed, the reason printed
        new_customer("acme")
        relay.relay_once(memory_hooks, now)
        body, _ = memory_hooks.queue.pop(0)
        assert delivery.process_message(body, memory_hooks, now) == "pending"
        assert lines and lines[-1].startswith("REFUSED")
    finally:
        placeholder.shutdown()
        placeholder.server_close()
    right = listening([created["secret"]], lines)
    try:
        from neruba.logic.webhooks.endpoints import update
        from neruba.models.webhooks import EndpointUpdate

        update(memory_hooks, created["id"], EndpointUpdate(url=f"http://127.0.0.1:{right.server_address[1]}/"),
               ADMIN, now)  # fmt: skip
        memory_hooks.queue.clear()
        delivery.resend(memory_hooks, now, event_id=json.loads(body)["event_id"])
        assert drive(memory_hooks, now) == ["delivered"]
        assert lines[-1].startswith("customer.created evt_") and "sequence=1" in lines[-1]
    finally:
        right.shutdown()
        right.server_close()


def test_resend_command_queues_the_event_again(hooks: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from neruba_tools.cli import main

    endpoints.create(hooks, EndpointCreate(url="http://127.0.0.1:9/x", enabled_events=["customer.created"]),
                     ADMIN, NOW)  # fmt: skip
    new_customer("acme")
    relay.relay_once(hooks, NOW)
    import boto3

    from neruba.settings import get_settings

    items = boto3.client("dynamodb").scan(TableName=get_settings().ops_table)["Items"]
    [event_id] = [i["pk"]["S"][6:] for i in items if i["pk"]["S"].startswith("WHEVT#")]
    assert main(["webhooks", "resend", "--event", event_id]) == 0
    assert "1 deliveries queued again" in capsys.readouterr().out
    assert main(["webhooks", "resend", "--event", "evt_" + "0" * 24]) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Neruba-Signature": "t=1800000000,v1=\u00e9\u00e9"},  # non-ASCII (sent as Latin-1)
        {"Neruba-Signature": "t=" + "9" * 400 + ",v1=ab"},  # a timestamp past any float
        {"Neruba-Signature": "t=1800000000,v1=ab", "Content-Length": "lots"},
        {"Neruba-Signature": "t=1800000000,v1=ab", "Content-Length": "-1"},
    ],
)
def test_listen_answers_400_to_a_hostile_request_rather_than_dropping_it(headers: dict[str, str]) -> None:
    import http.client

    lines: list[str] = []
    server = listening(["whsec_right"], lines)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        conn.putrequest("POST", "/")
        for name, value in {"Content-Length": "2", **headers}.items():
            conn.putheader(name, value)
        conn.endheaders(b"{}")
        answer = conn.getresponse()
        assert answer.status == 400
        assert json.loads(answer.read())["verified"] is False
        assert lines and lines[-1].startswith("REFUSED")
    finally:
        server.shutdown()
        server.server_close()
