"""A sweep check isolates each cell, customer or item it works on: one failure is reported as a failure
(report status, the ``SweepFailures`` metric and its alarm, an ERROR log line with ids) and the check goes
on with the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from neruba import bootstrap, jsonutil
from neruba.dal.ops import OpsRepository
from neruba.dal.usage import StoredCell, UsageRepository
from neruba.logic.sweeps.runner import run_sweep
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.support.lambda_context import FakeContext
from tests.support.usage import set_cell

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
AT = (HOUR - timedelta(hours=1)).isoformat()
BIG = "12345678901234567890123456789012345678"


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    from neruba.logic.sweeps import usage as sweep

    monkeypatch.setattr(sweep, "SETTLE", timedelta(0))


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The sweep metrics emitted during the test, summed by name."""
    from neruba.observability import metrics as powertools_metrics

    seen: dict[str, float] = {}
    original = powertools_metrics.add_metric

    def record(name: str, unit: Any, value: float, **kwargs: Any) -> None:
        seen[name] = seen.get(name, 0) + value
        original(name=name, unit=unit, value=value, **kwargs)

    monkeypatch.setattr(powertools_metrics, "add_metric", record)
    return seen


def _sweep(check: str, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    ops = OpsRepository(get_settings().ops_table)
    return run_sweep(
        ops,
        [check],
        now - timedelta(hours=2),
        now + timedelta(minutes=1),
        trigger="cli",
        actor="t",
        billing=bootstrap.billing,
    )


def _tokens(tx: str, value: Any, model: str = "m") -> dict[str, Any]:
    return ev(tx, code="tokens", timestamp=AT, properties={"tokens": value, "model": model})


def _cell(model: str) -> StoredCell:
    usage = UsageRepository(get_settings().usage_table)
    return next(a for a in usage.aggregates("acme", "tokens", "0000", "9999") if a.group.endswith(model))


def _set(key: dict[str, Any], **values: Any) -> None:
    names = {f"#a{i}": name for i, name in enumerate(values)}
    boto3.client("dynamodb").update_item(
        TableName=get_settings().usage_table,
        Key={"pk": {"S": key["pk"]}, "sk": {"S": key["sk"]}},
        UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":v{i}": v for i, v in enumerate(values.values())},
    )


def test_one_unrepairable_usage_cell_is_a_failure_and_the_other_cells_are_repaired(
    send: Any, process: Any, settled: None, metrics: dict[str, float]
) -> None:
    # GIVEN two drifted cells; in the first, an event stored before the number rule makes the truth a sum
    # DynamoDB cannot store (BIG + 0.5 needs 39 digits)
    send(_tokens("big", BIG), _tokens("legacy", 1), _tokens("o1", 4, "other"))
    process()
    event_key = {"pk": "EVT#acme#legacy", "sk": "#"}
    _set(event_key, p={"S": jsonutil.dumps({"tokens": "0.5", "model": "m"})})
    set_cell(_cell("m"), s={"N": "3"})
    set_cell(_cell("other"), s={"N": "7"})
    # WHEN the usage check runs
    report = _sweep("usage")
    # THEN the other cell is repaired, and the first is reported as a failure with its ids
    (check,) = report["checks"]
    assert _cell("other").usage.total == 4
    assert [r["group"] for r in check["repairs"] if r["kind"] == "drift"] == ["model=other"]
    assert report["status"] == "failed"
    assert [(f["kind"], f["group"]) for f in check["failures"]] == [("recompute", "model=m")]
    assert "not storable" in check["failures"][0]["error"]
    assert metrics.get("SweepFailures") == 1


def test_adopting_uncounted_events_that_fails_is_a_failure_not_a_repair(
    send: Any, worker: Any, settled: None, metrics: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from neruba.dal import transaction as unit_module  # every usage transaction commits through it
    from neruba.logic.ingest import worker as ingest_worker
    from neruba_tools.local.pollers import build_sqs_event
    from tests.support.aws import queue_url
    from tests.support.queues import receive_batch

    # GIVEN events a crashed worker wrote but never counted
    send(_tokens("k1", 2), _tokens("k2", 3))
    messages = receive_batch(queue_url("IngestQueue"), 10)
    with monkeypatch.context() as patch:
        patch.setattr(ingest_worker.IngestBatch, "finish", lambda self: (_ for _ in ()).throw(SystemExit()))
        with pytest.raises(SystemExit):
            worker(build_sqs_event(messages, queue_arn="arn:aws:sqs:us-east-1:123456789012:q"), FakeContext())
    # WHEN the usage check runs while DynamoDB throttles every transaction
    real = unit_module.client
    usage_table = get_settings().usage_table

    class Throttled:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

        def transact_write_items(self, **kwargs: Any) -> Any:
            if all(_table_of(action) != usage_table for action in kwargs["TransactItems"]):
                return self._inner.transact_write_items(**kwargs)  # not usage: the report is stored
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "TransactWriteItems")

    monkeypatch.setattr(unit_module, "client", lambda name: Throttled(real(name)))
    report = _sweep("usage")
    # THEN the report fails, the failure names the events, and nothing is claimed as repaired
    (check,) = report["checks"]
    assert report["status"] == "failed" and check["repaired"] == 0 and check["repairs"] == []
    assert [sorted(f["transaction_ids"]) for f in check["failures"]] == [["k1", "k2"]]
    assert metrics.get("SweepFailures") == 1
    # AND the next sweep, with DynamoDB back, counts them
    monkeypatch.setattr(unit_module, "client", real)
    again = _sweep("usage")
    assert again["status"] == "ok" and again["repaired"] == 1


def test_a_failing_customer_does_not_stop_the_ledger_check(
    catalog: Any, metrics: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.ledger import LedgerRepository
    from neruba.domain.ledger import Posting, credit, debit

    ledger = LedgerRepository(get_settings().ledger_table)
    now = datetime.now(UTC)
    for customer in ("acme", "globex"):
        posting = Posting.build(
            idempotency_key=f"pay-{customer}",
            customer_id=customer,
            currency="USD",
            entries=[debit("cash", 500), credit("receivable", 500)],
            reason="payment",
            source="payment",
            source_id=f"pay-{customer}",
            actor="test",
            at=now - timedelta(minutes=10),
        )
        ledger.post(posting)
    boto3.client("dynamodb").update_item(
        TableName=get_settings().ledger_table,
        Key={"pk": {"S": "CUS#globex"}, "sk": {"S": "BAL#USD#cash"}},
        UpdateExpression="SET bal = :v",
        ExpressionAttributeValues={":v": {"N": "900"}},
    )
    # GIVEN reading acme's postings fails
    real = LedgerRepository.posting_docs_between

    def broken(self: Any, customer_id: str, start: datetime, end: datetime) -> Any:
        if customer_id == "acme":
            raise RuntimeError("read failed")
        return real(self, customer_id, start, end)

    monkeypatch.setattr(LedgerRepository, "posting_docs_between", broken)
    # WHEN the ledger check runs
    report = _sweep("ledger", now)
    # THEN globex is still reconciled and repaired; acme is a failure with its id
    (check,) = report["checks"]
    assert [r["customer_id"] for r in check["repairs"]] == ["globex"]
    assert report["status"] == "failed"
    assert [f["customer_id"] for f in check["failures"]] == ["acme"]
    assert metrics.get("SweepFailures") == 1


def test_a_stripe_event_that_cannot_be_resent_is_a_failure(
    catalog: Any, metrics: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.stripe_events import StripeEventsRepository
    from neruba.logic.sweeps import stripe as sweep_stripe
    from tests.support.stripe_events import encode, invoice_paid

    repo = StripeEventsRepository(get_settings().ops_table)
    now = datetime.now(UTC)
    # GIVEN two stale unprocessed events, and a queue that refuses the first one sent
    events = [invoice_paid(created=int((now - timedelta(hours=1)).timestamp())) for _ in range(2)]
    for event in events:
        repo.put_new(event, encode(event), now - timedelta(hours=1))
    import neruba.dal.queue as queue

    sent: list[str] = []
    real_send = queue.send_batch

    def flaky(url: str, entries: Any) -> list[str]:
        sent.append(url)
        if len(sent) == 1:
            return [entries[0][0]]
        return real_send(url, entries)

    monkeypatch.setattr(queue, "send_batch", flaky)
    # WHEN the stripe check runs
    report = _sweep("stripe", now)
    # THEN the other event is re-sent and the unsent one is a failure with its id
    (check,) = report["checks"]
    assert check["repaired"] == 1 and len(check["failures"]) == 1
    assert check["failures"][0]["stripe_event_id"] in {e["id"] for e in events}
    assert report["status"] == "failed"
    assert metrics.get("SweepFailures") == 1
    assert sweep_stripe.STATUSES  # the check under test


def test_the_sweep_failures_alarm_exists() -> None:
    from pathlib import Path

    template = (Path(__file__).resolve().parents[3] / "template.yaml").read_text()
    assert "SweepFailuresAlarm:" in template and "MetricName: SweepFailures" in template


def test_the_sweep_parks_an_uncounted_event_that_can_never_be_counted(
    send: Any, worker: Any, settled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.domain import ingest as ingest_rules
    from neruba.logic.ingest import api as ingest_api
    from neruba.logic.ingest import worker as ingest_worker
    from neruba_tools.local.pollers import build_sqs_event
    from tests.support.aws import queue_url
    from tests.support.queues import receive_batch

    # GIVEN a worker without the number rule that died before counting, one event holding 1e400
    with monkeypatch.context() as old_code:
        old_code.setattr(ingest_api, "property_number_problems", lambda properties: [])
        old_code.setattr(ingest_worker, "property_number_problems", lambda properties: [])
        old_code.setattr(ingest_rules, "number_problem", lambda value: None)
        send(_tokens("k1", 2), _tokens("k2", 3), _tokens("poison", "1e400"))
        messages = receive_batch(queue_url("IngestQueue"), 10)
        old_code.setattr(
            ingest_worker.IngestBatch, "finish", lambda self: (_ for _ in ()).throw(SystemExit())
        )
        with pytest.raises(SystemExit):
            worker(build_sqs_event(messages, queue_arn="arn:aws:sqs:us-east-1:123456789012:q"), FakeContext())
    # WHEN the usage check runs
    report = _sweep("usage")
    # THEN the two others are counted and the offender parked `failed`, each listed as a repair
    (check,) = report["checks"]
    assert report["status"] == "ok", report
    kinds = sorted((r["kind"], tuple(sorted(r["transaction_ids"]))) for r in check["repairs"])
    assert kinds == [("event_parked", ("poison",)), ("uncounted", ("k1", "k2"))]
    assert _cell("m").usage.total == 5
    stored = UsageRepository(get_settings().usage_table).get_event("acme", "poison")
    assert stored is not None and (stored.status, stored.reason) == ("failed", "number_out_of_range")


def _table_of(action: dict[str, Any]) -> str:
    """The table a TransactWriteItems action writes or checks."""
    (body,) = action.values()
    return str(body["TableName"])
