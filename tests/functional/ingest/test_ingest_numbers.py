"""Numbers DynamoDB cannot store: refused at the API, parked by the worker, and never a cell's downfall.

DynamoDB keeps at most 38 significant digits, exactly, for magnitudes from 1E-130 to under 1E+126 (and
zero); moto stores more and rounds fractional sums at 28 digits, so these tests hold the product to
DynamoDB's contract rather than to moto's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, localcontext
from typing import Any

import boto3
import pytest

from neruba import jsonutil
from neruba.dal.usage import UsageRepository
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.support.aws import queue_url

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
AT = (HOUR - timedelta(hours=1)).isoformat()  # one cell whatever the minute now
BIG = "12345678901234567890123456789012345678"  # 38 significant digits: storable


def _enqueue(*events: dict[str, Any]) -> None:
    """Queue events as the API would, without its checks (messages queued before the API refused them)."""
    sqs = boto3.client("sqs")
    now = datetime.now(UTC).isoformat()
    for index, event in enumerate(events):
        body = {
            "v": 1,
            "rid": f"req_{uuid.uuid4().hex[:12]}",
            "i": index,
            "rt": now,
            "e": {
                "transaction_id": event["transaction_id"],
                "customer_id": event["customer_id"],
                "code": event["code"],
                "timestamp": event.get("timestamp", AT),
                "client_timestamp": event.get("timestamp", AT),
                "properties": event.get("properties", {}),
            },
        }
        sqs.send_message(QueueUrl=queue_url("IngestQueue"), MessageBody=jsonutil.dumps(body))


def _event(read: Callable[..., tuple[int, Any]], tx: str) -> Any:
    status, body = read(
        f"/v1/events/{tx}", query={"customer_id": "acme"}, path_parameters={"transaction_id": tx}
    )
    assert status == 200, body
    return body


def _sum(customer: str = "acme", meter: str = "tokens") -> Decimal:
    items = UsageRepository(get_settings().usage_table).aggregates(customer, meter, "0000", "9999")
    with localcontext(Context(prec=200)):  # the default context would round past 28 digits
        return sum((i.usage.total or Decimal(0) for i in items), Decimal(0))


def _exact(*values: Any) -> Decimal:
    with localcontext(Context(prec=200)):
        return sum((Decimal(v) for v in values), Decimal(0))


def _dlq_depth() -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url("IngestDLQ"), AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _tokens(tx: str, value: Any, **more: Any) -> dict[str, Any]:
    return ev(tx, code="tokens", timestamp=AT, properties={"tokens": value, "model": "m", **more})


# ------------------------------------------------------------------------------------------ the API
@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("1e400", "number_out_of_range"),
        ("1e-400", "number_out_of_range"),
        ("1E+126", "number_out_of_range"),
        ("-1e-131", "number_out_of_range"),
        ("1234567890123456789012345678901234567890", "number_too_precise"),
        ("0.123456789012345678901234567890123456789", "number_too_precise"),
    ],
)
def test_api_refuses_numbers_dynamodb_cannot_store(send: Any, value: str, code: str) -> None:
    # GIVEN a batch with one unstorable number (in the aggregated property or any other) and valid events
    body = send(
        _tokens("ok-1", 1),
        _tokens("bad-agg", value),
        _tokens("bad-other", 2, note=value),
        _tokens("ok-2", BIG),
    )
    # THEN only the two carrying the number are rejected, each with the rule's code and the field
    by_tx = {e["transaction_id"]: e for e in body["events"]}
    assert (body["queued"], body["rejected"]) == (2, 2)
    assert by_tx["bad-agg"]["error"]["code"] == code
    assert by_tx["bad-agg"]["error"]["param"] == "events.1.properties.tokens"
    assert by_tx["bad-other"]["error"]["code"] == code
    assert by_tx["bad-other"]["error"]["param"] == "events.2.properties.note"
    assert "38" in by_tx["bad-agg"]["error"]["message"] or "1E" in by_tx["bad-agg"]["error"]["message"]
    assert by_tx["ok-1"]["status"] == by_tx["ok-2"]["status"] == "queued"


def test_api_accepts_the_edges_dynamodb_stores(send: Any) -> None:
    # (negative edges are storable too, but this meter refuses negative values: docs/limits.md)
    edges = ["9.9999999999999999999999999999999999999E+125", "1E-130", "1E+125", "0", "1" + "0" * 60]
    body = send(*[_tokens(f"edge-{i}", value) for i, value in enumerate(edges)])
    assert body["rejected"] == 0, body


# ------------------------------------------------------------------------------------------ the worker
def test_worker_parks_an_unstorable_value_and_counts_its_neighbours(
    catalog: Any, process: Any, read: Any
) -> None:
    # GIVEN 19 valid events and one unstorable number in the same cell, queued without the API's check
    _enqueue(*[_tokens(f"v{i}", 1) for i in range(19)], _tokens("poison", "1e400"))
    # WHEN the worker runs
    process()
    # THEN the offender is failed with the rule as its reason; the 19 others count; nothing is retried
    poison = _event(read, "poison")
    assert (poison["status"], poison["reason"]) == ("failed", "number_out_of_range")
    assert _sum() == 19
    assert all(_event(read, f"v{i}")["status"] == "accepted" for i in range(19))
    assert _dlq_depth() == 0


def test_a_cell_sum_past_38_digits_across_batches_stays_exact(send: Any, process: Any, read: Any) -> None:
    # GIVEN a cell already holding a 38-digit integer sum
    send(_tokens("big", BIG))
    process()
    # WHEN a batch adds 2, 0.5 and 3 to it (the cell's sum needs 39 digits)
    send(_tokens("two", 2), _tokens("half", "0.5"), _tokens("three", 3))
    process()
    # THEN every event counts and the sum is exact: each batch stores its own contribution, and the cell's
    # sum is never stored as one number
    assert all(_event(read, tx)["status"] == "accepted" for tx in ("two", "half", "three"))
    assert _sum() == _exact(BIG, "5.5")
    assert _dlq_depth() == 0


def test_a_batch_whose_own_total_is_not_storable_counts_its_events_one_by_one(
    send: Any, process: Any, read: Any
) -> None:
    # GIVEN one batch whose events together need more than 38 digits in one cell
    send(_tokens("big", BIG), _tokens("tiny", "0.001"), _tokens("one", 1))
    process()
    # THEN the cell is isolated: each event is stored as a contribution of its own, all count exactly
    assert all(_event(read, tx)["status"] == "accepted" for tx in ("big", "tiny", "one"))
    assert _sum() == _exact(BIG, "1.001")
    (cell,) = UsageRepository(get_settings().usage_table).aggregates("acme", "tokens", "0000", "9999")
    assert len(cell.sources) == 3
    assert _dlq_depth() == 0


# ------------------------------------------------------------------------------------------ moto vs DynamoDB
def test_fractional_sums_are_stored_exactly_as_dynamodb_stores_them(send: Any, process: Any) -> None:
    # GIVEN sums of 29 to 38 digits with a fraction (moto alone rounds them at 28 digits)
    send(_tokens("a", "100000000000000000000"))
    process()
    send(_tokens("b", "0.123456789"))
    process()
    # THEN the stored sum is exact
    assert _sum() == Decimal("100000000000000000000.123456789")


def test_a_sum_dynamodb_could_not_store_is_still_exact(send: Any, process: Any, read: Any) -> None:
    # GIVEN 1e30 + 1 (31 digits), then 0.00000001 (the sum needs 39 digits: DynamoDB could not store it as
    # one number; moto alone would store 1e30, losing the 1)
    send(_tokens("a", "1" + "0" * 30))
    process()
    send(_tokens("b", 1))
    process()
    send(_tokens("c", "0.00000001"))
    process()
    # THEN the sum is exact: no stored number holds it, it is added up when read
    assert _sum() == _exact(10**30, 1, "0.00000001")
    assert _event(read, "c")["status"] == "accepted"


# ------------------------------------------------------------------------------------------ any cell failure
def _outcome_totals(read: Callable[..., tuple[int, Any]]) -> dict[str, int]:
    now = datetime.now(UTC)
    status, body = read(
        "/v1/ingest/outcomes",
        query={
            "from": (now - timedelta(hours=1)).isoformat(),
            "to": (now + timedelta(minutes=1)).isoformat(),
            "granularity": "minute",
        },
    )
    assert status == 200, body
    return dict(body["totals"])


def _fail_transactions_naming(
    monkeypatch: pytest.MonkeyPatch, transaction_id: str, code: str
) -> Callable[[], None]:
    """DynamoDB answers ``code`` to every count (a transaction or a contribution put) of ``transaction_id``;
    returns the cure."""
    from botocore.exceptions import ClientError

    from neruba.dal import transaction as unit_module  # every usage transaction commits through it
    from neruba.dal import usage as usage_module  # a contribution without adoptions is a single put

    real = unit_module.client
    modules = (unit_module, usage_module)

    class Failing:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

        def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> Any:
            if f'"{transaction_id}"' in jsonutil.dumps(TransactItems):
                raise ClientError({"Error": {"Code": code, "Message": "refused"}}, "TransactWriteItems")
            return self._inner.transact_write_items(TransactItems=TransactItems)

        def put_item(self, **kwargs: Any) -> Any:
            counts = str(kwargs["Item"]["pk"]["S"]).startswith("AGG#")  # a contribution, not the event
            if counts and f'"{transaction_id}"' in jsonutil.dumps(kwargs["Item"]):
                raise ClientError({"Error": {"Code": code, "Message": "refused"}}, "PutItem")
            return self._inner.put_item(**kwargs)

    for module in modules:
        monkeypatch.setattr(module, "client", lambda name: Failing(real(name)))

    def cure() -> None:
        for module in modules:
            monkeypatch.setattr(module, "client", real)

    return cure


def test_a_cell_refused_for_any_reason_parks_only_its_offender(
    send: Any, process: Any, read: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN DynamoDB refusing (ValidationException) every write that carries one event
    _fail_transactions_naming(monkeypatch, "offender", "ValidationException")
    # WHEN a batch holds it among four neighbours of its cell, and three events of another cell
    send(
        *[_tokens(f"n{i}", 1) for i in range(4)],
        _tokens("offender", 1),
        *[
            ev(f"o{i}", code="tokens", timestamp=AT, properties={"tokens": 10, "model": "other"})
            for i in range(3)
        ],
    )
    process()
    # THEN the offender is parked with the reason and logged with its ids; every other event counts
    offender = _event(read, "offender")
    assert (offender["status"], offender["reason"]) == ("failed", "write_refused")
    assert _sum() == 4 + 30
    assert _outcome_totals(read)["accepted"] == 7 and _outcome_totals(read)["failed"] == 1
    assert _dlq_depth() == 0
    parked = [r for r in caplog.records if r.getMessage() == "usage event parked"]
    assert [getattr(r, "transaction_id", None) for r in parked] == ["offender"]
    assert getattr(parked[0], "customer_id", None) == "acme"


def test_a_throttled_cell_is_retried_not_parked_and_other_cells_count(
    send: Any, process: Any, worker: Any, read: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.queues import receive_batch, run_batch

    # GIVEN DynamoDB throttling the write that holds one event (the contribution of its customer's meter
    # for that day, which holds its cell and the day's other cells: hot-neighbour's, other-group's)
    cure = _fail_transactions_naming(monkeypatch, "hot", "ProvisionedThroughputExceededException")
    send(
        _tokens("hot", 1),
        _tokens("hot-neighbour", 2),
        _tokens("other-group", 4, model="other"),
        ev("cool", "globex", code="tokens", timestamp=AT, properties={"tokens": 10, "model": "m"}),
    )
    # WHEN one batch runs
    url = queue_url("IngestQueue")
    failed = run_batch(worker, url, receive_batch(url, 10))
    # THEN only that write's three messages go back to the queue (nothing parked); the other customer's
    # write counted
    assert len(failed) == 3
    assert _event(read, "hot")["status"] == "accepted"
    assert _sum() == 0 and _sum("globex") == 10
    # AND once DynamoDB recovers, the retry counts them
    cure()
    process()
    assert _sum() == 7
    assert _outcome_totals(read) == {
        "accepted": 4,
        "duplicate": 0,
        "conflict": 0,
        "replay": 0,
        "failed": 0,
        "over_limit": 0,
    }


def test_redriven_messages_of_a_cell_poisoned_before_the_rule_count_and_the_offender_is_parked(
    catalog: Any, worker: Any, process: Any, read: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.domain import ingest as ingest_rules
    from neruba.logic.ingest import worker as ingest_worker
    from tests.support.queues import receive_batch, run_batch

    # GIVEN a batch written by a worker without the number rule: every event put `accepted`, then the
    # cell's count failed (here: the worker died), so all its messages come back
    _enqueue(*[_tokens(f"v{i}", 1) for i in range(3)], _tokens("poison", "1e400"))
    with monkeypatch.context() as old_code:
        old_code.setattr(ingest_worker, "property_number_problems", lambda properties: [])
        old_code.setattr(ingest_rules, "number_problem", lambda value: None)
        old_code.setattr(
            ingest_worker.IngestBatch, "finish", lambda self: (_ for _ in ()).throw(SystemExit())
        )
        url = queue_url("IngestQueue")
        run_batch(worker, url, receive_batch(url, 10))
    assert _event(read, "poison")["status"] == "accepted"
    # WHEN the messages are delivered again to the current worker (a redrive does the same), after the
    # visibility timeout, when the killed batch's hold has passed
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    process()
    # THEN the neighbours count and the offender is parked with its reason: nothing reads `accepted`
    # without being counted
    poison = _event(read, "poison")
    assert (poison["status"], poison["reason"]) == ("failed", "number_out_of_range")
    assert _sum() == 3
    assert _dlq_depth() == 0


def test_storable_numbers_with_many_trailing_zeros_read_back(send: Any, process: Any, read: Any) -> None:
    # GIVEN storable values written as more than 38 plain digits (1E+40 has one significant digit)
    body = send(_tokens("big-1", "1E+40"), _tokens("big-2", "1" + "0" * 60))
    assert body["rejected"] == 0, body
    process()
    # WHEN the usage and the events are read back
    status, usage = read(
        "/v1/customers/acme/usage",
        query={"meter": "tokens", "from": AT, "to": HOUR.isoformat(), "granularity": "hour"},
        path_parameters={"customer_id": "acme"},
    )
    # THEN they read exactly (no 500 from a deserializer limited to 38 digits of text)
    assert status == 200, usage
    assert Decimal(usage["data"][0]["quantity"]) == Decimal("1E+40") + Decimal("1E+60")
    assert _event(read, "big-1")["status"] == "accepted"


# ------------------------------------------------------------------------------------------ read back
def _usage_status(read: Callable[..., tuple[int, Any]]) -> tuple[int, Any]:
    return read(  # type: ignore[no-any-return]
        "/v1/customers/acme/usage",
        query={
            "meter": "tokens",
            "from": (HOUR - timedelta(days=1)).isoformat(),
            "to": (HOUR + timedelta(hours=2)).isoformat(),
            "granularity": "period",
        },
        path_parameters={"customer_id": "acme"},
    )


@pytest.mark.parametrize("value", [10**38, "1" + "0" * 38, "2" + "0" * 42])
def test_a_sum_written_out_in_full_reads_back_and_the_cell_keeps_counting(
    send: Any, process: Any, read: Any, value: Any
) -> None:
    # GIVEN a storable number whose digits, written out, are more than 38 (trailing zeros do not count;
    # DynamoDB returns such numbers written out in full)
    send(_tokens("big", value))
    process()
    # THEN the usage of that meter still reads (no decimal.Rounded from the reader: it answered 500)
    status, body = _usage_status(read)
    assert status == 200, body
    # AND the cell keeps counting exactly, past 38 significant digits
    send(_tokens("one", 1), _tokens("zero", 0))
    process()
    assert _event(read, "one")["status"] == _event(read, "zero")["status"] == "accepted"
    assert _sum() == _exact(value, 1)
    assert _usage_status(read)[0] == 200


@pytest.mark.parametrize("text", ["1_000", " 12 ", "\u0661\u0662", "\uff11\uff12", "0x10", "NaN", "Infinity"])
def test_only_plain_ascii_numeric_text_is_a_number(send: Any, text: str) -> None:
    # GIVEN text that Python's Decimal would read as a number but a person would not (or not as that one)
    body = send(_tokens("odd", text), _tokens("fine", "12.5"))
    # THEN the event is refused at the API as not a number; its neighbour is queued
    by_tx = {e["transaction_id"]: e for e in body["events"]}
    assert by_tx["odd"]["error"]["code"] == "invalid_property", by_tx["odd"]
    assert by_tx["odd"]["error"]["param"] == "events.0.properties.tokens"
    assert by_tx["fine"]["status"] == "queued"


def test_a_weighted_sum_figure_dynamodb_could_not_store_parks_only_its_event(
    catalog: Any, send: Any, process: Any, read: Any
) -> None:
    from neruba.dal.catalog import CatalogRepository
    from neruba.models.catalog import Meter

    CatalogRepository(get_settings().catalog_table).create_meter(
        Meter(code="level", name="Level", aggregation="weighted_sum", field="d")
    )
    early = (HOUR - timedelta(hours=1)).isoformat()
    odd = (HOUR - timedelta(hours=1) + timedelta(seconds=307, microseconds=123457)).isoformat()
    # GIVEN one batch: a 38-digit change at 307.123457 s into the hour (change x seconds needs 45 digits)
    # and two small changes in the same cell
    send(
        ev("w-big", code="level", timestamp=odd, properties={"d": BIG}),
        ev("w-1", code="level", timestamp=early, properties={"d": 1}),
        ev("w-2", code="level", timestamp=odd, properties={"d": 2}),
    )
    # WHEN the worker runs
    process()
    # THEN only the change whose own weighted figure cannot be stored is parked, with that reason
    big = _event(read, "w-big")
    assert (big["status"], big["reason"]) == ("failed", "aggregate_overflow")
    (cell,) = UsageRepository(get_settings().usage_table).aggregates("acme", "level", "0000", "9999")
    assert (cell.usage.count, cell.usage.total, cell.usage.weighted) == (2, 3, Decimal("614.246914"))
    assert _dlq_depth() == 0
