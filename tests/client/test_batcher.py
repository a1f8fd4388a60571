"""The event batcher's rules (clients/python/neruba_client/batcher.py) over a scripted ingest API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import neruba_client as nc
from neruba_client.batcher import split_by_size
from tests.client.conftest import error
from tests.client.fake_ingest import FakeIngest

QUICK = {"backoff_base": 0.001, "backoff_cap": 0.01}


def _client(fake: FakeIngest, **options: Any) -> nc.Neruba:
    return nc.Neruba(
        "k",
        base_url="http://api.test",
        http_transport=httpx.MockTransport(fake),
        sleep=lambda s: None,
        **options,
    )


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_batch_leaves_at_100_events_and_the_rest_on_close() -> None:
    fake = FakeIngest()
    batcher = _client(fake).events.batcher(flush_interval=60)
    ids = [batcher.add("acme", "calls", {"n": i}) for i in range(250)]
    _until(lambda: fake.sizes() == [100, 100])
    batcher.close()
    assert fake.sizes() == [100, 100, 50]
    assert set(fake.stored) == set(ids) and all(n == 1 for n in fake.stored.values())
    assert batcher.stats.queued == 250 and batcher.stats.failed == 0


def test_a_partial_batch_leaves_after_the_interval() -> None:
    fake = FakeIngest()
    with _client(fake).events.batcher(flush_interval=0.05) as batcher:
        batcher.add("acme", "calls", {"n": 1})
        batcher.add("acme", "calls", {"n": 2})
        _until(lambda: fake.sizes() == [2], timeout=2)


def test_events_get_an_id_and_a_timestamp_when_buffered() -> None:
    fake = FakeIngest()
    with _client(fake).events.batcher(flush_interval=60) as batcher:
        given = batcher.add("acme", "calls", transaction_id="mine-1")
        made = batcher.add(event={"customer_id": "acme", "code": "calls"})
    assert given == "mine-1" and made
    sent = fake.batches[0]
    assert [e["transaction_id"] for e in sent] == ["mine-1", made]
    assert all(e["timestamp"] for e in sent)


def test_failed_sends_are_retried_with_the_same_events() -> None:
    failures = {
        1: error(500, "internal_error", "api_error"),
        2: httpx.RemoteProtocolError("dropped"),
        3: httpx.ReadTimeout("slow"),
        4: error(429, "busy", "api_error"),
        5: httpx.ConnectError("down"),
    }
    fake = FakeIngest(fault=lambda n, events: failures.get(n))
    # no retry inside the client: every failure goes back to the batcher
    client = _client(fake, retry=nc.RetryPolicy(max_retries=0))
    with client.events.batcher(flush_interval=60, **QUICK) as batcher:
        for i in range(100):
            batcher.add("acme", "calls", {"n": i})
    assert fake.sizes() == [100] * 6
    first = [e for e in fake.batches[0]]
    assert all(batch == first for batch in fake.batches)  # same ids, same timestamps, same bodies
    assert len(fake.stored) == 100 and batcher.stats.queued == 100
    assert batcher.stats.retried_batches == 1 and batcher.stats.attempts == 6


def test_a_refused_batch_is_reported_per_event_and_not_retried() -> None:
    details = [
        {"param": "events.0.code", "code": "invalid_field", "message": "code is not a meter code."},
        {"param": "events.1", "code": "missing_field", "message": "customer_id is required."},
    ]
    refused = error(400, "all_events_rejected", fields={"details": details})
    fake = FakeIngest(fault=lambda n, events: refused)
    reports: list[nc.EventFailure] = []
    with _client(fake).events.batcher(flush_interval=60, on_error=reports.append) as batcher:
        first = batcher.add("acme", "bad code")
        second = batcher.add("acme", "calls")
    assert fake.sizes() == [2]
    assert [(r.event.transaction_id, r.code, r.param, r.status) for r in reports] == [
        (first, "invalid_field", "code", 400),
        (second, "missing_field", None, 400),
    ]
    assert batcher.stats.failed == 2 and batcher.stats.queued == 0


def test_other_4xx_report_every_event_of_the_batch() -> None:
    fake = FakeIngest(fault=lambda n, events: error(401, "unauthorized", "authentication_error"))
    reports: list[nc.EventFailure] = []
    with _client(fake).events.batcher(flush_interval=60, on_error=reports.append) as batcher:
        for _ in range(3):
            batcher.add("acme", "calls")
    assert len(fake.batches) == 1
    assert [r.code for r in reports] == ["unauthorized"] * 3


def test_events_rejected_in_a_202_are_reported() -> None:
    fake = FakeIngest(reject=lambda e: "invalid_property" if e["properties"].get("bad") else None)
    reports: list[nc.EventFailure] = []
    with _client(fake).events.batcher(flush_interval=60, on_error=reports.append) as batcher:
        batcher.add("acme", "calls", {"n": 1})
        bad = batcher.add("acme", "calls", {"bad": True})
    assert [(r.event.transaction_id, r.code, r.request_id) for r in reports] == [
        (bad, "invalid_property", "r1")
    ]
    assert batcher.stats.queued == 1


def test_events_the_api_could_not_queue_are_sent_again_with_the_same_ids() -> None:
    # GIVEN an API that answers 202 but could not queue some events the first time (the per-event
    # temporarily_unavailable: "send it again"), as when its queue refuses part of a SendMessageBatch
    refused_once: set[str] = set()

    def reject(event: dict[str, Any]) -> str | None:
        if event["properties"]["n"] % 3 == 0 and event["transaction_id"] not in refused_once:
            refused_once.add(event["transaction_id"])
            return "temporarily_unavailable"
        return None

    fake = FakeIngest(reject=reject)
    reports: list[nc.EventFailure] = []
    with _client(fake).events.batcher(flush_interval=60, on_error=reports.append, **QUICK) as batcher:
        ids = [batcher.add("acme", "calls", {"n": i}) for i in range(10)]
    # THEN those events are sent again (only they), with the same transaction ids, and nothing is reported
    assert reports == [] and batcher.stats.failed == 0
    assert set(fake.stored) == set(ids) and all(n == 1 for n in fake.stored.values())
    assert batcher.stats.queued == 10
    assert fake.sizes() == [10, 4]


def test_events_never_queued_before_the_close_deadline_are_reported() -> None:
    fake = FakeIngest(reject=lambda e: "temporarily_unavailable" if e["properties"]["n"] == 1 else None)
    reports: list[nc.EventFailure] = []
    batcher = _client(fake).events.batcher(
        flush_interval=60, on_error=reports.append, close_timeout=0.2, **QUICK
    )
    batcher.add("acme", "calls", {"n": 0})
    stuck = batcher.add("acme", "calls", {"n": 1})
    batcher.close()
    assert [(r.event.transaction_id, r.code) for r in reports] == [(stuck, "temporarily_unavailable")]
    assert batcher.stats.queued == 1 and batcher.stats.failed == 1


def test_202_rejections_name_the_field_inside_the_event() -> None:
    # the API's param is a path in the request body (events.{i}.field); the index is the batch's, so
    # the report names the field inside the event, the same as for a 400's details
    def reject(event: dict[str, Any]) -> tuple[str, str] | None:
        if event["customer_id"] == "gone":
            return ("customer_archived", "customer_id")
        if event["customer_id"] == "nobody":
            return ("unknown_customer", "customer_id")
        if "tokens" not in event["properties"]:
            return ("missing_property", "properties.tokens")
        return None

    fake = FakeIngest(reject=reject)
    reports: list[nc.EventFailure] = []
    with _client(fake).events.batcher(flush_interval=60, on_error=reports.append) as batcher:
        batcher.add("acme", "calls", {"tokens": 3})
        gone = batcher.add("gone", "calls", {"tokens": 1})
        nobody = batcher.add("nobody", "calls", {"tokens": 1})
        bare = batcher.add("acme", "calls", {})
    assert fake.sizes() == [4]
    assert [(r.event.transaction_id, r.code, r.param, r.status) for r in reports] == [
        (gone, "customer_archived", "customer_id", None),
        (nobody, "unknown_customer", "customer_id", None),
        (bare, "missing_property", "properties.tokens", None),
    ]
    assert batcher.stats.queued == 1 and batcher.stats.failed == 3


def test_all_events_rejected_is_reported_per_event_by_its_details_not_retried() -> None:
    # details in any order, each naming its event by its index in the batch
    def refuse(number: int, events: list[dict[str, Any]]) -> httpx.Response:
        details = [
            {
                "param": f"events.{i}.customer_id",
                "code": "unknown_customer",
                "message": f"customer_id {events[i]['customer_id']} does not exist.",
            }
            for i in reversed(range(len(events)))
        ]
        return error(400, "all_events_rejected", fields={"details": details})

    fake = FakeIngest(fault=refuse)
    reports: list[nc.EventFailure] = []
    with _client(fake).events.batcher(flush_interval=60, on_error=reports.append, **QUICK) as batcher:
        sent = [batcher.add(f"c{i}", "calls") for i in range(3)]
    assert fake.sizes() == [3]  # one request: a 400 is not retried
    assert sorted((r.event.transaction_id, r.code, r.param, r.message) for r in reports) == sorted(
        (tid, "unknown_customer", "customer_id", f"customer_id c{i} does not exist.")
        for i, tid in enumerate(sent)
    )
    assert batcher.stats.failed == 3 and batcher.stats.queued == 0 and batcher.stats.retried_batches == 0


def test_without_a_callback_failures_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeIngest(reject=lambda e: "invalid_property")
    with _client(fake).events.batcher(flush_interval=60) as batcher:
        tid = batcher.add("acme", "calls")
    assert any(tid in r.getMessage() and "invalid_property" in r.getMessage() for r in caplog.records)


def test_when_full_raise_refuses_at_once() -> None:
    fake = FakeIngest()
    fake.gate.clear()  # the API holds the first batch
    batcher = _client(fake).events.batcher(
        batch_size=10, max_buffered=10, when_full="raise", flush_interval=60
    )
    for _ in range(10):
        batcher.add("acme", "calls")
    _until(lambda: fake.sizes() == [10])
    with pytest.raises(nc.BatcherFullError):
        batcher.add("acme", "calls")
    fake.gate.set()
    batcher.close()
    assert batcher.stats.queued == 10


def test_when_full_block_waits_for_room_then_gives_up_after_the_timeout() -> None:
    fake = FakeIngest()
    fake.gate.clear()
    batcher = _client(fake).events.batcher(batch_size=5, max_buffered=5, block_timeout=0.2, flush_interval=60)
    for _ in range(5):
        batcher.add("acme", "calls")
    started = time.monotonic()
    with pytest.raises(nc.BatcherFullError):
        batcher.add("acme", "calls")
    assert time.monotonic() - started >= 0.2
    # room comes back once the batch is answered: a blocked add then succeeds
    threading_release = __import__("threading").Timer(0.1, fake.gate.set)
    threading_release.start()
    batcher.add("acme", "calls")
    batcher.close()
    assert batcher.stats.queued == 6


def test_close_gives_up_after_close_timeout_and_reports_what_is_left() -> None:
    fake = FakeIngest(fault=lambda n, events: error(503, "unavailable", "api_error"))
    reports: list[nc.EventFailure] = []
    client = _client(fake, retry=nc.RetryPolicy(max_retries=0))
    batcher = client.events.batcher(flush_interval=60, close_timeout=0.2, on_error=reports.append, **QUICK)
    ids = {batcher.add("acme", "calls") for _ in range(7)}
    started = time.monotonic()
    batcher.close()
    assert time.monotonic() - started < 2
    assert {r.event.transaction_id for r in reports} == ids and {r.code for r in reports} == {"not_delivered"}


def test_flush_sends_now_and_waits_for_the_answer() -> None:
    fake = FakeIngest()
    batcher = _client(fake).events.batcher(flush_interval=60)
    batcher.add("acme", "calls")
    assert batcher.flush(timeout=5) is True
    assert fake.sizes() == [1]
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.add("acme", "calls")


def test_options_are_checked() -> None:
    client = _client(FakeIngest())
    with pytest.raises(ValueError, match="batch_size"):
        client.events.batcher(batch_size=101)
    with pytest.raises(ValueError, match="max_buffered"):
        client.events.batcher(batch_size=50, max_buffered=10)
    with pytest.raises(ValueError, match="when_full"):
        client.events.batcher(when_full="drop")


def test_batches_over_the_body_limit_are_split() -> None:
    events = [
        nc.Event(transaction_id=f"t{i}", customer_id="acme", code="c", properties={"x": "y" * 1000})
        for i in range(100)
    ]
    parts = split_by_size(events, limit=20_000)
    assert [e.transaction_id for p in parts for e in p] == [e.transaction_id for e in events]
    assert all(len(json.dumps({"events": [e.model_dump(mode="json") for e in p]})) <= 20_000 for p in parts)
    assert len(parts) > 1


def test_pending_events_are_sent_at_interpreter_exit(tmp_path: Path) -> None:
    out = tmp_path / "sent.json"
    script = f"""
import json, httpx, neruba_client as nc
sent = []
def answer(request):
    events = json.loads(request.read())["events"]
    sent.extend(e["transaction_id"] for e in events)
    open({str(out)!r}, "w").write(json.dumps(sent))
    statuses = [{{"index": i, "transaction_id": e["transaction_id"], "status": "queued"}}
                for i, e in enumerate(events)]
    body = {{"request_id": "r", "queued": len(events), "rejected": 0, "events": statuses}}
    return httpx.Response(202, json=body)
client = nc.Neruba("k", base_url="http://api.test", http_transport=httpx.MockTransport(answer))
batcher = client.events.batcher(flush_interval=3600)
for i in range(42):
    batcher.add("acme", "calls", transaction_id=f"exit-{{i}}")
"""
    root = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": f"{root / 'clients' / 'python'}:{':'.join(sys.path)}"}
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, env=env)
    assert json.loads(out.read_text()) == [f"exit-{i}" for i in range(42)]


def test_async_batcher_batches_retries_and_flushes_on_exit() -> None:
    failures = {1: httpx.RemoteProtocolError("dropped"), 2: error(502, "bad_gateway", "api_error")}
    fake = FakeIngest(fault=lambda n, events: failures.get(n))
    reports: list[nc.EventFailure] = []

    async def no_sleep(seconds: float) -> None:
        return None

    async def main() -> nc.BatcherStats:
        client = nc.AsyncNeruba(
            "k",
            base_url="http://api.test",
            http_transport=httpx.MockTransport(fake),
            sleep=no_sleep,
            retry=nc.RetryPolicy(max_retries=0),
        )
        async with client.events.batcher(flush_interval=60, on_error=reports.append, **QUICK) as batcher:
            for i in range(130):
                await batcher.add("acme", "calls", {"n": i})
        await client.close()
        return batcher.stats

    stats = asyncio.run(main())
    assert fake.sizes() == [100, 100, 100, 30]
    assert fake.batches[0] == fake.batches[2]
    assert len(fake.stored) == 130 and stats.queued == 130 and not reports


def test_async_batcher_when_full_raise() -> None:
    fake = FakeIngest()

    async def main() -> None:
        client = nc.AsyncNeruba("k", base_url="http://api.test", http_transport=httpx.MockTransport(fake))
        batcher = client.events.batcher(batch_size=3, max_buffered=3, when_full="raise", flush_interval=60)
        for _ in range(3):
            await batcher.add("acme", "calls")
        with pytest.raises(nc.BatcherFullError):
            await batcher.add("acme", "calls")
        assert await batcher.flush(timeout=5)
        await batcher.add("acme", "calls")
        await batcher.close()

    asyncio.run(main())
    assert fake.sizes() == [3, 1]


def test_async_batcher_reports_202_rejections_and_all_events_rejected_per_event() -> None:
    # batch 1: a 202 rejecting the archived customer's event; batch 2: every event refused (400)
    def fault(number: int, events: list[dict[str, Any]]) -> httpx.Response | None:
        if number == 1:
            return None
        details = [
            {"param": f"events.{i}.code", "code": "unknown_meter", "message": "no such meter."}
            for i in range(len(events))
        ]
        return error(400, "all_events_rejected", fields={"details": details})

    fake = FakeIngest(
        fault=fault,
        reject=lambda e: ("customer_archived", "customer_id") if e["customer_id"] == "gone" else None,
    )
    reports: list[nc.EventFailure] = []

    async def main() -> tuple[list[str], nc.BatcherStats]:
        client = nc.AsyncNeruba("k", base_url="http://api.test", http_transport=httpx.MockTransport(fake))
        async with client.events.batcher(batch_size=2, flush_interval=60, on_error=reports.append) as batcher:
            sent = [
                await batcher.add("acme", "calls"),
                await batcher.add("gone", "calls"),
                await batcher.add("acme", "nope"),
                await batcher.add("acme", "nada"),
            ]
        await client.close()
        return sent, batcher.stats

    sent, stats = asyncio.run(main())
    assert fake.sizes() == [2, 2]  # the 400 was not retried
    assert [(r.event.transaction_id, r.code, r.param) for r in reports] == [
        (sent[1], "customer_archived", "customer_id"),
        (sent[2], "unknown_meter", "code"),
        (sent[3], "unknown_meter", "code"),
    ]
    assert stats.queued == 1 and stats.failed == 3
