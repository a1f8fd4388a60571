"""Two relays at once (a run outlasting the one-minute schedule, or a schedule delivered twice): each
event is fanned out once, one customer's sequence numbers follow its events' order, and the relay that
finds an item already fanned out by the other goes on with the rest."""

from __future__ import annotations

from datetime import timedelta

from neruba.dal.transaction import Transaction
from neruba.dal.webhooks import OUTBOX_SHARDS, outbox_shard
from neruba.logic.webhooks import relay
from neruba.logic.webhooks.outbox import notify
from tests.functional.webhooks.conftest import NOW, MemoryQueue
from tests.functional.webhooks.test_delivery import endpoint


def test_a_relay_overtaken_by_another_keeps_order_and_sends_each_event_once(
    memory_hooks: MemoryQueue,
) -> None:
    endpoint(memory_hooks, "http://127.0.0.1:9/hooks", ["customer.updated"])
    ids = []
    for n in range(4):
        unit = Transaction()
        ids.append(notify(unit, "customer.updated", "acme", {"n": n}, NOW + timedelta(seconds=n)))
        unit.commit()
    assert OUTBOX_SHARDS > 1
    shard = outbox_shard("acme")
    # relay A reads the page, fans out the first item and stalls
    page = memory_hooks.repo.pending_outbox(shard, relay.PAGE)
    endpoints = [doc for doc, _ in memory_hooks.repo.all_endpoints()]
    relay.fan_out(memory_hooks, page[0], endpoints, NOW)
    # relay B runs whole meanwhile
    relay.relay_once(memory_hooks, NOW)
    # relay A goes on with its stale page: the items B fanned out are skipped, nothing is sent twice
    for item in page[1:]:
        relay.fan_out(memory_hooks, item, endpoints, NOW)
    sequences = [memory_hooks.repo.event(event_id).sequence for event_id in ids]  # type: ignore[union-attr]
    assert sequences == sorted(sequences) and len(set(sequences)) == 4
    assert sorted(body for body, _ in memory_hooks.queue) == sorted(
        set(body for body, _ in memory_hooks.queue)
    )
    assert len(memory_hooks.queue) == 4
