"""Voiding and amending accepted events (``POST /admin/events/{id}/void`` and ``/amend``): the usage of
every aggregation is recomputed from the surviving events exactly once, whatever is killed, repeated or
raced; history shows the void and the link between an amended event and its copy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.functional.ingest.conftest import ev, event_of
from tests.support.api import api_event, call

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
AT = (NOW + timedelta(minutes=5)).isoformat()


@pytest.fixture
def admin(catalog: Any) -> Callable[..., tuple[int, Any]]:
    """POST to an admin event route; returns (status, body)."""
    from functions.admin_api.app import lambda_handler

    def _post(action: str, tx: str, body: dict[str, Any], key: str | None = "k1") -> tuple[int, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        event = api_event(
            "POST",
            f"/admin/events/{tx}/{action}",
            body=body,
            path_parameters={"transaction_id": tx},
            headers=headers,
            scopes="admin",
        )
        status, answer, _ = call(lambda_handler, event)
        return status, answer

    return _post


def body(customer: str = "acme", **extra: Any) -> dict[str, Any]:
    return {"customer_id": customer, "reason": "sent twice by the client", "ticket": "FIN-12", **extra}


def usage(meter: str, customer: str = "acme") -> dict[str, tuple[int, Decimal]]:
    """Per (hour, group) cell of the meter: (events, quantity) as billing reads them."""
    from neruba import bootstrap
    from neruba.dal.plans import PlansRepository
    from neruba.domain.usage import combine
    from neruba.settings import get_settings

    aggregation = PlansRepository(get_settings().catalog_table).get_meter(meter).aggregation
    hour = NOW.strftime("%Y-%m-%dT%H")
    first = (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H")
    last = (NOW + timedelta(days=2)).strftime("%Y-%m-%dT%H")
    assert hour
    cells = bootstrap.usage().aggregates(customer, meter, first, last)
    return {
        f"{c.hour}#{c.group}": (c.usage.count, combine(aggregation, [c.usage]))
        for c in cells
        if c.usage.count
    }


def total(meter: str, customer: str = "acme") -> tuple[int, Decimal]:
    cells = usage(meter, customer)
    assert len(cells) <= 1, cells
    return next(iter(cells.values()), (0, Decimal(0)))


def test_a_void_takes_the_event_out_of_its_count_once_and_shows_on_the_event(
    send: Any, process: Any, read: Any, admin: Any
) -> None:
    send(*(ev(f"c{i}", timestamp=AT) for i in range(3)))
    process()
    assert total("api_calls") == (3, Decimal(3))

    status, answer = admin("void", "c1", body())

    assert status == 200, answer
    assert (answer["status"], answer["correction"]) == ("voided", "completed")
    assert answer["void"]["kind"] == "void" and answer["void"]["ticket"] == "FIN-12"
    assert total("api_calls") == (2, Decimal(2))
    stored = event_of(read, "c1")
    assert stored["status"] == "voided" and stored["void"]["reason"] == "sent twice by the client"
    # the same request again: the first answer, nothing more taken out
    assert admin("void", "c1", body()) == (200, answer)
    assert total("api_calls") == (2, Decimal(2))
    # another key: refused, still counted once
    status, again = admin("void", "c1", body(), key="k2")
    assert (status, again["error"]["code"]) == (409, "event_already_voided")
    # the same key with another request: the idempotency conflict
    status, other = admin("void", "c2", body(reason="other"), key="k1")
    assert (status, other["error"]["code"]) == (409, "idempotency_conflict")
    assert total("api_calls") == (2, Decimal(2))


def test_a_void_needs_a_key_a_reason_and_a_ticket(send: Any, process: Any, admin: Any) -> None:
    send(ev("c1", timestamp=AT))
    process()
    status, answer = admin("void", "c1", body(), key=None)
    assert (status, answer["error"]["code"]) == (400, "idempotency_key_required")
    status, answer = admin("void", "c1", {"customer_id": "acme", "reason": "duplicate"})
    assert (status, answer["error"]["code"]) == (422, "validation_error")
    assert [(d["param"], d["code"]) for d in answer["error"]["details"]] == [("ticket", "missing")]
    status, answer = admin("void", "c1", {"customer_id": "acme", "reason": "duplicate", "ticket": ""})
    assert [(d["param"], d["code"]) for d in answer["error"]["details"]] == [("ticket", "string_too_short")]
    status, answer = admin("void", "c1", {"customer_id": "acme", "reason": "   ", "ticket": " "})
    assert status == 422
    assert [(d["param"], d["code"]) for d in answer["error"]["details"]] == [
        ("reason", "value_error"),
        ("ticket", "value_error"),
    ]
    assert "blank" in answer["error"]["details"][1]["message"]
    status, answer = admin("void", "c1", {"customer_id": "acme", "ticket": "T-1"})
    assert [(d["param"], d["code"]) for d in answer["error"]["details"]] == [("reason", "missing")]
    status, answer = admin("void", "nope", body())
    assert (status, answer["error"]["code"]) == (404, "event_not_found")
    assert total("api_calls") == (1, Decimal(1))


@pytest.mark.parametrize("action", ["void", "amend"])
@pytest.mark.parametrize(
    ("ticket", "code", "rule"),
    [({}, "missing", "is required"), ({"ticket": None}, "null_not_allowed", "must not be null")],
)
def test_a_void_or_amend_without_a_ticket_says_it_requires_one(
    send: Any, process: Any, admin: Any, action: str, ticket: dict[str, Any], code: str, rule: str
) -> None:
    # GIVEN an accepted event, and a script sending a body without a ticket (or ticket null), as the
    # other admin bodies take it
    send(ev("c1", timestamp=AT))
    process()
    extra = {"properties": {"n": 2}} if action == "amend" else {}
    # WHEN it voids or amends the event
    status, answer = admin(action, "c1", {"customer_id": "acme", "reason": "duplicate", **ticket, **extra})
    # THEN 422 names the ticket and says this route requires one, unlike the other admin bodies
    assert (status, answer["error"]["code"]) == (422, "validation_error")
    assert answer["error"]["details"] == [
        {
            "param": "ticket",
            "code": code,
            "message": f"'ticket' {rule}: voiding or amending an event requires a ticket (the support or "
            "finance ticket asking for it), unlike the other admin bodies, where ticket is optional.",
        }
    ]
    assert total("api_calls") == (1, Decimal(1))


def test_other_problems_are_told_beside_the_missing_ticket(send: Any, process: Any, admin: Any) -> None:
    send(ev("c1", timestamp=AT))
    process()
    status, answer = admin("void", "c1", {"customer_id": "acme", "reason": "x", "ticket": None})
    assert status == 422
    assert [(d["param"], d["code"]) for d in answer["error"]["details"]] == [
        ("reason", "string_too_short"),
        ("ticket", "null_not_allowed"),
    ]


def test_the_audit_record_names_the_event_reason_and_ticket(send: Any, process: Any, admin: Any) -> None:
    from neruba import bootstrap

    send(ev("c1", timestamp=AT))
    process()
    assert admin("void", "c1", body())[0] == 200
    records, _ = bootstrap.audit().list("acme", 10)
    found = [r for r in records if r["action"] == "event.void"]
    assert len(found) == 1
    assert (found[0]["target"], found[0]["ticket"]) == ("c1", "FIN-12")


@pytest.mark.parametrize(
    ("meter", "events", "voided", "after"),
    [
        # unique_count: u1 twice and u2; voiding one u1 keeps u1 counted
        ("seats", [("a", {"user": "u1"}), ("b", {"user": "u1"}), ("c", {"user": "u2"})], "a", (2, "2")),
        ("seats", [("a", {"user": "u1"}), ("b", {"user": "u1"}), ("c", {"user": "u2"})], "c", (2, "1")),
        # max falls to the next largest
        ("storage_gb", [("a", {"gb": 9}), ("b", {"gb": 4}), ("c", {"gb": 7})], "a", (2, "7")),
        # latest falls to the previous one
        ("plan_level", [("a", {"level": 1}), ("b", {"level": 5})], "b", (1, "1")),
    ],
)
def test_every_aggregation_is_recomputed_from_the_surviving_events(
    send: Any,
    process: Any,
    admin: Any,
    meter: str,
    events: list[tuple[str, dict[str, Any]]],
    voided: str,
    after: tuple[int, str],
) -> None:
    for n, (tx, properties) in enumerate(events):
        at = (NOW + timedelta(minutes=5 + n)).isoformat()
        send(ev(tx, code=meter, timestamp=at, properties=properties))
    process()
    status, answer = admin("void", voided, body())
    assert status == 200, answer
    assert total(meter) == (after[0], Decimal(after[1]))


def test_a_grouped_sum_loses_only_its_own_group(send: Any, process: Any, admin: Any) -> None:
    send(
        ev("a", code="tokens", timestamp=AT, properties={"tokens": 10, "model": "large"}),
        ev("b", code="tokens", timestamp=AT, properties={"tokens": 3, "model": "small"}),
        ev("c", code="tokens", timestamp=AT, properties={"tokens": 5, "model": "large"}),
    )
    process()
    assert admin("void", "a", body())[0] == 200
    cells = usage("tokens")
    assert sorted(cells.values()) == [(1, Decimal(3)), (1, Decimal(5))]


def test_a_voided_transaction_id_sent_again_stays_voided(
    send: Any, process: Any, read: Any, admin: Any
) -> None:
    send(ev("c1", timestamp=AT))
    process()
    assert admin("void", "c1", body())[0] == 200
    send(ev("c1", timestamp=AT))
    process()
    stored = event_of(read, "c1")
    assert stored["status"] == "voided"
    assert stored["copies"] == {"duplicate": 1}
    assert total("api_calls") == (0, Decimal(0))


def test_the_event_list_shows_the_void_and_the_amend_link(
    send: Any, process: Any, read: Any, admin: Any
) -> None:
    send(ev("a", code="tokens", timestamp=AT, properties={"tokens": 10, "model": "large"}))
    process()
    status, answer = admin("amend", "a", body(properties={"tokens": 4, "model": "large"}))
    assert status == 200, answer
    copy = answer["amended_by"]
    assert answer["void"]["amended_by"] == copy["transaction_id"] and copy["amends"] == "a"
    status, page = read(
        "/v1/events",
        query={
            "customer_id": "acme",
            "from": (NOW - timedelta(hours=1)).isoformat(),
            "to": (NOW + timedelta(hours=2)).isoformat(),
        },
    )
    assert status == 200, page
    shown = {e["transaction_id"]: e for e in page["data"]}
    assert shown["a"]["status"] == "voided" and shown["a"]["void"]["kind"] == "amend"
    assert shown[copy["transaction_id"]]["amends"] == "a"
    assert shown[copy["transaction_id"]]["status"] == "accepted"


def test_an_amend_counts_the_corrected_copy_in_place_of_the_original(
    send: Any, process: Any, read: Any, admin: Any
) -> None:
    send(
        ev("a", code="tokens", timestamp=AT, properties={"tokens": 10, "model": "large"}),
        ev("b", code="tokens", timestamp=AT, properties={"tokens": 1, "model": "large"}),
    )
    process()
    status, answer = admin("amend", "a", body(properties={"tokens": 4, "model": "large"}))
    assert status == 200, answer
    assert answer["correction"] == "completed"
    assert total("tokens") == (2, Decimal(5))
    copy = event_of(read, answer["amended_by"]["transaction_id"])
    assert (copy["status"], copy["amends"], copy["properties"]["tokens"]) == ("accepted", "a", 4)
    # retried: the same answer, the copy counted once
    assert admin("amend", "a", body(properties={"tokens": 4, "model": "large"})) == (200, answer)
    assert total("tokens") == (2, Decimal(5))


def test_an_amend_to_another_hour_moves_the_usage(send: Any, process: Any, admin: Any) -> None:
    send(ev("a", timestamp=AT))
    process()
    later = (NOW + timedelta(hours=1, minutes=10)).isoformat()
    status, answer = admin("amend", "a", body(timestamp=later))
    assert status == 200, answer
    hour = (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H")
    assert usage("api_calls") == {f"{hour}#": (1, Decimal(1))}


def test_an_amend_is_checked_as_an_event_is(send: Any, process: Any, admin: Any) -> None:
    send(ev("a", code="tokens", timestamp=AT, properties={"tokens": 10, "model": "large"}))
    process()
    status, answer = admin("amend", "a", body(properties={"model": "large"}))
    assert (status, answer["error"]["code"]) == (400, "missing_property")
    old = (NOW - timedelta(days=40)).isoformat()
    status, answer = admin("amend", "a", body(timestamp=old), key="k2")
    assert (status, answer["error"]["code"]) == (400, "timestamp_too_old")
    status, answer = admin("amend", "a", body(properties={"tokens": 10, "model": "large"}), key="k3")
    assert (status, answer["error"]["code"]) == (400, "amend_changes_nothing")
    assert total("tokens") == (1, Decimal(10))


def test_an_event_of_a_meter_some_plan_bills_in_advance_is_voided_when_its_customer_is_billed_in_arrears(
    send: Any, process: Any, admin: Any
) -> None:
    import boto3

    from neruba.settings import get_settings

    # GIVEN an event of api_calls, a meter some plan bills in advance (its mark), not this customer's
    send(ev("a", timestamp=AT))
    process()
    boto3.client("dynamodb").update_item(
        TableName=get_settings().catalog_table,
        Key={"pk": {"S": "MTR#api_calls"}, "sk": {"S": "#"}},
        UpdateExpression="SET adv = :t",
        ExpressionAttributeValues={":t": {"BOOL": True}},
    )
    # WHEN it is voided THEN it is (no phase of the customer charged it in advance), its usage out
    status, answer = admin("void", "a", body())
    assert status == 200, answer
    assert total("api_calls") == (0, Decimal(0))
    # (a customer whose phase bills the meter in advance: test_advance_charges.py)


def test_an_event_older_than_the_late_event_limit_is_refused(catalog: Any, admin: Any) -> None:
    from neruba import bootstrap
    from neruba.dal.usage import StoredEvent
    from neruba.domain.ingest import hour_bucket
    from neruba.timefmt import iso

    at = NOW - timedelta(days=36)
    bootstrap.usage().put_event(
        StoredEvent("acme", "old", "api_calls", iso(at), hour_bucket(at), "{}", "accepted", batch="b" * 32)
    )
    status, answer = admin("void", "old", body())
    assert (status, answer["error"]["code"]) == (409, "event_too_old_to_void")


def test_an_event_not_counted_yet_is_refused_until_it_is(catalog: Any, admin: Any) -> None:
    from neruba import bootstrap
    from neruba.dal.usage import StoredEvent
    from neruba.domain.ingest import hour_bucket
    from neruba.timefmt import iso

    at = NOW
    bootstrap.usage().put_event(
        StoredEvent("acme", "held", "api_calls", iso(at), hour_bucket(at), "{}", "accepted", batch="c" * 32)
    )
    status, answer = admin("void", "held", body())
    assert (status, answer["error"]["code"]) == (409, "event_not_counted_yet")
    assert bootstrap.usage().get_event("acme", "held").status == "accepted"


def test_a_failed_event_cannot_be_voided(send: Any, process: Any, enqueue: Any, admin: Any) -> None:
    enqueue(ev("bad", code="tokens", timestamp=AT, properties={"model": "large"}))  # no tokens: parked
    process()
    status, answer = admin("void", "bad", body())
    assert (status, answer["error"]["code"]) == (409, "event_not_accepted")


def test_the_limit_counter_of_the_period_goes_down_by_the_voided_usage(
    send: Any, process: Any, admin: Any
) -> None:
    from neruba import bootstrap
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    limits = UsageLimitsIn.model_validate({"meters": [{"meter_code": "tokens", "hard_cap": "1000"}]})
    put_limits("acme", limits, None, Actor())
    send(
        ev("a", code="tokens", timestamp=AT, properties={"tokens": 10, "model": "large"}),
        ev("b", code="tokens", timestamp=AT, properties={"tokens": 5, "model": "large"}),
    )
    process()
    settings = bootstrap.limits()

    def counter() -> tuple[Decimal, int]:
        from neruba.domain.limits import LimitSettings

        stored = LimitSettings.from_stored(settings.settings_text("acme"))
        assert stored is not None
        start, end = stored.period(NOW)
        found = settings.counter("acme", "tokens", start, end)
        return found.used, found.events

    assert counter() == (Decimal(15), 2)
    assert admin("void", "a", body())[0] == 200
    assert counter() == (Decimal(5), 1)
    assert admin("void", "a", body())[0] == 200  # the retry lowers nothing more
    assert counter() == (Decimal(5), 1)
    status, answer = admin("amend", "b", body(properties={"tokens": 7, "model": "large"}), key="k2")
    assert status == 200, answer
    assert counter() == (Decimal(7), 1)


def test_a_plan_default_cap_counter_goes_down_too(send: Any, process: Any, admin: Any) -> None:
    """Limits a customer gets from its plan version's defaults keep a counter as its own limits do."""
    from neruba import bootstrap
    from neruba.domain.limits import LimitSettings
    from tests.functional.ingest.test_plan_defaults import _plan, _subscribe

    status, plan = _plan({"meters": [{"meter_code": "tokens", "hard_cap": "1000"}]})
    assert status == 201, plan
    _subscribe("acme")
    send(
        ev("a", code="tokens", timestamp=AT, properties={"tokens": 10, "model": "large"}),
        ev("b", code="tokens", timestamp=AT, properties={"tokens": 5, "model": "large"}),
    )
    process()
    from datetime import UTC, datetime

    catalog = bootstrap.catalog().lookup({"acme"}, {"tokens"})
    stored = LimitSettings.from_stored(catalog.limit_settings("acme", datetime.now(UTC)))
    assert stored is not None
    start, end = stored.period(NOW)
    assert bootstrap.limits().counter("acme", "tokens", start, end).used == Decimal(15)
    assert admin("void", "a", body())[0] == 200
    assert bootstrap.limits().counter("acme", "tokens", start, end).used == Decimal(5)


def test_limits_counted_in_amounts_are_refused(send: Any, process: Any, admin: Any) -> None:
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    limits = UsageLimitsIn.model_validate(
        {"meters": [{"meter_code": "api_calls", "hard_cap_amount_minor": 10**6}]}
    )
    put_limits("acme", limits, None, Actor())
    send(ev("a", timestamp=AT))
    process()
    status, answer = admin("void", "a", body())
    assert (status, answer["error"]["code"]) == (409, "event_void_amount_limits")
    assert total("api_calls") == (1, Decimal(1))
