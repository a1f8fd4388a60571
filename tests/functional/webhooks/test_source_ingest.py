"""ingest.batch_failed summarizes a batch's refused events, written in one transaction with the batch's
outcome counters: a crash at that commit writes neither, and a redelivered copy (whose outcome is already
recorded) is summarized no second time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.functional.ingest.conftest import enqueue, ev, process, worker  # noqa: F401 - the fixtures
from tests.functional.webhooks.sources import crash_with_outbox, outbox
from tests.support.aws import queue_url
from tests.support.queues import receive_batch, run_batch


def _outcome_counters() -> dict[str, int]:
    from neruba import bootstrap

    now = datetime.now(UTC)
    rows = bootstrap.usage().outcomes(now - timedelta(hours=1), now + timedelta(minutes=2))
    totals: dict[str, int] = {}
    for row in rows:
        for name, n in row.counts.items():
            totals[name] = totals.get(name, 0) + n
    return totals


def test_a_batch_with_refused_events_sends_one_summary(
    catalog: Any,
    enqueue: Any,  # noqa: F811
    process: Any,  # noqa: F811
    worker: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a crash at the commit of the counters writes neither the counters nor the summary
    enqueue(ev("lost", customer="nobody"))
    url = queue_url("IngestQueue")
    with crash_with_outbox(monkeypatch) as crashes:
        assert run_batch(worker, url, receive_batch(url, 10))
    # (tried twice: a batch whose counting fails writes its counts before failing, and that write crashes too)
    assert crashes[0] >= 1 and outbox("ingest.batch_failed") == [] and _outcome_counters() == {}
    # the retry after the crash, once the killed attempt's hold has passed (SQS gives the message back
    # after its visibility timeout): the event's failed outcome is recorded, its summary sent
    from neruba.logic.ingest import worker as ingest_worker

    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    process()
    (lost,) = outbox("ingest.batch_failed")
    assert lost["data"]["by_code"] == {"unknown_customer": 1}
    # a batch of two refused events and an accepted one: one summary with both failures
    enqueue(ev("t1", customer="initech"), ev("t2", code="nope"), ev("t3"))
    process()
    summary = outbox("ingest.batch_failed")[1]
    data = summary["data"]
    assert summary["customer_id"] == "_global"
    assert (data["received"], data["accepted"], data["failed"]) == (3, 1, 2)
    assert data["by_code"] == {"unknown_customer": 1, "unknown_meter": 1}
    assert sorted((s["customer_id"], s["transaction_id"]) for s in data["samples"]) == [
        ("acme", "t2"),
        ("initech", "t1"),
    ]
    assert _outcome_counters() == {"accepted": 1, "failed": 3}  # "lost" of the crashed batch counted too
    # the same copies delivered again record no new outcome and send no second summary
    enqueue(ev("t1", customer="initech"), ev("t2", code="nope"), ev("t3"))
    process()
    assert len(outbox("ingest.batch_failed")) == 2 and _outcome_counters() == {"accepted": 1, "failed": 3}
