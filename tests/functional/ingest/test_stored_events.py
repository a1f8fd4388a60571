"""The stored shape of raw events: what the worker writes stays as it was, and items written by earlier
versions (no history list, no counters, history entries with empty fields) read as they always did."""

from __future__ import annotations

from typing import Any

import boto3

from neruba.dal.usage import UsageRepository
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.functional.ingest.conftest import event_of as _event
from tests.support.usage import set_cell


def _raw(customer: str, tx: str) -> dict[str, Any]:
    """The item as DynamoDB holds it (attribute types included)."""
    key = {"pk": {"S": f"EVT#{customer}#{tx}"}, "sk": {"S": "#"}}
    item = boto3.client("dynamodb").get_item(TableName=get_settings().usage_table, Key=key)["Item"]
    return dict(item)


def _shape(value: dict[str, Any]) -> Any:
    """Attribute names and types, with a list's or map's members shaped alike."""
    ((kind, inner),) = value.items()
    if kind == "L":
        return ["L", [_shape(v) for v in inner]]
    if kind == "M":
        return ["M", {k: _shape(v) for k, v in sorted(inner.items())}]
    return kind


ENTRY = {"o": "S", "rid": "S", "cid": "S", "t": "S", "a": "S"}
EVENT = {
    "pk": "S",
    "sk": "S",
    "c": "S",
    "tx": "S",
    "m": "S",
    "ts": "S",
    "h": "S",
    "p": "S",
    "fp": "S",
    "st": "S",
    "bk": "S",
    "cid": "S",
    "rid": "S",
    "rt": "S",
    "at": "S",
    "oa": "S",
}


def test_the_worker_writes_events_in_their_stored_shape(
    send: Any, enqueue: Any, process: Any, catalog: Any, read: Any
) -> None:
    # GIVEN an event with a duplicate and a conflicting copy, a late one with a client timestamp, and
    # an event for an unknown customer (queued past the API's check, as a redrive would bring it) that is
    # replayed once the customer exists
    send(ev("t1", properties={"n": 1}))
    send(ev("t1", properties={"n": 1}))
    send(ev("t1", properties={"n": 2}))
    enqueue(ev("lost", customer="initech"))
    process()
    from neruba.models.catalog import Customer

    catalog.create_customer(Customer(external_id="initech", name="Initech", currency="USD"))
    send(ev("lost", customer="initech"))
    process()
    # WHEN the stored items are read as DynamoDB holds them
    counted, replayed = _raw("acme", "t1"), _raw("initech", "lost")
    # THEN each attribute has its name and type as before
    conflict = {**ENTRY, "p": "S"}
    assert {k: _shape(v) for k, v in counted.items()} == {
        **EVENT,
        "hist": ["L", [["M", dict(sorted(ENTRY.items()))], ["M", dict(sorted(conflict.items()))]]],
        "n_duplicate": "N",
        "n_conflict": "N",
    }
    failed = {**ENTRY, "r": "S"}
    assert {k: _shape(v) for k, v in replayed.items()} == {
        **EVENT,
        "o0": "S",
        "hist": ["L", [["M", dict(sorted(failed.items()))]]],
    }
    # AND the values are the ones the event view reports
    assert counted["pk"] == {"S": "EVT#acme#t1"} and counted["sk"] == {"S": "#"}
    assert (counted["st"], counted["m"], counted["p"]) == (
        {"S": "accepted"},
        {"S": "api_calls"},
        {"S": '{"n":1}'},
    )
    assert [e["M"]["o"]["S"] for e in counted["hist"]["L"]] == ["duplicate", "conflict"]
    assert (counted["n_duplicate"], counted["n_conflict"]) == ({"N": "1"}, {"N": "1"})
    assert replayed["o0"] == {"S": "replay"}
    assert replayed["hist"]["L"][0]["M"]["o"] == {"S": "failed"}
    assert replayed["hist"]["L"][0]["M"]["r"] == {"S": "unknown_customer"}
    view = _event(read, "t1")
    assert counted["rid"] == {"S": view["outcomes"][0]["request_id"]}


def test_a_parked_event_stores_its_reason(catalog: Any, enqueue: Any, process: Any) -> None:
    # GIVEN an event whose meter does not exist, queued past the API's check (as a redrive would bring it)
    enqueue(ev("no-meter", code="nope"))
    # WHEN the worker parks it
    process()
    # THEN the item holds the status, the reason and its message
    item = _raw("acme", "no-meter")
    assert {k: _shape(v) for k, v in item.items()} == {
        **EVENT,
        "st": "S",
        "reason": "S",
        "reason_msg": "S",
        "hist": ["L", []],
    }
    assert (item["st"], item["reason"]) == ({"S": "failed"}, {"S": "unknown_meter"})


def test_events_stored_by_earlier_versions_read_as_before(catalog: Any, read: Any) -> None:
    # GIVEN items in older shapes: one without a history list or counters, and a replayed one whose
    # carried entry has empty fields and whose later entry has no time
    table, ddb = get_settings().usage_table, boto3.client("dynamodb")
    base = {
        "sk": {"S": "#"},
        "c": {"S": "acme"},
        "m": {"S": "api_calls"},
        "ts": {"S": "2026-01-05T10:00:00Z"},
        "h": {"S": "2026-01-05T10"},
        "p": {"S": '{"n":1}'},
        "st": {"S": "accepted"},
        "bk": {"S": "b0"},
        "rt": {"S": "2026-01-05T10:00:01Z"},
        "at": {"S": "2026-01-05T10:00:02Z"},
    }

    def put(tx: str, copy: str, **more: Any) -> None:
        ids = {"pk": {"S": f"EVT#acme#{tx}"}, "tx": {"S": tx}, "rid": {"S": copy}, "cid": {"S": f"{copy}:0"}}
        ddb.put_item(TableName=table, Item={**base, **ids, **more})

    put("old", "r1")
    carried = {"o": {"S": "failed"}, "rid": {"NULL": True}, "cid": {"NULL": True}, "t": {"NULL": True}}
    carried["r"] = {"NULL": True}
    later = {"o": {"S": "duplicate"}, "rid": {"S": "r3"}, "cid": {"S": "r3:0"}}
    history = {"L": [{"M": carried}, {"M": later}]}
    put("mixed", "r2", o0={"S": "replay"}, late={"BOOL": True}, hist=history, n_duplicate={"N": "1"})
    # WHEN they are read through the event view
    old, mixed = _event(read, "old"), _event(read, "mixed")
    # THEN they read as they always did
    assert old == {
        "object": "event",
        "transaction_id": "old",
        "customer_id": "acme",
        "code": "api_calls",
        "timestamp": "2026-01-05T10:00:00Z",
        "properties": {"n": 1},
        "status": "accepted",
        "reason": None,
        "reason_message": None,
        "late": False,
        "received_at": "2026-01-05T10:00:01Z",
        "outcomes": [
            {"outcome": "accepted", "request_id": "r1", "copy_id": "r1:0", "at": "2026-01-05T10:00:02Z"}
        ],
        "copies": {},
    }
    assert mixed["late"] is True and mixed["copies"] == {"duplicate": 1}
    assert mixed["outcomes"] == [
        {"outcome": "replay", "request_id": "r2", "copy_id": "r2:0", "at": "2026-01-05T10:00:02Z"},
        {"outcome": "failed", "request_id": None, "copy_id": None, "at": None},
        {"outcome": "duplicate", "request_id": "r3", "copy_id": "r3:0", "at": None},
    ]


def _cell_items(prefix: str) -> list[dict[str, Any]]:
    """Every stored item of a usage partition (``AGG#acme#{meter}``), low-level."""
    response = boto3.client("dynamodb").query(
        TableName=get_settings().usage_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": prefix}},
    )
    return list(response["Items"])


def test_contributions_keep_their_stored_shape_for_every_aggregation(
    send: Any, process: Any, catalog: Any
) -> None:
    # GIVEN events of each aggregation, two of them for a period already invoiced
    from datetime import UTC, datetime, timedelta

    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    catalog.set_billed_through("acme", hour)
    late = (hour - timedelta(hours=2)).isoformat()
    send(
        ev("c1", code="api_calls", timestamp=late),
        ev("s1", code="tokens", properties={"tokens": "2.5", "model": "m"}),
        ev("x1", code="storage_gb", properties={"gb": 7}),
        ev("u1", code="seats", properties={"user": "ann"}, timestamp=late),
        ev("l1", code="plan_level", properties={"level": 3}),
    )
    # WHEN the worker counts them
    process()
    # THEN each contribution (one per customer, meter and day of the batch, in the meter's usage
    # partition, sort key {day}!{batch}) holds its cells, keyed {HH}#{group}, under these names and types
    shapes, cells = {}, {}
    for meter in ("api_calls", "tokens", "storage_gb", "seats", "plan_level"):
        (item,) = _cell_items(f"AGG#acme#{meter}")
        assert item["sk"]["S"].partition("!")[0] == item["sk"]["S"][:10]
        ((cell, stored),) = item["cs"]["M"].items()
        cells[meter] = cell
        shapes[meter] = {k: _shape(v) for k, v in stored["M"].items()}
        assert {k: _shape(v) for k, v in item.items() if k != "cs"} == {
            "pk": "S",
            "sk": "S",
            "agg": "S",
            "at": "S",
        }
    common = {"tx": ["L", ["S"]], "n": "N"}
    assert shapes == {
        "api_calls": {**common, "late_n": "N"},
        "tokens": {**common, "s": "N"},
        "storage_gb": {**common, "mx": "N"},
        "seats": {**common, "u": "SS", "late_n": "N"},
        "plan_level": {**common, "lt": "S", "lv": "N"},
    }
    assert (
        cells["tokens"] == f"{hour:%H}#model=m" and cells["api_calls"] == f"{hour - timedelta(hours=2):%H}#"
    )
    (tokens,) = _cell_items("AGG#acme#tokens")
    stored = tokens["cs"]["M"][cells["tokens"]]["M"]
    assert (stored["n"], stored["s"], tokens["agg"]) == ({"N": "1"}, {"N": "2.5"}, {"S": "sum"})


def test_a_repaired_aggregate_keeps_its_stored_shape(send: Any, process: Any) -> None:
    # GIVEN a cell whose contribution drifted
    from datetime import UTC, datetime, timedelta

    from functions.sweeper.app import run_sweep

    send(*[ev(f"r{i}", code="tokens", properties={"tokens": 3, "model": "m"}) for i in range(2)])
    process()
    (cell,) = UsageRepository(get_settings().usage_table).aggregates("acme", "tokens", "0000", "9999")
    set_cell(cell, s={"N": "100"})
    # WHEN the sweep repairs it
    now = datetime.now(UTC)
    run_sweep(now - timedelta(minutes=5), now + timedelta(minutes=1), now=now + timedelta(minutes=20))
    # THEN the aggregate it writes holds the truth under the names and types it always had
    (aggregate,) = [i for i in _cell_items("AGG#acme#tokens") if "!" not in i["sk"]["S"]]
    assert {k: _shape(v) for k, v in aggregate.items()} == {
        "pk": "S",
        "sk": "S",
        "n": "N",
        "agg": "S",
        "s": "N",
        "updated_at": "S",
        "repaired": "BOOL",
        "fb": "SS",
    }
    assert (aggregate["n"], aggregate["s"], aggregate["repaired"]) == ({"N": "2"}, {"N": "6"}, {"BOOL": True})
    assert aggregate["fb"] == {"SS": [cell.sources[0][1].partition("!")[2]]}
