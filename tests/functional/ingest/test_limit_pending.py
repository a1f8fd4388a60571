"""A limited write moves its period counter by one conditional put recording the write as pending, then
writes its contribution, refusals and alerts as plain conditional writes (dal/limit_pending.py). A worker
killed anywhere in between loses nothing, counts nothing twice and fires each alert once: whoever writes
the counter next (the same batch again, another batch, a void, a write after the limits came back)
completes the recorded write first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from neruba import bootstrap
from neruba.dal import limit_pending
from neruba.logic.limits import gate
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.functional.ingest.test_event_voids import AT, admin, body
from tests.functional.ingest.test_limit_amounts import priced
from tests.functional.ingest.test_limits import _alerts, _batch, _counted, _limits, _run, _statuses, _usage
from tests.support.aws import queue_url
from tests.support.queues import receive_batch

__all__ = ["admin", "priced"]

LATER = timedelta(seconds=200)  # past the hold of the killed attempt (logic/ingest/worker.py HOLD)


class Killed(BaseException):
    """The worker process died here (nothing after it runs, nothing catches it)."""


@contextmanager
def killed_at(monkeypatch: pytest.MonkeyPatch, step: str) -> Iterator[list[limit_pending.PendingWrite]]:
    """The first writer completing its own record dies: before any of its writes (``contribution``) or
    after the contribution and refusals, before its alerts (``alerts``). Yields the records it left."""
    left: list[limit_pending.PendingWrite] = []
    real_complete, real_alert = limit_pending.complete, limit_pending._alert

    def complete(write: limit_pending.PendingWrite, *, fresh: bool = False, **more: Any) -> list[str]:
        if fresh and not left:
            left.append(write)
            if step == "contribution":
                raise Killed
        return real_complete(write, fresh=fresh, **more)

    def alert(action: dict[str, Any], fresh: bool) -> None:
        if fresh and step == "alerts" and len(left) == 1:
            left.append(left[0])  # die once
            raise Killed
        real_alert(action, fresh)

    with monkeypatch.context() as patch:
        patch.setattr(limit_pending, "complete", complete)
        patch.setattr(limit_pending, "_alert", alert)
        yield left


def _counter(meter: str = "api_calls") -> Any:
    """The meter's counter of the current period, as stored."""
    from neruba.domain.limits import LimitSettings

    settings = LimitSettings.from_stored(bootstrap.limits().settings_text("acme"))
    assert settings is not None
    start, end = settings.period(datetime.now(UTC))
    return bootstrap.limits().counter("acme", meter, start, end)


def _kill_first_batch(monkeypatch: pytest.MonkeyPatch, send: Any, step: str) -> tuple[list[Any], Any]:
    """A cap of 3 with an alert at 2; five events in one batch whose worker dies at ``step``."""
    _limits(api_calls={"hard_cap": "3", "alerts": ["2"]})
    send(*(ev(f"t{i}", properties={}) for i in range(5)))
    messages = receive_batch(queue_url("IngestQueue"), 10)
    first = _batch()
    with killed_at(monkeypatch, step) as left, pytest.raises(Killed):
        _run(first, messages)
    assert left, "the worker never reached its counter"
    return messages, first


def test_killed_after_the_counter_moved_the_redelivery_completes_the_write(
    send: Any, read: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker killed right after moving the counter: the usage is in the counter only
    messages, first = _kill_first_batch(monkeypatch, send, "contribution")
    assert _usage() == 3 and _counted() == 0 and _alerts() == []
    # WHEN SQS delivers the same batch again, twice
    again = _batch(first.now + LATER)
    assert _run(again, messages) == []
    assert _run(_batch(first.now + 2 * LATER), messages) == []
    # THEN the write is completed once: 3 counted, 2 refused, each alert once
    assert _usage() == 3 and _counted() == 3
    statuses = _statuses(read, "acme", [f"t{i}" for i in range(5)])
    assert sorted(statuses.values()) == ["accepted"] * 3 + ["over_limit"] * 2
    assert sorted(a["alert"] for a in _alerts()) == ["a:2", "hard:3"]


def test_another_batch_completes_a_killed_write_before_it_decides(
    send: Any, read: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker killed right after moving the counter to the cap
    messages, first = _kill_first_batch(monkeypatch, send, "contribution")
    # WHEN another batch of the customer comes first
    send(ev("t5", properties={}), ev("t6", properties={}))
    other = receive_batch(queue_url("IngestQueue"), 10)
    later = _batch()
    assert _run(later, other) == []
    # THEN it completed the killed write (counted, refused, alerted) and refused its own events at the cap
    assert _counted() == 3 and _usage() == 3
    statuses = _statuses(read, "acme", [f"t{i}" for i in range(7)])
    assert [statuses[f"t{i}"] for i in (5, 6)] == ["over_limit", "over_limit"]
    assert sorted(statuses.values()) == ["accepted"] * 3 + ["over_limit"] * 4
    assert sorted(a["alert"] for a in _alerts()) == ["a:2", "hard:3"]
    # AND the killed batch delivered again counts and refuses nothing twice
    again = _batch(first.now + LATER)
    assert _run(again, messages) == []
    assert _counted() == 3 and _usage() == 3
    assert dict(again.outcomes).get("over_limit", 0) == 0
    assert sorted(a["alert"] for a in _alerts()) == ["a:2", "hard:3"]


def test_killed_between_the_contribution_and_the_alerts_the_next_writer_fires_them_once(
    send: Any, read: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker killed after its contribution and refusals, before its alerts
    messages, first = _kill_first_batch(monkeypatch, send, "alerts")
    assert _counted() == 3 and _alerts() == []
    # WHEN another batch writes the counter, then the killed batch comes again
    send(ev("t5", properties={}))
    assert _run(_batch(), receive_batch(queue_url("IngestQueue"), 10)) == []
    assert _run(_batch(first.now + LATER), messages) == []
    # THEN each level fired exactly once, and the usage counted once
    assert sorted(a["alert"] for a in _alerts()) == ["a:2", "hard:3"]
    assert _counted() == 3 and _usage() == 3


def _stored_alert_events() -> list[str]:
    items = boto3.client("dynamodb").scan(TableName=get_settings().ops_table)["Items"]
    return sorted(
        i["pk"]["S"]
        for i in items
        if i["pk"]["S"].startswith("WHEVT#") and i["type"]["S"] == "alert.triggered"
    )


def _relay() -> None:
    from neruba.dal.webhooks import WebhooksRepository
    from neruba.logic.webhooks.context import Webhooks
    from neruba.logic.webhooks.relay import relay_once

    settings = get_settings()
    hooks = Webhooks(
        repo=WebhooksRepository(settings.ops_table),
        queue_url=queue_url("WebhookDeliveryQueue"),
        stage="local",
        ops_table=settings.ops_table,
    )
    relay_once(hooks, datetime.now(UTC))


def test_the_same_batch_again_while_the_first_run_is_in_flight_sends_each_alert_once(
    send: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a first run that moved the counter and is still to write its contribution and alerts
    messages, first = _kill_first_batch(monkeypatch, send, "contribution")
    # WHEN the same batch, delivered again meanwhile, completes the write and the relay sends the alerts
    assert _run(_batch(first.now + LATER), messages) == []
    _relay()
    sent = _stored_alert_events()
    assert len(sent) == 2
    numbered = _sequence()
    # AND the first run then goes on with its own writes, and the relay runs again
    limit_pending.complete(_record_of(first), fresh=True)
    _relay()
    # THEN nothing is counted twice and no alert is sent twice
    assert _counted() == 3 and _usage() == 3
    assert _stored_alert_events() == sent
    assert _sequence() == numbered  # no second sequence number (a gap in the customer's events)
    assert _alerts() == []  # the late copies were dropped by the relay


def _sequence() -> int:
    """The customer's last event sequence number (``WHSEQ``)."""
    item = boto3.client("dynamodb").get_item(
        TableName=get_settings().ops_table, Key={"pk": {"S": "WHSEQ#acme"}, "sk": {"S": "#"}}
    )["Item"]
    return int(item["n"]["N"])


def _record_of(first: Any) -> limit_pending.PendingWrite:
    """The record the counter holds (the first run's: the same batch writes the same record)."""
    blob = _counter().pending
    assert blob is not None
    record = limit_pending.decode(blob)
    assert all(sk.endswith(first.batch_id) for _, sk in record.keys)
    return record


def test_a_void_completes_a_killed_write_before_it_lowers_the_counter(
    send: Any, process: Any, read: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a cap of 10: one event counted, then a batch of three whose worker is killed after the counter
    _limits(api_calls={"hard_cap": "10"})
    send(ev("c0", timestamp=AT, properties={}))
    process()
    send(*(ev(f"c{i}", timestamp=AT, properties={}) for i in range(1, 4)))
    messages = receive_batch(queue_url("IngestQueue"), 10)
    first = _batch()
    with killed_at(monkeypatch, "contribution"), pytest.raises(Killed):
        _run(first, messages)
    assert _usage() == 4 and _counted() == 1
    # WHEN the first event is voided, then the killed batch comes again
    status, answer = admin("void", "c0", body())
    assert status == 200, answer
    assert _run(_batch(first.now + LATER), messages) == []
    # THEN the counter and the counted usage agree: three events
    assert _counted() == 3 and _usage() == 3


def test_a_killed_write_redelivered_after_the_limits_were_removed_is_counted_once(
    send: Any, read: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker killed after moving the counter (3 admitted, 2 to refuse), then the limits removed
    messages, first = _kill_first_batch(monkeypatch, send, "contribution")
    _limits()
    # WHEN the batch comes again (counted without limits), then limits come back and another batch counts
    assert _run(_batch(first.now + LATER), messages) == []
    assert _counted() == 5
    _limits(api_calls={"hard_cap": "100", "alerts": ["2"]})
    send(ev("t5", properties={}))
    assert _run(_batch(), receive_batch(queue_url("IngestQueue"), 10)) == []
    # THEN every event counts once and none is refused (the write without limits counted them all)
    assert _counted() == 6
    statuses = _statuses(read, "acme", [f"t{i}" for i in range(6)])
    assert set(statuses.values()) == {"accepted"}
    # AND the alert the killed write crossed fired once
    assert [a["alert"] for a in _alerts()].count("a:2") == 1
    assert _counter().used == Decimal(4)  # the recorded 3, then t5: the 2 counted without limits are not


def test_the_record_is_small_and_read_back_whole() -> None:
    put = {
        "Put": {
            "TableName": "t",
            "Item": {"pk": {"S": "AGG#a#m"}, "sk": {"S": "2026-01-01!b"}, "cs": {"M": {}}},
        }
    }
    record = limit_pending.PendingWrite([put], [("a", "t1", "b")], "over", [])
    back = limit_pending.decode(limit_pending.encode(record))
    assert back == record and back.keys == {("AGG#a#m", "2026-01-01!b")}
    assert json.loads(json.dumps(back.contributions[0])) == put


@pytest.mark.parametrize("step", ["contribution", "alerts"])
def test_a_killed_write_with_spend_alerts_moves_the_spend_and_fires_each_level_once(
    priced: Any, send: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    from tests.functional.ingest.test_limit_amounts import _limits as limits_view
    from tests.functional.ingest.test_limit_amounts import _put, _spend_alerts

    # GIVEN a spend alert at 0.50 (api_calls cost 0.10 each), and a batch of 6 calls whose worker dies
    # right after its meter's counter (contribution) or after the spend counter, before its alert (alerts)
    status, answer = _put({"spend_alerts_minor": [50]})
    assert status == 200, answer
    send(*(ev(f"t{i}", properties={}) for i in range(6)))
    messages = receive_batch(queue_url("IngestQueue"), 10)
    first = _batch()
    with killed_at(monkeypatch, step) as left, pytest.raises(Killed):
        _run(first, messages)
    assert left and _spend_alerts() == []
    # WHEN another batch of the customer counts one call, and the killed batch comes again
    send(ev("t6", properties={}))
    assert _run(_batch(), receive_batch(queue_url("IngestQueue"), 10)) == []
    assert _run(_batch(first.now + LATER), messages) == []
    # THEN the spend counts the seven calls once and the level fired once
    assert limits_view()["spend_minor"] == 70
    assert [a["alert"] for a in _spend_alerts()] == ["spend:50"]
    assert _counted() == 7


def test_a_spend_step_applied_again_late_changes_nothing(
    priced: Any, send: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.functional.ingest.test_limit_amounts import _limits as limits_view
    from tests.functional.ingest.test_limit_amounts import _put

    # GIVEN a first write of 2 calls left pending (its worker died), then completed by a second of 3
    status, answer = _put({"spend_alerts_minor": [10_000]})
    assert status == 200, answer
    send(*(ev(f"t{i}", properties={}) for i in range(2)))
    with killed_at(monkeypatch, "contribution") as left, pytest.raises(Killed):
        _run(_batch(), receive_batch(queue_url("IngestQueue"), 10))
    send(*(ev(f"u{i}", properties={}) for i in range(3)))
    assert _run(_batch(), receive_batch(queue_url("IngestQueue"), 10)) == []
    assert limits_view()["spend_minor"] == 50
    # WHEN the first worker's spend step runs again late (an in-flight completer)
    (record,) = left
    assert record.spend is not None
    gate._spend_step(bootstrap.limits(), record.spend)
    # THEN the spend keeps the later amount
    assert limits_view()["spend_minor"] == 50


def test_a_write_through_the_transaction_completes_a_pending_write_first(
    send: Any, read: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker killed right after moving the counter to the cap (3 admitted, 2 to refuse)
    messages, first = _kill_first_batch(monkeypatch, send, "contribution")
    # WHEN the cap is raised to 10 and a batch refusing more events than one record holds (so written in a
    # transaction) comes next
    _limits(api_calls={"hard_cap": "10", "alerts": ["2"]})
    many = [ev(f"m{i:02d}", properties={}) for i in range(gate.PENDING_REFUSALS + 10)]
    for start in range(0, len(many), 10):
        send(*many[start : start + 10])
    later = _batch()
    records = []
    for _ in range(len(many) // 10):
        records += receive_batch(queue_url("IngestQueue"), 10)
    assert _run(later, records) == []
    # THEN the killed write was completed before it: its 3 counted and 2 refused, then 7 new ones counted
    assert _counted() == 10 and _usage() == 10
    statuses = _statuses(read, "acme", [f"t{i}" for i in range(5)])
    assert sorted(statuses.values()) == ["accepted"] * 3 + ["over_limit"] * 2
    # (its own refusals, and the killed write's two it made while completing it: counted by who made them)
    assert dict(later.outcomes).get("over_limit") == len(many) - 7 + 2
    assert sorted(a["alert"] for a in _alerts()) == ["a:2", "hard:10", "hard:3"]
    assert _counter().pending is None  # the transaction writes the counter without a record
    # AND the killed batch delivered again changes nothing
    assert _run(_batch(first.now + LATER), messages) == []
    assert _counted() == 10 and _usage() == 10


def _two_days(send: Any) -> list[str]:
    """A yearly cap of 4 with an alert at 2; six events sent, three yesterday and three today (one
    limit period); returns their transaction ids in timestamp order."""
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    body = {"interval": "year", "meters": [{"meter_code": "api_calls", "hard_cap": "4", "alerts": ["2"]}]}
    put_limits("acme", UsageLimitsIn.model_validate(body), None, Actor("test"))
    now = datetime.now(UTC)
    at = [now - timedelta(days=1, minutes=3 - i) for i in range(3)] + [
        now - timedelta(minutes=3 - i) for i in range(3)
    ]
    send(*(ev(f"d{i}", timestamp=t.isoformat(), properties={}) for i, t in enumerate(at)))
    return [f"d{i}" for i in range(6)]


def _counter_puts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the plain puts of limit counters from now on."""
    from neruba.dal.clients import client

    dynamodb = client("dynamodb")
    real, puts = dynamodb.put_item, [0]

    def counting(**request: Any) -> Any:
        if str(request["Item"]["pk"].get("S", "")).startswith("LIM#"):
            puts[0] += 1
        return real(**request)

    monkeypatch.setattr(dynamodb, "put_item", counting)
    return puts


def test_the_days_of_one_period_move_the_counter_once(
    send: Any, read: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN six events of one batch over two days of one limit period, a cap of 4
    ids = _two_days(send)
    puts = _counter_puts(monkeypatch)
    # WHEN the batch is counted
    batch = _batch()
    assert _run(batch, receive_batch(queue_url("IngestQueue"), 10)) == []
    # THEN one counter put decided both days together, in timestamp order: the first 4 count
    assert puts == [1]
    statuses = _statuses(read, "acme", ids)
    assert [statuses[t] for t in ids] == ["accepted"] * 4 + ["over_limit"] * 2
    assert _counted() == 4 and _counter().used == 4
    assert sorted(a["alert"] for a in _alerts()) == ["a:2", "hard:4"]
    assert dict(batch.outcomes).get("over_limit") == 2


def test_a_killed_write_of_two_days_is_completed_once(
    send: Any, read: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a batch of two days whose worker died right after its one counter put
    ids = _two_days(send)
    messages = receive_batch(queue_url("IngestQueue"), 10)
    first = _batch()
    with killed_at(monkeypatch, "contribution") as left, pytest.raises(Killed):
        _run(first, messages)
    (record,) = left
    assert len(record.contributions) == 2 and _counted() == 0
    # WHEN it is delivered again, twice
    assert _run(_batch(first.now + LATER), messages) == []
    assert _run(_batch(first.now + 2 * LATER), messages) == []
    # THEN both days are counted once, the refusals and alerts made once
    statuses = _statuses(read, "acme", ids)
    assert [statuses[t] for t in ids] == ["accepted"] * 4 + ["over_limit"] * 2
    assert _counted() == 4 and _counter().used == 4
    assert sorted(a["alert"] for a in _alerts()) == ["a:2", "hard:4"]
