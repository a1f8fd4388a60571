"""The ingest outcome counters of a limited meter equal the outcomes its events record: a duplicate copy
of an event refused over a hard cap (the same transaction id twice in one batch, in two batches counted
at once, or delivered again) stays a ``duplicate`` in the counters, and every refusal moves one
``accepted`` to ``over_limit`` exactly once (docs/limits.md, "Outcome counters of limited meters")."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.functional.ingest.conftest import ev, event_of
from tests.functional.ingest.test_limits import _batch, _limits, _run, _usage
from tests.support.aws import queue_url
from tests.support.queues import receive_batch

NOW = datetime.now(UTC)
KINDS = ("accepted", "duplicate", "over_limit", "conflict", "failed", "replay")


def _totals(read: Any) -> dict[str, int]:
    span = {"from": (NOW - timedelta(hours=1)).isoformat(), "to": (NOW + timedelta(hours=1)).isoformat()}
    status, body = read("/v1/ingest/outcomes", query=span)
    assert status == 200, body
    return {k: int(body["totals"].get(k, 0)) for k in KINDS}


def _recorded(read: Any, ids: list[str]) -> dict[str, int]:
    """Every copy's outcome as its event records it (``GET /v1/events/{id}``, ``outcomes``)."""
    found: Counter[str] = Counter()
    for tx in ids:
        body = event_of(read, tx)
        found.update(o["outcome"] for o in body["outcomes"])
    return {k: found.get(k, 0) for k in KINDS}


def test_a_duplicate_in_the_batch_of_a_refused_event_stays_a_duplicate(
    send: Any, read: Any, catalog: Any
) -> None:
    # GIVEN a cap of 1 call, and two requests whose ids overlap (t1 and t2 sent twice)
    _limits(api_calls={"hard_cap": "1"})
    send(*(ev(f"t{i}", properties={}) for i in range(3)))
    send(*(ev(f"t{i}", properties={}) for i in (1, 2)))
    messages = receive_batch(queue_url("IngestQueue"), 5)
    assert len(messages) == 5
    # WHEN one batch writes and counts all five copies
    assert _run(_batch(), messages) == []
    # THEN t0 counts, t1 and t2 are refused, their second copies are duplicates: the counters agree
    recorded = _recorded(read, ["t0", "t1", "t2"])
    assert (recorded["accepted"], recorded["over_limit"], recorded["duplicate"]) == (1, 2, 2)
    assert _totals(read) == recorded
    assert _usage() == 1


def test_concurrent_batches_with_duplicate_ids_count_the_outcomes_events_record(
    send: Any, read: Any, catalog: Any, atomic_requests: None
) -> None:
    # GIVEN caps on two meters, and 8 requests: 4 of 5 calls whose ids repeat across requests (ids
    # (i*5+j) % 12: 8 copies of earlier ids) and 4 of 5 unique tokens events
    _limits(api_calls={"hard_cap": "6"}, tokens={"hard_cap": "7"})
    ids = [f"c{(i * 5 + j) % 12}" for i in range(4) for j in range(5)]
    for i in range(4):
        send(*(ev(ids[i * 5 + j], properties={}) for j in range(5)))
        send(*(ev(f"k{i}-{j}", code="tokens", properties={"tokens": 1, "model": "a"}) for j in range(5)))
    batches = [receive_batch(queue_url("IngestQueue"), 5) for _ in range(8)]
    assert sum(len(b) for b in batches) == 40
    # WHEN eight workers count them at the same time (what one leaves to SQS comes back in another)
    barrier = threading.Barrier(len(batches))

    def work(messages: list[dict[str, Any]]) -> None:
        batch = _batch()
        barrier.wait()
        failed = _run(batch, messages)
        while failed:
            failed = _run(_batch(), [m for m in messages if m["MessageId"] in failed])

    threads = [threading.Thread(target=work, args=(m,)) for m in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN the caps hold, and the outcome counters equal the outcomes the events record
    tokens = [f"k{i}-{j}" for i in range(4) for j in range(5)]
    recorded = _recorded(read, sorted(set(ids)) + tokens)
    assert recorded["duplicate"] == 8
    assert recorded["accepted"] == 6 + 7 and recorded["over_limit"] == 40 - 8 - 13
    assert _usage() == 6 and _usage("tokens") == 7
    assert _totals(read) == recorded


def test_refusals_made_by_the_batch_that_completes_another_write_are_counted_once(
    send: Any, read: Any, catalog: Any, monkeypatch: Any
) -> None:
    from neruba.dal import limit_pending

    # GIVEN a cap of 3 calls, a batch of 5 (3 fit, 2 to refuse) and a second batch of 2 of the customer
    _limits(api_calls={"hard_cap": "3"})
    send(*(ev(f"t{i}", properties={}) for i in range(5)))
    first_messages = receive_batch(queue_url("IngestQueue"), 10)
    send(ev("t5", properties={}), ev("t6", properties={}))
    other_messages = receive_batch(queue_url("IngestQueue"), 10)
    real_complete = limit_pending.complete
    ran: list[str] = []

    def complete(write: limit_pending.PendingWrite, *, fresh: bool = False, **more: Any) -> list[str]:
        if fresh and not ran:  # the first writer moved its counter; the second batch comes in between
            ran.append("other")
            assert _run(_batch(), other_messages) == []
        return real_complete(write, fresh=fresh, **more)

    monkeypatch.setattr(limit_pending, "complete", complete)
    # WHEN the second batch completes the first one's recorded write before the first writer does
    assert _run(_batch(), first_messages) == []
    assert ran == ["other"]
    # THEN 3 calls count, 4 are refused, and the counters say so: each refusal counted once, by the one
    # that made it
    ids = [f"t{i}" for i in range(7)]
    recorded = _recorded(read, ids)
    assert (recorded["accepted"], recorded["over_limit"]) == (3, 4)
    assert _usage() == 3
    assert _totals(read) == recorded
