"""``dal.dynamo.batch_get``, the one BatchGetItem loop, on moto: requests of at most 100 keys, unprocessed
keys asked again until served, and a table that keeps throttling ending in a retryable error after a
bounded number of requests, for the helper and for every repository that reads through it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from neruba import bootstrap
from neruba.dal.clients import client
from neruba.dal.dynamo import BatchReadThrottledError, batch_get, is_transient, to_item
from neruba.settings import get_settings


def _key(n: int) -> dict[str, Any]:
    return to_item({"pk": f"BG#{n:03d}", "sk": "#"})


@pytest.fixture
def table(aws: dict[str, str]) -> str:
    name = get_settings().ops_table
    for n in range(250):
        client("dynamodb").put_item(TableName=name, Item=to_item({"pk": f"BG#{n:03d}", "sk": "#", "n": n}))
    return name


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses taken (recorded, not slept)."""
    taken: list[float] = []
    monkeypatch.setattr(time, "sleep", taken.append)
    return taken


def test_unprocessed_keys_are_asked_again_until_served(
    table: str, pauses: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a table that serves only half of the keys it is asked for the first time, the rest unprocessed
    dynamodb = client("dynamodb")
    real = dynamodb.batch_get_item
    requests: list[dict[str, Any]] = []
    asked: set[str] = set()

    def half_at_first(RequestItems: dict[str, Any]) -> Any:
        request = RequestItems[table]
        requests.append(request)
        names = [k["pk"]["S"] for k in request["Keys"]]
        if asked.issuperset(names):
            return real(RequestItems=RequestItems)
        asked.update(names)
        half = len(request["Keys"]) // 2
        response = real(RequestItems={table: {**request, "Keys": request["Keys"][:half]}})
        response["UnprocessedKeys"] = {table: {**request, "Keys": request["Keys"][half:]}}
        return response

    monkeypatch.setattr(dynamodb, "batch_get_item", half_at_first)
    # WHEN 300 keys are read: 250 stored, 50 missing, and one stored key asked twice
    keys = [_key(n) for n in range(300)] + [_key(7)]
    found = batch_get(table, keys, projection="pk, n")
    # THEN each stored item comes back once (projected), the missing ones are left out
    assert sorted(int(i["n"]) for i in found) == list(range(250))
    assert all(set(i) == {"pk", "n"} for i in found)
    # AND no request held more than 100 keys; each batch's unprocessed half was asked again, consistently
    assert [len(r["Keys"]) for r in requests] == [100, 50, 100, 50, 100, 50]
    assert all(r["ConsistentRead"] is True and r["ProjectionExpression"] == "pk, n" for r in requests)
    assert requests[1]["Keys"] == requests[0]["Keys"][50:]
    # AND a pause came before each repeated request
    assert pauses == [0.05, 0.05, 0.05]


def test_an_eventually_consistent_read_is_asked_for_when_wanted(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb = client("dynamodb")
    real = dynamodb.batch_get_item
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(
        dynamodb, "batch_get_item", lambda **kw: seen.append(kw["RequestItems"][table]) or real(**kw)
    )
    found = batch_get(table, [_key(1), _key(2)], consistent=False)
    assert sorted(int(i["n"]) for i in found) == [1, 2]
    assert [r["ConsistentRead"] for r in seen] == [False] and "ProjectionExpression" not in seen[0]


def _throttle_everything(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every BatchGetItem answers all its keys unprocessed; the number of requests is counted, and a
    loop without bound is stopped (and fails the test) at 50."""
    requests: list[int] = []

    def throttled(RequestItems: dict[str, Any]) -> dict[str, Any]:
        requests.append(sum(len(r["Keys"]) for r in RequestItems.values()))
        assert len(requests) < 50, "unprocessed keys asked again without end"
        return {"Responses": {name: [] for name in RequestItems}, "UnprocessedKeys": RequestItems}

    monkeypatch.setattr(client("dynamodb"), "batch_get_item", throttled)
    return requests


def test_a_table_that_keeps_throttling_raises_a_retryable_error(
    table: str, pauses: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a table that leaves every key unprocessed, every time
    requests = _throttle_everything(monkeypatch)
    # WHEN keys are read from it
    with pytest.raises(BatchReadThrottledError, match="throttled") as caught:
        batch_get(table, [_key(1), _key(2)])
    # THEN 8 requests were made, with growing pauses between them and none after the last
    assert requests == [2] * 8
    assert pauses == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    # AND the error is one a queue worker hands back for a retry (never parks the input as refused)
    assert is_transient(caught.value)


def _grant_listed(aws: dict[str, str]) -> None:
    """A grant the by-customer index lists (its item is then read by BatchGetItem)."""
    item = {"pk": "GRANT#g1", "sk": "#", "gsi1pk": "GRT#acme", "gsi1sk": "2026-01-01"}
    client("dynamodb").put_item(TableName=get_settings().ledger_table, Item=to_item(item))


_MOMENT = datetime(2026, 1, 1, tzinfo=UTC)
READERS: dict[str, tuple[Callable[[dict[str, str]], None] | None, Callable[[], object]]] = {
    "usage.get_events": (None, lambda: bootstrap.usage().get_events([("acme", "t1")])),
    "ledger.grants": (_grant_listed, lambda: bootstrap.ledger().grants("acme", None)),
    "plans.subscriptions_by_id": (None, lambda: bootstrap.plans().subscriptions_by_id(["s1"])),
    "catalog.lookup": (None, lambda: bootstrap.catalog().lookup(["acme"], ["api_calls"])),
    "limits.counters": (
        None,
        lambda: bootstrap.limits().counters([("acme", "api_calls", _MOMENT, _MOMENT)]),
    ),
    "ops.applied_migrations": (None, lambda: bootstrap.ops().applied_migrations([1, 2])),
    "pending.holding": (
        None,
        lambda: bootstrap.usage().pending.holding([("acme", "api_calls", "2026-01-01", "c", "b1", "0000")]),
    ),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_batch_reader_stops_on_a_table_that_keeps_throttling(
    aws: dict[str, str], pauses: list[float], monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    given, read = READERS[reader]
    if given:
        given(aws)
    # GIVEN a table that leaves every key unprocessed, every time
    requests = _throttle_everything(monkeypatch)
    # WHEN the repository reads through BatchGetItem THEN it gives up after 8 requests, retryably
    with pytest.raises(BatchReadThrottledError):
        read()
    assert len(requests) == 8 and len(pauses) == 7
