"""Group values holding the characters of the group key (``|``, ``=``) end to end: events POSTed to
/v1/events, counted by the real worker, read back on the upcoming invoice and the usage read. Each line's
group is the event's own values, priced by the filters its own values match, never by text that only
looks like another property inside a value; two groups whose joined text would be equal stay apart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.support.api import api_event, call

NOW = datetime.now(UTC).replace(microsecond=0)
START = (NOW - timedelta(days=3)).replace(minute=0, second=0)
CHARGE = {
    "meter_code": "gh",
    "model": "per_unit",
    "unit_price": "1",
    "filters": [{"values": {"h": ["x"]}, "unit_price": "10"}],
}
EVENTS = [  # (transaction, g, h): values that, joined as k=v|k=v, read as other groups
    ("t1", "b", "y|g=z"),
    ("t2", "q", "n|h=x"),
    ("t3", "a|h=b", "c"),
    ("t4", "a", "b|h=c"),
    ("t5", "w=v", "x"),
    ("t6", "%7C\\", "=|"),
]


def _publish(catalog: Any) -> None:
    from neruba.dal.plans import PlansRepository
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Meter, PlanCreate, SubscriptionCreate

    catalog.create_meter(Meter(code="gh", name="Grouped", aggregation="count", group_by=["g", "h"]))
    plans = PlansRepository(get_settings().catalog_table)
    body = {"code": "gh_plan", "name": "Grouped", "currency": "USD", "interval": "month", "charges": [CHARGE]}
    create_plan(plans, PlanCreate.model_validate(body))
    create_subscription(
        plans, SubscriptionCreate(customer_id="acme", plan_code="gh_plan", start_at=START), None, now=NOW
    )


def _upcoming_lines() -> list[dict[str, Any]]:
    from functions.read_api.app import lambda_handler

    path = "/v1/customers/acme/upcoming-invoice"
    status, body, _ = call(
        lambda_handler, api_event("GET", path, path_parameters={"customer_id": "acme"}, scopes="read")
    )
    assert status == 200, body
    (window,) = body["windows"]
    return [line for line in window["lines"] if line["kind"] == "usage"]


def test_each_line_holds_its_events_own_group_values(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    # GIVEN a meter grouped by g and h, $10 for h = x (a filter) and $1 by default
    _publish(catalog)
    at = (START + timedelta(hours=1, minutes=5)).isoformat()
    # WHEN one event per group is POSTed and counted
    send(*(ev(tx, code="gh", timestamp=at, properties={"g": g, "h": h}) for tx, g, h in EVENTS))
    process()
    # THEN one line per event, its group the event's own values, priced by those values alone
    lines = _upcoming_lines()
    by_group = {(line["group"]["g"], line["group"]["h"]): line for line in lines}
    assert sorted(by_group) == sorted((g, h) for _, g, h in EVENTS), [line["group"] for line in lines]
    assert all(set(line["group"]) == {"g", "h"} for line in lines)
    assert all(line["quantity"] == "1" for line in lines), lines
    # h = "n|h=x" is not x: the default $1; only h = "x" is priced by the filter
    amounts = {key: line["amount_minor"] for key, line in by_group.items()}
    assert amounts == {key: 1000 if key[1] == "x" else 100 for key in by_group}
    assert len({line["line_id"] for line in lines}) == len(EVENTS)


def test_usage_read_per_group_value_keeps_the_value_whole(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    from functions.read_api.app import lambda_handler

    # GIVEN the same events counted
    _publish(catalog)
    at = (START + timedelta(hours=1, minutes=5)).isoformat()
    send(*(ev(tx, code="gh", timestamp=at, properties={"g": g, "h": h}) for tx, g, h in EVENTS))
    process()
    # WHEN the usage is read per value of h
    query = {
        "meter": "gh",
        "from": START.isoformat(),
        "to": (START + timedelta(days=1)).isoformat(),
        "granularity": "day",
        "group_by": "h",
    }
    path, params = "/v1/customers/acme/usage", {"customer_id": "acme"}
    request = api_event("GET", path, query=query, path_parameters=params, scopes="read")
    status, body, _ = call(lambda_handler, request)
    assert status == 200, body
    # THEN each value of h is one row with its own count (x: t5 only)
    counts: dict[str, int] = {}
    for row in body["data"]:
        counts[row["group"]["h"]] = counts.get(row["group"]["h"], 0) + row["events"]
    assert counts == {"y|g=z": 1, "n|h=x": 1, "c": 1, "b|h=c": 1, "x": 1, "=|": 1}


def _old_group_key(group_by: list[str], properties: Any) -> str:
    """The key versions before this one wrote: values joined as they are."""
    return "|".join(f"{key}={properties.get(key, '')}" for key in group_by)


def test_usage_counted_under_an_earlier_key_is_neither_dropped_nor_counted_twice(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int], monkeypatch: Any
) -> None:
    from neruba import bootstrap
    from neruba.dal.catalog import CatalogCache
    from neruba.dal.usage import UsageRepository
    from neruba.domain.ingest import hour_bucket
    from neruba.logic.ingest import worker
    from neruba.logic.sweeps.usage import sweep_usage

    # GIVEN events with a bar in a group value counted by an earlier version (values joined as they are)
    _publish(catalog)
    at = START + timedelta(hours=1, minutes=5)
    with monkeypatch.context() as patch:
        patch.setattr(worker, "group_key", _old_group_key)
        send(
            *(ev(tx, code="gh", timestamp=at.isoformat(), properties={"g": g, "h": h}) for tx, g, h in EVENTS)
        )
        process()
    usage = UsageRepository(get_settings().usage_table)
    hour = hour_bucket(at)

    def counted() -> tuple[int, set[str]]:
        cells = usage.aggregates("acme", "gh", hour, hour)
        return sum(c.usage.count for c in cells), {c.group for c in cells}

    before = counted()
    assert before[0] == len(EVENTS)
    # WHEN the usage sweep rechecks those batches with this version's keys
    now = datetime.now(UTC)
    report = sweep_usage(
        usage,
        CatalogCache(bootstrap.catalog(), ttl_seconds=0).lookup,
        now - timedelta(hours=1),
        now + timedelta(hours=1),
        now=now + timedelta(minutes=30),
    )
    # THEN no event is counted again under its new key and no stored cell is emptied
    assert (report.uncounted_found, report.drift_found, report.failures) == (0, 0, []), report
    assert counted() == before


def test_an_event_counted_under_an_earlier_key_can_be_voided(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int], monkeypatch: Any
) -> None:
    from functions.admin_api.app import lambda_handler
    from neruba.dal.usage import UsageRepository
    from neruba.domain.ingest import hour_bucket
    from neruba.logic.ingest import worker

    # GIVEN g = "b", h = "y|g=z" counted by an earlier version, under the key "g=b|h=y|g=z"
    _publish(catalog)
    at = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2, minutes=-5)
    with monkeypatch.context() as patch:
        patch.setattr(worker, "group_key", _old_group_key)
        send(ev("t1", code="gh", timestamp=at.isoformat(), properties={"g": "b", "h": "y|g=z"}))
        process()
    usage = UsageRepository(get_settings().usage_table)
    hour = hour_bucket(at)
    assert {c.group: c.usage.count for c in usage.aggregates("acme", "gh", hour, hour)} == {"g=b|h=y|g=z": 1}
    # WHEN it is voided
    body = {"customer_id": "acme", "reason": "sent twice", "ticket": "FIN-1"}
    request = api_event(
        "POST",
        "/admin/events/t1/void",
        body=body,
        path_parameters={"transaction_id": "t1"},
        headers={"Idempotency-Key": "k1"},
        scopes="admin",
    )
    status, answer, _ = call(lambda_handler, request)
    # THEN the void is done and the cell it was counted in no longer counts it
    assert (status, answer.get("correction")) == (200, "completed"), answer
    assert sum(c.usage.count for c in usage.aggregates("acme", "gh", hour, hour)) == 0


def test_a_redelivered_event_an_earlier_version_counted_is_not_counted_again(
    catalog: Any, send: Callable[..., Any], worker: Any, monkeypatch: Any
) -> None:
    import boto3

    from neruba.dal.usage import UsageRepository
    from neruba.domain.ingest import hour_bucket
    from neruba.logic.ingest import worker as ingest_worker
    from neruba_tools.local.pollers import build_sqs_event
    from tests.support.aws import queue_url
    from tests.support.lambda_context import FakeContext
    from tests.support.queues import drain, receive_batch

    # GIVEN events counted by an earlier version whose messages were never deleted (killed after counting)
    _publish(catalog)
    at = START + timedelta(hours=1, minutes=5)
    send(*(ev(tx, code="gh", timestamp=at.isoformat(), properties={"g": g, "h": h}) for tx, g, h in EVENTS))
    url = queue_url("IngestQueue")
    messages = receive_batch(url, 100)
    with monkeypatch.context() as patch:
        patch.setattr(ingest_worker, "group_key", _old_group_key)
        worker(
            build_sqs_event(messages, queue_arn="arn:aws:sqs:us-east-1:123456789012:IngestQueue"),
            FakeContext(),
        )
    usage = UsageRepository(get_settings().usage_table)
    hour = hour_bucket(at)
    assert sum(c.usage.count for c in usage.aggregates("acme", "gh", hour, hour)) == len(EVENTS)
    # WHEN SQS delivers them again to this version in other batches, the earlier attempt's hold passed
    for message in messages:
        boto3.client("sqs").change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    drain(worker, url, batch_size=2)
    # THEN none is counted a second time
    assert sum(c.usage.count for c in usage.aggregates("acme", "gh", hour, hour)) == len(EVENTS)
