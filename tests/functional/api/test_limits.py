"""Every limit of docs/limits.md at its boundary, through the real handlers on moto.

Each row: exactly at the limit is accepted, one over is rejected with the documented status and code, and
a rejected request writes nothing (no queued event, no stored resource). The pagination rows cover every
list route of every API function, found from template.yaml so a list route added later fails
``test_every_list_route_is_in_the_table`` until it is covered here.
"""

from __future__ import annotations

import base64
import importlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from neruba import jsonutil
from neruba.settings import get_settings
from neruba_tools.local.intrinsics import load_template
from tests.support.api import api_event, call
from tests.support.aws import queue_url

ROOT = Path(__file__).resolve().parents[3]


# ---------------------------------------------------------------- helpers


def _queued(logical_id: str = "IngestQueue") -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url(logical_id), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _padded(body: dict[str, Any], size: int) -> str:
    """``body`` as JSON text of exactly ``size`` bytes (spaces before the closing brace)."""
    text = json.dumps(body)
    missing = size - len(text.encode("utf-8"))
    assert missing >= 0, "the body alone is over the size asked for"
    return text[:-1] + " " * missing + "}"


def _ingest(body: Any = None, raw: str | None = None) -> tuple[int, Any]:
    from functions.ingest_api.app import lambda_handler

    status, parsed, _ = call(lambda_handler, api_event("POST", "/v1/events", body=body, raw_body=raw))
    return status, parsed


def _admin(method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    from functions.admin_api.app import lambda_handler

    status, parsed, _ = call(lambda_handler, api_event(method, path, body=body, scopes="admin", **kw))
    return status, parsed


def _read(path: str, query: dict[str, str] | None = None) -> tuple[int, Any]:
    from functions.read_api.app import lambda_handler

    status, parsed, _ = call(lambda_handler, api_event("GET", path, query=query, scopes="read"))
    return status, parsed


def _event(**fields: Any) -> dict[str, Any]:
    return {"transaction_id": "t1", "customer_id": "acme", "code": "api_calls", **fields}


def _params(body: dict[str, Any]) -> list[str | None]:
    return [d["param"] for d in body["error"].get("details") or []]


# ---------------------------------------------------------------- body size


@pytest.mark.parametrize(("over", "status"), [(0, 202), (1, 413)], ids=["at the limit", "one byte over"])
def test_ingest_body_size_limit(catalog: Any, over: int, status: int) -> None:
    # GIVEN a valid ingest body padded to exactly the limit, or one byte more
    raw = _padded({"events": [_event()]}, get_settings().max_body_bytes + over)
    # WHEN it is sent
    got, body = _ingest(raw=raw)
    # THEN at the limit the event is queued; over it, 413 payload_too_large and nothing queued
    assert got == status, body
    if status == 413:
        assert body["error"]["code"] == "payload_too_large"
    assert _queued() == (1 if status == 202 else 0)


@pytest.mark.parametrize(("over", "status"), [(0, 201), (1, 413)], ids=["at the limit", "one byte over"])
def test_admin_body_size_limit(aws: dict[str, str], over: int, status: int) -> None:
    # GIVEN a valid customer body padded to exactly the limit, or one byte more
    customer = {"external_id": "acme", "name": "Acme", "currency": "USD"}
    raw = _padded(customer, get_settings().max_body_bytes + over)
    # WHEN it is posted
    got, body = _admin("POST", "/v1/customers", raw_body=raw)
    # THEN at the limit the customer exists; over it, 413 and no customer
    assert got == status, body
    if status == 413:
        assert body["error"]["code"] == "payload_too_large"
    assert _read("/v1/customers/acme")[0] == (200 if status == 201 else 404)


@pytest.mark.parametrize(("over", "status"), [(0, 200), (1, 413)], ids=["at the limit", "one byte over"])
def test_stripe_webhook_body_size_limit(aws: dict[str, str], over: int, status: int) -> None:
    from functions.stripe_webhook.app import lambda_handler
    from neruba.logic.stripe.secrets import clear_cache
    from tests.support.stripe_events import SECRET, event, sign

    # GIVEN a configured webhook secret and a signed Stripe event of exactly the limit, or one byte more
    boto3.client("ssm").put_parameter(
        Name=get_settings().stripe_secret_name or "/neruba/stripe",
        Type="SecureString",
        Overwrite=True,
        Value=json.dumps({"api_key": "sk_test_limits", "webhook_secrets": [SECRET]}),
    )
    clear_cache()
    payload = event("customer.updated", {"id": "cus_1", "object": "customer"}, event_id="evt_limits")
    raw = _padded(payload, get_settings().max_body_bytes + over)
    request = api_event("POST", "/webhooks/stripe", raw_body=raw, scopes=None)
    request["headers"]["Stripe-Signature"] = sign(raw.encode("utf-8"), SECRET)
    # WHEN Stripe delivers it
    got, body, _ = call(lambda_handler, request)
    clear_cache()
    # THEN at the limit it is stored and queued; over it, 413 and nothing stored or queued
    assert got == status, body
    assert _queued("StripeEventsQueue") == (1 if status == 200 else 0)


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        pytest.param('{"events": [' + "1" * 5_000 + "]}", id="5000 digits"),
        pytest.param("[" * 50_000 + "]" * 50_000, id="nested 50000 deep"),
    ],
)
def test_unparseable_bodies_are_400_invalid_json(aws: dict[str, str], raw: str) -> None:
    # GIVEN bodies (under the size limit) that are not JSON Python can parse
    # WHEN they are sent
    got, body = _ingest(raw=raw)
    # THEN 400 invalid_json, nothing queued
    assert (got, body["error"]["code"]) == (400, "invalid_json"), body
    assert _queued() == 0


def test_loads_untrusted_turns_every_parse_failure_into_a_decode_error() -> None:
    # GIVEN texts json.loads fails on with RecursionError and ValueError
    for text in ("[" * 50_000 + "]" * 50_000, "1" * 5_000, "{nope"):
        # THEN loads_untrusted raises JSONDecodeError (which the resolver maps to 400 invalid_json)
        with pytest.raises(json.JSONDecodeError):
            jsonutil.loads_untrusted(text)
    assert jsonutil.loads_untrusted('{"a": 1.5}') == {"a": jsonutil.loads("1.5")}


# ---------------------------------------------------------------- ingest batch and events


@pytest.mark.parametrize(
    ("count", "status"), [(0, 422), (1, 202), (100, 202), (101, 422)], ids=["0", "1", "100", "101"]
)
def test_ingest_batch_size(catalog: Any, count: int, status: int) -> None:
    # GIVEN a batch of ``count`` valid events
    events = [_event(transaction_id=f"t{i}") for i in range(count)]
    # WHEN it is sent
    got, body = _ingest({"events": events})
    # THEN 1..100 are queued; 0 and 101 are 422 validation_error with nothing queued
    assert got == status, body
    if status == 422:
        assert body["error"]["code"] == "validation_error"
        assert "events" in _params(body)
    assert _queued() == (count if status == 202 else 0)


EVENT_LIMITS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    (
        "transaction_id 256 chars",
        {"transaction_id": "t" * 256},
        {"transaction_id": "t" * 257},
        "invalid_field",
    ),
    ("customer_id 128 chars", {"customer_id": "c" * 128}, {"customer_id": "c" * 129}, "invalid_field"),
    ("code 64 chars", {"code": "m" * 64}, {"code": "m" * 65}, "invalid_field"),
    (
        "50 properties",
        {"properties": {f"p{i}": 1 for i in range(50)}},
        {"properties": {f"p{i}": 1 for i in range(51)}},
        "too_many_properties",
    ),
    (
        "property name 64 chars",
        {"properties": {"p" * 64: 1}},
        {"properties": {"p" * 65: 1}},
        "invalid_property",
    ),
    (
        "property text 1024 chars",
        {"properties": {"p": "x" * 1024}},
        {"properties": {"p": "x" * 1025}},
        "invalid_property",
    ),
    (
        "property integer of 38 significant digits",
        {"properties": {"p": 10**38 - 1}},
        {"properties": {"p": 10**38 + 1}},
        "number_too_precise",
    ),
    (
        "property number 38 significant digits",
        {"properties": {"p": jsonutil.loads("12345678." + "9" * 30)}},
        {"properties": {"p": jsonutil.loads("123456789." + "9" * 30)}},
        "number_too_precise",
    ),
    (
        "property numeric text 38 significant digits",
        {"properties": {"p": "0." + "1" * 38}},
        {"properties": {"p": "0." + "1" * 39}},
        "number_too_precise",
    ),
    (
        "property number below 1E+126",
        {"properties": {"p": jsonutil.loads("9.9999999999999999999999999999999999999E+125")}},
        {"properties": {"p": 10**126}},
        "number_out_of_range",
    ),
    (
        "property number from 1E-130",
        {"properties": {"p": jsonutil.loads("1E-130")}},
        {"properties": {"p": jsonutil.loads("9.9E-131")}},
        "number_out_of_range",
    ),
    ("unknown field", {}, {"colour": "blue"}, "unknown_field"),
]


@pytest.mark.parametrize(
    ("at_limit", "over", "code"), [row[1:] for row in EVENT_LIMITS], ids=[row[0] for row in EVENT_LIMITS]
)
def test_event_field_limits(catalog: Any, at_limit: dict[str, Any], over: dict[str, Any], code: str) -> None:
    from neruba.models.catalog import Customer, Meter

    # GIVEN one event exactly at a limit (its customer and meter exist: the API refuses unknown ones)
    if "customer_id" in at_limit:
        catalog.create_customer(Customer(external_id=at_limit["customer_id"], name="Long", currency="USD"))
    if "code" in at_limit:
        catalog.create_meter(Meter(code=at_limit["code"], name="Long", aggregation="count"))
    # WHEN it is sent alone
    got, body = _ingest(raw=jsonutil.dumps({"events": [_event(**at_limit)]}))
    # THEN it is queued
    assert got == 202, body
    assert _queued() == 1
    boto3.client("sqs").purge_queue(QueueUrl=queue_url("IngestQueue"))
    # WHEN the same event one over the limit is sent alone
    got, body = _ingest(raw=jsonutil.dumps({"events": [_event(**over)]}))
    # THEN 400 all_events_rejected naming the event's code, and nothing is queued
    assert got == 400, body
    assert body["error"]["code"] == "all_events_rejected"
    assert body["error"]["details"][0]["code"] == code
    assert _queued() == 0


@pytest.mark.parametrize(
    ("offset", "accepted", "code"),
    [
        (timedelta(days=-35, minutes=1), True, None),
        (timedelta(days=-35, minutes=-1), False, "timestamp_too_old"),
        (timedelta(seconds=240), True, None),
        (timedelta(seconds=360), False, "timestamp_in_future"),
    ],
    ids=["35 days old", "over 35 days old", "4 minutes ahead", "6 minutes ahead"],
)
def test_event_time_window(catalog: Any, offset: timedelta, accepted: bool, code: str | None) -> None:
    # GIVEN an event stamped near the edges of the accepted window (35 days back, 300 s ahead)
    at = (datetime.now(UTC) + offset).isoformat()
    # WHEN it is sent
    got, body = _ingest({"events": [_event(timestamp=at)]})
    # THEN inside the window it is queued; outside, rejected with its code and not queued
    assert got == (202 if accepted else 400), body
    if not accepted:
        assert body["error"]["details"][0]["code"] == code
    assert _queued() == (1 if accepted else 0)


def test_property_text_and_meter_filter_values_share_one_limit() -> None:
    from neruba.models.catalog import FILTER_VALUE_MAX
    from neruba.models.events import MAX_PROPERTY_TEXT

    # THEN a filter can match any property text an event may carry
    assert FILTER_VALUE_MAX == MAX_PROPERTY_TEXT


# ---------------------------------------------------------------- catalog bodies


def _customer(**fields: Any) -> dict[str, Any]:
    return {"external_id": "acme", "name": "Acme", "currency": "USD", **fields}


CUSTOMER_LIMITS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("external_id 128 chars", {"external_id": "a" * 128}, {"external_id": "a" * 129}, "external_id"),
    ("name 256 chars", {"name": "n" * 256}, {"name": "n" * 257}, "name"),
    ("email 320 chars", {"email": "e" * 310 + "@x.example"}, {"email": "e" * 311 + "@x.example"}, "email"),
    ("timezone 64 chars", {"timezone": "Etc/" + "A" * 60}, {"timezone": "Etc/" + "A" * 61}, "timezone"),
    ("timezone is an IANA-style name", {"timezone": "Europe/Paris"}, {"timezone": "Paris\n"}, "timezone"),
    (
        "stripe_customer_id 255 chars",
        {"stripe_customer_id": "c" * 255},
        {"stripe_customer_id": "c" * 256},
        "stripe_customer_id",
    ),
    (
        "50 metadata entries",
        {"metadata": {f"k{i}": "v" for i in range(50)}},
        {"metadata": {f"k{i}": "v" for i in range(51)}},
        "metadata",
    ),
    ("metadata key 40 chars", {"metadata": {"k" * 40: "v"}}, {"metadata": {"k" * 41: "v"}}, "metadata"),
    ("metadata value 500 chars", {"metadata": {"k": "v" * 500}}, {"metadata": {"k": "v" * 501}}, "metadata"),
    ("unknown field", {}, {"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(
    ("at_limit", "over", "param"),
    [row[1:] for row in CUSTOMER_LIMITS],
    ids=[row[0] for row in CUSTOMER_LIMITS],
)
def test_customer_limits(
    aws: dict[str, str], at_limit: dict[str, Any], over: dict[str, Any], param: str
) -> None:
    # GIVEN a customer one over a limit
    # WHEN it is created
    got, answer = _admin("POST", "/v1/customers", _customer(**over))
    # THEN 422 validation_error naming the field, and no customer is stored
    assert got == 422, answer
    assert answer["error"]["code"] == "validation_error"
    assert any((p or "").startswith(param) for p in _params(answer)), answer
    assert _read("/v1/customers")[1]["data"] == []
    # WHEN the same customer exactly at the limit is created THEN it is stored
    got, answer = _admin("POST", "/v1/customers", _customer(**at_limit))
    assert got == 201, answer
    external_id = answer["external_id"]
    before = _read(f"/v1/customers/{external_id}")[1]
    # WHEN an update goes one over the limit THEN 422 and the customer is unchanged
    patch = {k: v for k, v in over.items() if k != "external_id"}
    if patch:
        got, answer = _admin("PATCH", f"/v1/customers/{external_id}", patch)
        assert got == 422, answer
        assert _read(f"/v1/customers/{external_id}")[1] == before


def _meter(**fields: Any) -> dict[str, Any]:
    return {"code": "calls", "name": "Calls", "aggregation": "count", **fields}


METER_LIMITS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("code 64 chars", {"code": "m" * 64}, {"code": "m" * 65}, "code"),
    ("name 256 chars", {"name": "n" * 256}, {"name": "n" * 257}, "name"),
    (
        "field name 64 chars",
        {"aggregation": "sum", "field": "f" * 64},
        {"aggregation": "sum", "field": "f" * 65},
        "",
    ),
    (
        "10 filters",
        {"filters": {f"f{i}": "v" for i in range(10)}},
        {"filters": {f"f{i}": "v" for i in range(11)}},
        "filters",
    ),
    ("filter value 1024 chars", {"filters": {"f": "v" * 1024}}, {"filters": {"f": "v" * 1025}}, "filters"),
    ("3 group_by", {"group_by": ["a", "b", "c"]}, {"group_by": ["a", "b", "c", "d"]}, "group_by"),
    ("unknown field", {}, {"unit": "ms"}, "unit"),
]


@pytest.mark.parametrize(
    ("at_limit", "over", "param"), [row[1:] for row in METER_LIMITS], ids=[row[0] for row in METER_LIMITS]
)
def test_meter_limits(
    aws: dict[str, str], at_limit: dict[str, Any], over: dict[str, Any], param: str
) -> None:
    # GIVEN a meter one over a limit
    # WHEN it is created
    got, answer = _admin("POST", "/v1/meters", _meter(**over))
    # THEN 422 validation_error (naming the field when the rule is on one field) and no meter is stored
    assert got == 422, answer
    assert answer["error"]["code"] == "validation_error"
    assert any((p or "").startswith(param) for p in _params(answer)), answer
    assert _read("/v1/meters")[1]["data"] == []
    # WHEN the same meter exactly at the limit is created THEN it is stored
    got, answer = _admin("POST", "/v1/meters", _meter(**at_limit))
    assert got == 201, answer
    assert len(_read("/v1/meters")[1]["data"]) == 1


def _plan(**fields: Any) -> dict[str, Any]:
    charge = {"meter_code": "calls", "model": "per_unit", "unit_price": "0.01"}
    return {
        "code": "basic",
        "name": "Basic",
        "currency": "USD",
        "interval": "month",
        "charges": [charge],
        **fields,
    }


def _tiers(count: int) -> list[dict[str, Any]]:
    return [{"up_to": str(i + 1) if i < count - 1 else None, "unit_price": "0.01"} for i in range(count)]


PLAN_LIMITS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("name 256 chars", {"name": "n" * 256}, {"name": "n" * 257}, "name"),
    ("code 64 chars", {"code": "p" * 64}, {"code": "p" * 65}, "code"),
    (
        "20 tiers",
        {"charges": [{"meter_code": "calls", "model": "graduated", "tiers": _tiers(20)}]},
        {"charges": [{"meter_code": "calls", "model": "graduated", "tiers": _tiers(21)}]},
        "charges.0.tiers",
    ),
    ("unknown field", {}, {"trial_days": 14}, "trial_days"),
    (
        "unknown field in a charge",
        {},
        {"charges": [{"meter_code": "calls", "model": "per_unit", "unit_price": "1", "cap": 5}]},
        "charges.0.cap",
    ),
]


@pytest.mark.parametrize(
    ("at_limit", "over", "param"), [row[1:] for row in PLAN_LIMITS], ids=[row[0] for row in PLAN_LIMITS]
)
def test_plan_limits(aws: dict[str, str], at_limit: dict[str, Any], over: dict[str, Any], param: str) -> None:
    # GIVEN the meter the plans charge for, and a plan one over a limit
    assert _admin("POST", "/v1/meters", _meter())[0] == 201
    # WHEN it is created
    got, answer = _admin("POST", "/v1/plans", _plan(**over))
    # THEN 422 validation_error naming the field, and no plan is stored
    assert got == 422, answer
    assert any((p or "").startswith(param) for p in _params(answer)), answer
    assert _read("/v1/plans")[1]["data"] == []
    # WHEN the same plan exactly at the limit is created THEN it is stored
    got, answer = _admin("POST", "/v1/plans", _plan(**at_limit))
    assert got == 201, answer
    assert len(_read("/v1/plans")[1]["data"]) == 1


@pytest.mark.parametrize(("length", "status"), [(255, 201), (256, 422)], ids=["255 chars", "256 chars"])
def test_idempotency_key_length(aws: dict[str, str], length: int, status: int) -> None:
    # GIVEN a customer, a meter and a plan
    assert _admin("POST", "/v1/customers", _customer())[0] == 201
    assert _admin("POST", "/v1/meters", _meter())[0] == 201
    assert _admin("POST", "/v1/plans", _plan())[0] == 201
    # WHEN a subscription is created with an Idempotency-Key of ``length`` characters
    body = {"customer_id": "acme", "plan_code": "basic"}
    got, answer = _admin("POST", "/v1/subscriptions", body, headers={"Idempotency-Key": "k" * length})
    # THEN up to 255 it is created; over, 422 on the header and no subscription exists
    assert got == status, answer
    subscriptions = _read("/v1/customers/acme/subscriptions")[1]["data"]
    assert len(subscriptions) == (1 if status == 201 else 0)
    if status == 422:
        assert any("idempotency" in (p or "").lower() for p in _params(answer)), answer


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/subscriptions", {"customer_id": "acme", "plan_code": "basic", "quantity": 2}, "quantity"),
        ("/v1/subscriptions/sub_" + "0" * 20 + "/change-plan", {"plan_code": "basic", "when": "now"}, "when"),
        ("/v1/subscriptions/sub_" + "0" * 20 + "/cancel", {"at_period_end": True, "refund": True}, "refund"),
        ("/v1/plans/basic/versions", {**_plan(), "code": "basic"}, "code"),
    ],
    ids=["subscription", "plan change", "cancellation", "plan version (code is not part of it)"],
)
def test_unknown_fields_are_rejected(
    aws: dict[str, str], path: str, body: dict[str, Any], param: str
) -> None:
    # WHEN a body carries a field the API does not know
    got, answer = _admin("POST", path, body)
    # THEN 422 naming it (extra_forbidden), not a silent drop
    assert got == 422, answer
    details = answer["error"]["details"]
    assert any(d["param"] == param and d["code"] == "extra_forbidden" for d in details), details


# ---------------------------------------------------------------- query and path parameters of usage reads


def test_usage_query_limits(catalog: Any) -> None:
    now = datetime.now(UTC)
    window = {"meter": "tokens", "from": (now - timedelta(days=1)).isoformat(), "to": now.isoformat()}
    # group_by: 64 characters accepted (then checked against the meter), 65 rejected by the schema
    got, answer = _read("/v1/customers/acme/usage", {**window, "group_by": "g" * 65})
    assert (got, answer["error"]["code"]) == (422, "validation_error")
    got, answer = _read("/v1/customers/acme/usage", {**window, "group_by": "g" * 64})
    assert (got, answer["error"]["code"]) == (400, "invalid_group_by")
    got, _ = _read("/v1/customers/acme/usage", {**window, "group_by": "model"})
    assert got == 200
    # time ranges: hour granularity at most 31 days, minute outcomes at most one day
    start = now - timedelta(days=31)
    got, _ = _read(
        "/v1/customers/acme/usage",
        {**window, "granularity": "hour", "from": start.isoformat(), "to": now.isoformat()},
    )
    assert got == 200
    got, answer = _read(
        "/v1/customers/acme/usage",
        {
            **window,
            "granularity": "hour",
            "from": (start - timedelta(hours=1)).isoformat(),
            "to": now.isoformat(),
        },
    )
    assert (got, answer["error"]["code"]) == (400, "time_range_too_long")
    day = {"from": (now - timedelta(days=1)).isoformat(), "to": now.isoformat(), "granularity": "minute"}
    assert _read("/v1/ingest/outcomes", day)[0] == 200
    day["from"] = (now - timedelta(days=1, minutes=1)).isoformat()
    got, answer = _read("/v1/ingest/outcomes", day)
    assert (got, answer["error"]["code"]) == (400, "time_range_too_long")


def test_event_transaction_id_path_limit(catalog: Any) -> None:
    # transaction ids of 256 characters are looked up; 257 are refused by the schema
    got, answer = _read("/v1/events/" + "t" * 256, {"customer_id": "acme"})
    assert (got, answer["error"]["code"]) == (404, "event_not_found")
    got, answer = _read("/v1/events/" + "t" * 257, {"customer_id": "acme"})
    assert (got, answer["error"]["code"]) == (422, "validation_error")


# ---------------------------------------------------------------- pagination of every list route


def _cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


OPAQUE_FORGERIES = {
    "not base64 JSON": "!!not-a-cursor!!",
    "JSON, not a key": _cursor(["pk"]),  # type: ignore[arg-type]
    "a key of something else": _cursor({"pk": {"S": "x"}}),
}
# folder, path, query the route needs, forged cursors -> whether the route refuses them today
EVENT_LIST_QUERY = {"customer_id": "acme", "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
LIST_ROUTES: list[tuple[str, str, dict[str, str], dict[str, str]]] = [
    ("read_api", "/v1/customers", {}, OPAQUE_FORGERIES),
    ("read_api", "/v1/events", EVENT_LIST_QUERY, OPAQUE_FORGERIES),
    ("read_api", "/v1/meters", {}, OPAQUE_FORGERIES),
    ("read_api", "/v1/plans", {}, OPAQUE_FORGERIES),
    ("ledger_api", "/v1/customers/acme/ledger", {}, OPAQUE_FORGERIES),
    ("ledger_api", "/admin/audit", {"customer_id": "acme"}, OPAQUE_FORGERIES),
    ("ledger_api", "/v1/customers/acme/credit-grants", {}, OPAQUE_FORGERIES),
    ("billing_api", "/v1/invoices", {"customer_id": "acme"}, OPAQUE_FORGERIES),
    ("billing_api", "/admin/billing-runs", {}, OPAQUE_FORGERIES),
    ("billing_api", "/admin/coupons", {}, OPAQUE_FORGERIES),
    ("billing_api", "/admin/tax-rates", {}, OPAQUE_FORGERIES),
    ("billing_api", "/admin/discounts", {"customer_id": "acme"}, OPAQUE_FORGERIES),
    ("stripe_admin_api", "/admin/stripe-events", {}, {"an unknown event id": "evt_forged"}),
    ("ops_api", "/admin/sweeps", {}, {"an unknown sweep id": "swp_" + "0" * 20}),
    ("webhooks_api", "/admin/webhook-endpoints", {}, OPAQUE_FORGERIES),
    ("webhooks_api", "/admin/webhook-events", {"customer_id": "acme"}, OPAQUE_FORGERIES),
]
# Forged cursors a route still accepts (see docs/limits.md, "Gaps"): a well-formed key of something else
# reaches DynamoDB, which moto answers with an empty page and AWS with a ValidationException (a 500).


def _list(folder: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
    module = importlib.import_module(f"functions.{folder}.app")
    status, body, _ = call(module.lambda_handler, api_event("GET", path, query=query, scopes="read admin"))
    return status, body


def test_every_list_route_is_in_the_table(aws: dict[str, str]) -> None:
    # GIVEN every GET route of template.yaml, called with limit=0
    template = load_template(ROOT / "template.yaml")
    paginated = set()
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        folder = Path(resource["Properties"]["CodeUri"]).name
        for event in (resource["Properties"].get("Events") or {}).values():
            props = event["Properties"]
            if event["Type"] != "Api" or props["Method"].upper() != "GET":
                continue
            path = re.sub(
                r"\{(\w+)\}", lambda m: "acme" if m.group(1) == "customer_id" else "x1", props["Path"]
            )
            status, body = _list(folder, path, {"limit": "0", "customer_id": "acme"})
            if status == 422 and "query.limit" in _params(body):
                paginated.add((folder, path))
    # THEN the routes that take ``limit`` are exactly the table's
    assert paginated == {(folder, path) for folder, path, _, _ in LIST_ROUTES}


@pytest.mark.parametrize(
    ("folder", "path", "query"), [row[:3] for row in LIST_ROUTES], ids=[row[1] for row in LIST_ROUTES]
)
def test_pagination_limit_bounds(catalog: Any, folder: str, path: str, query: dict[str, str]) -> None:
    for limit, status in (("0", 422), ("1", 200), ("100", 200), ("101", 422)):  # reads only: one catalog
        # WHEN a list route is asked for ``limit`` items
        got, body = _list(folder, path, {**query, "limit": limit})
        # THEN 1..100 answer a list page of at most that many; 0 and 101 are 422 on ``limit``
        assert got == status, (limit, body)
        if status == 200:
            assert body["object"] == "list" and len(body["data"]) <= int(limit), limit
        else:
            assert body["error"]["code"] == "validation_error" and "query.limit" in _params(body), limit


def test_a_page_of_one_has_more_and_its_cursor_continues(catalog: Any) -> None:
    # GIVEN two customers
    got, first = _read("/v1/customers", {"limit": "1"})
    # THEN a page of one says there is more, and its cursor gives the other customer
    assert got == 200 and len(first["data"]) == 1 and first["has_more"] is True
    got, second = _read("/v1/customers", {"limit": "1", "starting_after": first["next_cursor"]})
    assert got == 200 and second["data"][0]["external_id"] != first["data"][0]["external_id"]


@pytest.mark.parametrize(
    ("folder", "path", "query", "cursors"), LIST_ROUTES, ids=[row[1] for row in LIST_ROUTES]
)
def test_a_forged_cursor_is_400_invalid_cursor(
    catalog: Any, folder: str, path: str, query: dict[str, str], cursors: dict[str, str]
) -> None:
    for name, cursor in cursors.items():  # one catalog for every forged cursor: each is refused
        # WHEN a list route gets a cursor it never handed out
        got, body = _list(folder, path, {**query, "starting_after": cursor})
        # THEN 400 invalid_cursor
        assert (got, body["error"]["code"]) == (400, "invalid_cursor"), (name, body)


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ('{"events": [{"transaction_id": "t", "customer_id": "c", "code": "m", '
         '"properties": {"value": NaN}}]}', "value"),
        ('{"events": [{"transaction_id": "t", "customer_id": "c", "code": "m", '
         '"properties": {"v": [1, Infinity]}}]}', "v"),
        ("NaN", None),
        ("{not json", None),
    ],
)  # fmt: skip
def test_an_invalid_json_answer_names_the_field_or_none_never_a_position(
    aws: dict[str, str], raw: str, param: str | None
) -> None:
    got, body = _ingest(raw=raw)
    assert (got, body["error"]["code"]) == (400, "invalid_json"), body
    error = body["error"]
    params = [error.get("param")] + [d.get("param") for d in error.get("details") or []]
    assert not any(p is not None and p.isdigit() for p in params), body  # a character position means nothing
    if param is not None:
        assert error.get("param") == param and param in error["message"], body


@pytest.mark.parametrize("key", ["a\x07b", "tab\there", "caf\u00e9", "", "a\u202eb"])
def test_idempotency_key_outside_printable_ascii_is_refused(aws: dict[str, str], key: str) -> None:
    # GIVEN a customer, a meter and a plan
    assert _admin("POST", "/v1/customers", _customer())[0] == 201
    assert _admin("POST", "/v1/meters", _meter())[0] == 201
    assert _admin("POST", "/v1/plans", _plan())[0] == 201
    # WHEN a subscription is created with an empty key or one holding a control or non-ASCII character
    body = {"customer_id": "acme", "plan_code": "basic"}
    got, answer = _admin("POST", "/v1/subscriptions", body, headers={"Idempotency-Key": key})
    # THEN 422 validation_error on the header, as a too long key is, and no subscription exists
    assert got == 422, answer
    assert answer["error"]["code"] == "validation_error", answer
    assert any("idempotency" in (p or "").lower() for p in _params(answer)), answer
    assert not _read("/v1/customers/acme/subscriptions")[1]["data"]
