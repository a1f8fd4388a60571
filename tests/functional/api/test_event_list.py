"""``GET /v1/events``: a customer's counted events, paged by cursor, read from what counting stores.

These tests go through the API (and the repository method behind it) only, never through stored keys, so
they hold whatever layout the usage table's counting items take: each counted event comes exactly once
across the pages, in the documented order (hour of the timestamp, then meter), whatever the page size and
however the events were split into batches and cells.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.api import api_event, call
from tests.support.aws import queue_url
from tests.support.queues import drain

NOW = datetime.now(UTC)
# three whole hours, two days back (inside the 35-day ingest window)
H0 = (NOW - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
H1, H2, H3 = H0 + timedelta(hours=1), H0 + timedelta(hours=2), H0 + timedelta(hours=3)


def _at(moment: datetime) -> str:
    return moment.isoformat()


@pytest.fixture
def send(catalog: Any) -> Callable[..., dict[str, Any]]:
    from functions.ingest_api.app import lambda_handler

    def _send(*events: dict[str, Any]) -> dict[str, Any]:
        status, body, _ = call(lambda_handler, api_event("POST", "/v1/events", body={"events": list(events)}))
        assert status in (202, 400), body
        return body  # type: ignore[no-any-return]

    return _send


@pytest.fixture
def process() -> Callable[..., int]:
    from functions.ingest_worker.app import lambda_handler

    return lambda batch_size=100: drain(lambda_handler, queue_url("IngestQueue"), batch_size=batch_size)


def _list(query: dict[str, str], scopes: str = "read") -> tuple[int, Any]:
    from functions.read_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event("GET", "/v1/events", query=query, scopes=scopes))
    return status, body


def _walk(query: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of the list, in order."""
    events: list[dict[str, Any]] = []
    pages = 0
    while True:
        status, page = _list(query)
        assert status == 200, page
        assert page["object"] == "list" and len(page["data"]) <= int(query.get("limit", "20"))
        events += page["data"]
        pages += 1
        assert pages < 500
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return events
        assert page["next_cursor"] and page["data"], page
        query = {**query, "starting_after": page["next_cursor"]}


def _ev(
    tx: str, at: datetime, code: str = "api_calls", customer: str = "acme", **props: Any
) -> dict[str, Any]:
    return {
        "transaction_id": tx,
        "customer_id": customer,
        "code": code,
        "timestamp": _at(at),
        "properties": props,
    }


def _hour(event: dict[str, Any]) -> str:
    return datetime.fromisoformat(event["timestamp"]).astimezone(UTC).strftime("%Y-%m-%dT%H")


@pytest.fixture
def spread(send: Callable[..., Any], process: Callable[..., int]) -> dict[str, list[str]]:
    """acme's events over three hours on two meters (tokens in two groups), counted in batches of 4 so
    each cell holds several contributions; globex's events in the same hours; acme events outside."""
    expected: dict[str, list[str]] = {"api_calls": [], "tokens": []}
    events = []
    for h, hour in enumerate((H0, H1, H2)):
        for i in range(7):
            tx = f"a-{h}-{i:02d}"
            events.append(_ev(tx, hour + timedelta(minutes=5 * i + 1)))
            expected["api_calls"].append(tx)
        for i in range(5):
            tx = f"t-{h}-{i:02d}"
            events.append(
                _ev(
                    tx,
                    hour + timedelta(minutes=7 * i + 2),
                    "tokens",
                    tokens=i + 1,
                    model="big" if i % 2 else "small",
                )
            )
            expected["tokens"].append(tx)
        events.append(_ev(f"g-{h}", hour + timedelta(minutes=3), customer="globex"))
    events.append(_ev("a-before", H0 - timedelta(minutes=30)))
    events.append(_ev("a-after", H3 + timedelta(minutes=30)))
    send(*events)
    process(batch_size=4)
    return expected


def _range(start: datetime = H0, end: datetime = H3) -> dict[str, str]:
    return {"customer_id": "acme", "from": _at(start), "to": _at(end)}


def test_every_counted_event_once_in_hour_then_meter_order_whatever_the_page_size(
    spread: dict[str, list[str]],
) -> None:
    everything = sorted(spread["api_calls"] + spread["tokens"])
    orders = {}
    for limit in ("1", "2", "3", "7", "20", "100"):
        # WHEN the customer's events of the three hours are read page by page
        events = _walk({**_range(), "limit": limit})
        ids = [e["transaction_id"] for e in events]
        # THEN each counted event of acme in the range comes exactly once (no other customer, no event
        # outside the range)
        assert len(ids) == len(set(ids)) and sorted(ids) == everything, limit
        # AND in order of the hour of its timestamp, then meter code
        keys = [(_hour(e), e["code"]) for e in events]
        assert keys == sorted(keys), limit
        orders[limit] = ids
    # AND the order does not depend on the page size
    assert len({tuple(order) for order in orders.values()}) == 1


def test_each_event_is_shown_as_the_event_read_shows_it(spread: dict[str, list[str]]) -> None:
    from functions.read_api.app import lambda_handler

    events = _walk({**_range(), "meter": "tokens", "limit": "100"})
    assert events
    for event in events[:3]:
        status, single, _ = call(
            lambda_handler,
            api_event(
                "GET",
                f"/v1/events/{event['transaction_id']}",
                query={"customer_id": "acme"},
                path_parameters={"transaction_id": event["transaction_id"]},
                scopes="read",
            ),
        )
        assert status == 200 and single == event
        assert event["status"] == "accepted" and event["customer_id"] == "acme"


def test_meter_filter(spread: dict[str, list[str]]) -> None:
    for meter, ids in spread.items():
        # WHEN one meter is named THEN only its events, each once, across pages
        got = [e["transaction_id"] for e in _walk({**_range(), "meter": meter, "limit": "3"})]
        assert sorted(got) == sorted(ids) and len(got) == len(set(got))
        assert [e for e in got if not e.startswith("a-" if meter == "api_calls" else "t-")] == []


def test_from_is_inclusive_and_to_exclusive_to_the_microsecond(
    send: Callable[..., Any], process: Callable[..., int]
) -> None:
    edge = H1 + timedelta(minutes=20)
    send(
        _ev("at-from", edge),
        _ev("just-before-from", edge - timedelta(microseconds=1)),
        _ev("at-to", edge + timedelta(minutes=10)),
        _ev("just-before-to", edge + timedelta(minutes=10) - timedelta(microseconds=1)),
        _ev("same-hour-later", edge + timedelta(minutes=30)),
    )
    process()
    for limit in ("1", "20"):
        # WHEN [edge, edge + 10 min) is read (both bounds inside one hour)
        got = [
            e["transaction_id"] for e in _walk({**_range(edge, edge + timedelta(minutes=10)), "limit": limit})
        ]
        # THEN the event at from is in, the event at to is out, and nothing else of the hour is listed
        assert sorted(got) == ["at-from", "just-before-to"]
    # an offset other than UTC names the same instants
    plus_two = timezone_shifted(edge, 2)
    got = [e["transaction_id"] for e in _walk(_range(plus_two, plus_two + timedelta(minutes=10)))]
    assert sorted(got) == ["at-from", "just-before-to"]
    # a range with no counted event is an empty last page
    assert _list(_range(H2 + timedelta(days=1), H2 + timedelta(days=2)))[1]["data"] == []


def timezone_shifted(moment: datetime, hours: int) -> datetime:
    from datetime import timezone

    return moment.astimezone(timezone(timedelta(hours=hours)))


def test_outcomes_which_events_are_listed(
    send: Callable[..., Any], process: Callable[..., int], catalog: Any
) -> None:
    at = H1 + timedelta(minutes=5)
    # GIVEN an event sent three times (two duplicates), one sent again with another payload (a conflict),
    # and one refused at the API (unknown meter)
    send(_ev("dup", at), _ev("conf", at, code="api_calls"))
    process()
    send(_ev("dup", at), _ev("dup", at))
    send(_ev("conf", at + timedelta(minutes=1)))
    body = send(_ev("refused", at, code="no_such_meter"), _ev("ok", at))
    assert body["rejected"] == 1
    process()
    # WHEN the hour is read
    events = {e["transaction_id"]: e for e in _walk(_range(H1, H2))}
    # THEN counted events are listed once each, with every copy's outcome; refused events are not
    assert sorted(events) == ["conf", "dup", "ok"]
    assert events["dup"]["copies"] == {"duplicate": 2}
    assert events["conf"]["copies"] == {"conflict": 1}
    assert [o["outcome"] for o in events["dup"]["outcomes"]] == ["accepted", "duplicate", "duplicate"]


def test_failed_events_are_not_listed_and_a_replay_is(
    send: Callable[..., Any], process: Callable[..., int], catalog: Any
) -> None:
    from neruba.dal.queue import send_batch
    from neruba.logic.ingest.api import queue_message
    from neruba.models.events import UsageEventIn

    at = H2 + timedelta(minutes=9)
    # GIVEN an event naming a meter the worker does not know, queued by other means than the API (which
    # would refuse it): the worker parks it failed
    parked = _ev("parked", at, code="not_a_meter_yet")
    message = queue_message(UsageEventIn.model_validate(parked), "direct", 0, datetime.now(UTC))
    assert send_batch(queue_url("IngestQueue"), [("0", message)]) == []
    send(_ev("counted", at))
    process()
    # THEN only the counted one is listed
    assert [e["transaction_id"] for e in _walk(_range(H2, H3))] == ["counted"]
    # WHEN the meter is created and the event sent again, it ends replay and is listed
    from neruba.models.catalog import Meter

    catalog.create_meter(Meter(code="not_a_meter_yet", name="Later", aggregation="count"))
    from neruba import bootstrap

    bootstrap.reset()  # the API's catalog cache
    send(parked)
    process()
    events = {e["transaction_id"]: e for e in _walk(_range(H2, H3))}
    assert sorted(events) == ["counted", "parked"]
    assert events["parked"]["outcomes"][-1]["outcome"] == "replay"


def test_a_cursor_holds_across_hours_and_cells_while_new_events_arrive(
    spread: dict[str, list[str]], send: Callable[..., Any], process: Callable[..., int]
) -> None:
    # GIVEN the first pages were read
    first = _list({**_range(), "limit": "5"})[1]
    second = _list({**_range(), "limit": "5", "starting_after": first["next_cursor"]})[1]
    seen = [e["transaction_id"] for e in first["data"] + second["data"]]
    # WHEN events arrive in the last hour meanwhile, and the list is read on from the cursor
    send(*[_ev(f"late-{i}", H2 + timedelta(minutes=50 + i)) for i in range(3)])
    process(batch_size=2)
    rest = [
        e["transaction_id"]
        for e in _walk({**_range(), "limit": "4", "starting_after": second["next_cursor"]})
    ]
    # THEN nothing already read comes again, nothing is skipped, and the new events (later in the order)
    # are there
    everything = spread["api_calls"] + spread["tokens"] + [f"late-{i}" for i in range(3)]
    assert not set(seen) & set(rest)
    assert sorted(seen + rest) == sorted(everything)


def _edited(cursor: str, old: str, new: str) -> str:
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return new if value == old else value

    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return base64.urlsafe_b64encode(json.dumps(walk(data)).encode()).decode().rstrip("=")


def test_bad_queries_and_cursors(spread: dict[str, list[str]]) -> None:
    page = _list({**_range(), "limit": "2"})[1]
    cursor = page["next_cursor"]
    meter_cursor = _list({**_range(), "meter": "tokens", "limit": "2"})[1]["next_cursor"]
    cases = [
        ({"from": _at(H0), "to": _at(H3)}, 422, "validation_error"),  # customer_id is required
        ({"customer_id": "acme", "to": _at(H3)}, 422, "validation_error"),
        ({**_range(), "from": "2026-01-01T00:00:00"}, 400, "invalid_time_range"),
        (_range(H3, H0), 400, "invalid_time_range"),
        (_range(H0, H0), 400, "invalid_time_range"),
        (_range(H0 - timedelta(days=31), H0 + timedelta(microseconds=1)), 400, "time_range_too_long"),
        ({**_range(), "limit": "101"}, 422, "validation_error"),
        ({**_range(), "meters": "tokens"}, 400, "unknown_parameter"),
        ({**_range(), "customer_id": "nobody"}, 404, "customer_not_found"),
        ({**_range(), "meter": "nothing"}, 404, "meter_not_found"),
        ({**_range(), "starting_after": "garbage"}, 400, "invalid_cursor"),
        # a cursor reused with another meter, customer or bound, or without the meter it was made with
        ({**_range(), "meter": "api_calls", "starting_after": cursor}, 400, "invalid_cursor"),
        ({**_range(), "starting_after": meter_cursor}, 400, "invalid_cursor"),
        ({**_range(), "customer_id": "globex", "starting_after": cursor}, 400, "invalid_cursor"),
        ({**_range(H0 + timedelta(seconds=1)), "starting_after": cursor}, 400, "invalid_cursor"),
        ({**_range(H0, H3 + timedelta(hours=1)), "starting_after": cursor}, 400, "invalid_cursor"),
        # a cursor edited (another meter in its position)
        ({**_range(), "starting_after": _edited(cursor, "api_calls", "tokens")}, 400, "invalid_cursor"),
    ]
    for query, status, code in cases:
        got, body = _list(query)
        assert (got, body.get("error", {}).get("code")) == (status, code), (query, body)
    # the cursor still reads its own next page, with another limit too
    got, body = _list({**_range(), "limit": "5", "starting_after": cursor})
    assert got == 200 and body["data"]
    got, body = _list(_range(), scopes="ingest")
    assert (got, body["error"]["code"]) == (403, "insufficient_scope")


def test_repository_reads_a_page_with_few_requests(
    spread: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented cost of a page: one Query per meter, usage shard and day read (a meter's days are
    read one after the other, only as far as the page needs), one Query per meter of its pending shard
    (pending days not folded yet) and one BatchGetItem per 100 events (limit + 1 are read)."""
    from neruba import bootstrap
    from neruba.dal import clients

    dynamodb = clients.client("dynamodb")
    calls: list[str] = []
    for name in ("query", "batch_get_item"):
        original = getattr(dynamodb, name)
        monkeypatch.setattr(dynamodb, name, lambda _o=original, _n=name, **kw: calls.append(_n) or _o(**kw))
    usage = bootstrap.usage()
    days = len({H0.date(), (H3 - timedelta(microseconds=1)).date()})  # the hours may cross midnight
    page = usage.list_events("acme", ["api_calls", "tokens"], H0, H3, 10, None)
    assert len(page.events) == 10 and page.next_cursor
    # each meter's first day is read in every shard; a later day only when the page gets that far
    assert 2 * (usage.shards + 1) <= calls.count("query") <= 2 * (usage.shards * days + 1)
    assert calls.count("batch_get_item") == 1
    calls.clear()
    page = usage.list_events("acme", ["tokens"], H0, H3, 100, None)
    assert len(page.events) == len(spread["tokens"]) and page.next_cursor is None
    # the whole range of one meter: every day of it in every shard, and one BatchGetItem for 15 events
    assert calls.count("query") == usage.shards * days + 1 and calls.count("batch_get_item") == 1


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"),  # the calendar's first day
        ("9999-12-31T00:00:00Z", "9999-12-31T23:59:59Z"),  # its last day
    ],
)
def test_a_range_at_the_calendars_edges_lists_nothing(catalog: Any, start: str, end: str) -> None:
    # WHEN the list is asked for a window on the first or last day the calendar holds
    status, body = _list({"customer_id": "acme", "from": start, "to": end})
    # THEN an empty page, never a 500 (a year under 1000 written unpadded, a day past 9999-12-31)
    assert (status, body["data"], body["has_more"]) == (200, [], False), body
