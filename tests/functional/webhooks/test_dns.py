"""In deployed stages each attempt resolves the endpoint's host, refuses any non-public answer, and then
connects to the address it checked (a DNS answer changing between the check and the connection cannot
steer the POST elsewhere)."""

from __future__ import annotations

import json
from typing import Any

from neruba.logic.webhooks import delivery, relay
from neruba.logic.webhooks.http import Answer, post
from tests.functional.webhooks.conftest import NOW, MemoryQueue, Receiver
from tests.functional.webhooks.test_delivery import endpoint, new_customer


def test_the_post_connects_to_the_checked_address_not_a_new_lookup(receiver: Receiver) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    # hooks.invalid resolves nowhere: only the pinned address can have answered
    answer = post(
        f"http://hooks.invalid:{port}/hooks", b"{}", {"Content-Type": "application/json"}, "127.0.0.1"
    )
    assert answer.status_code == 200, answer
    ((_, headers),) = receiver.received
    assert headers["Host"] == f"hooks.invalid:{port}"


def test_each_attempt_resolves_again_and_posts_to_the_address_it_checked(memory_hooks: MemoryQueue) -> None:
    memory_hooks.stage = "prod"
    answers = {"now": ["93.184.216.34"]}
    memory_hooks.resolver = lambda host: answers["now"]
    posted: list[Any] = []

    def fake_post(url: str, body: bytes, headers: dict[str, str], address: str | None = None) -> Answer:
        posted.append((url, address))
        return Answer(500, 3, "try later")

    memory_hooks.post = fake_post
    endpoint(memory_hooks, "https://hooks.example.com/x")
    new_customer("acme")
    relay.relay_once(memory_hooks, NOW)
    body, _ = memory_hooks.queue.pop(0)
    assert delivery.process_message(body, memory_hooks, NOW, rng=lambda: 0.0) == "pending"
    assert posted == [("https://hooks.example.com/x", "93.184.216.34")]
    # the name now answers a public and a private address: refused, nothing posted
    answers["now"] = ["93.184.216.35", "10.0.0.7"]
    body, _ = memory_hooks.queue.pop(0)
    assert delivery.process_message(body, memory_hooks, NOW, rng=lambda: 0.0) == "pending"
    assert len(posted) == 1
    _, attempts = memory_hooks.repo.deliveries_of(json.loads(body)["event_id"])
    assert [(a.status_code, a.error) for a in attempts] == [(500, None), (0, "url_address_refused")]
