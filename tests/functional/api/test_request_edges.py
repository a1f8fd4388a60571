"""Requests at the edges of the HTTP contract, through the real handlers on moto: media types, nulls in
updates, duplicate JSON keys, validation messages in our words, and a method a path does not serve.

Each of these answered 500 (or a misleading message) when the API was fuzzed over HTTP; every body route
of template.yaml is covered, so a route added later is checked without an edit here.
"""

from __future__ import annotations

import importlib
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from neruba.settings import get_settings
from neruba_tools.local.intrinsics import load_template
from tests.support.api import api_event, call

ROOT = Path(__file__).resolve().parents[3]
PYDANTIC_WORDING = re.compile(
    r"Input should|Value error|Field required|Extra inputs|isoformat|String should|should have|"
    r"valid boolean|Assertion failed|Decimal input",
    re.IGNORECASE,
)


def _body_routes() -> list[tuple[str, str, str]]:
    """(function folder, method, concrete path) of every POST/PUT/PATCH route of the template."""
    template = load_template(ROOT / "template.yaml")
    routes = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        folder = Path(resource["Properties"]["CodeUri"]).name
        for event in (resource["Properties"].get("Events") or {}).values():
            props = event["Properties"]
            if event["Type"] == "Api" and props["Method"].upper() in {"POST", "PUT", "PATCH"}:
                path = re.sub(
                    r"\{(\w+)\}", lambda m: "acme" if m.group(1) == "customer_id" else "x1", props["Path"]
                )
                routes.append((folder, props["Method"].upper(), path))
    return sorted(routes)


BODY_ROUTES = _body_routes()


def _send(
    folder: str, method: str, path: str, *, raw: str | None = None, body: Any = None, **kw: Any
) -> tuple[int, Any, dict[str, str]]:
    module = importlib.import_module(f"functions.{folder}.app")
    scopes = None if folder == "stripe_webhook" else "ingest read admin"
    return call(module.lambda_handler, api_event(method, path, body=body, raw_body=raw, scopes=scopes, **kw))  # type: ignore[no-any-return]


def _with_content_type(event: dict[str, Any], content_type: str | None) -> dict[str, Any]:
    event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    if content_type is not None:
        event["headers"]["Content-Type"] = content_type
    return event


def _admin(method: str, path: str, body: Any = None, raw: str | None = None) -> tuple[int, Any]:
    status, answer, _ = _send("admin_api", method, path, body=body, raw=raw)
    return status, answer


def _customer_count() -> int:
    from neruba.dal.plans import PlansRepository
    from neruba.logic.catalog.entries import page

    return len(page(PlansRepository(get_settings().catalog_table), "customer", 100, None)["data"])


# ---------------------------------------------------------------- media types

REFUSED_TYPES = [
    "text/plain",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonp",
    "json",
]
ACCEPTED_TYPES = [
    "application/json",
    "APPLICATION/JSON",
    "application/json; charset=UTF-8",
    "Application/Json;charset=utf-8",
    "application/vnd.api+json",
    "application/merge-patch+json",
    None,
]


def test_the_body_routes_are_found() -> None:
    # THEN the template's body routes include every API function's writes and the webhook
    folders = {folder for folder, _, _ in BODY_ROUTES}
    assert {"admin_api", "ingest_api", "ledger_api", "billing_api", "stripe_webhook"} <= folders
    assert len(BODY_ROUTES) >= 15


@pytest.mark.parametrize(
    ("folder", "method", "path"), BODY_ROUTES, ids=[f"{m} {p}" for _, m, p in BODY_ROUTES]
)
def test_only_json_media_types_reach_a_body_route(
    aws: dict[str, str], folder: str, method: str, path: str
) -> None:
    module = importlib.import_module(f"functions.{folder}.app")
    scopes = None if folder == "stripe_webhook" else "ingest read admin"
    for content_type in REFUSED_TYPES:
        # GIVEN a body route and a JSON body declared as another media type
        event = api_event(method, path, body={}, scopes=scopes)
        # WHEN it is sent
        status, answer, _ = call(module.lambda_handler, _with_content_type(event, content_type))
        # THEN 415 unsupported_media_type in the one error shape, never a 500
        assert status == 415, (content_type, answer)
        assert answer["error"]["code"] == "unsupported_media_type"
        assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["request_id"]
    for content_type in ("APPLICATION/JSON", "application/vnd.api+json; charset=utf-8"):
        # WHEN a body (with an unknown field, so that no work runs) is declared as JSON in another spelling
        event = api_event(method, path, body={"unknown_field": 1}, scopes=scopes)
        status, answer, _ = call(module.lambda_handler, _with_content_type(event, content_type))
        # THEN the route itself answers (a 4xx about the body or a missing resource), never 415 or 5xx
        assert status != 415, (content_type, answer)
        assert status < 500 or answer["error"]["code"] == "stripe_not_configured", (content_type, answer)


@pytest.mark.parametrize("content_type", ACCEPTED_TYPES)
def test_a_customer_is_created_whatever_the_json_media_type_spelling(
    aws: dict[str, str], content_type: str | None
) -> None:
    # GIVEN a valid customer declared with an accepted JSON media type
    event = api_event(
        "POST", "/v1/customers", body={"external_id": "acme", "name": "Acme", "currency": "USD"}
    )
    from functions.admin_api.app import lambda_handler

    # WHEN it is posted THEN it is created
    status, answer, _ = call(lambda_handler, _with_content_type(event, content_type))
    assert status == 201, answer
    assert _customer_count() == 1


def test_a_refused_media_type_writes_nothing(aws: dict[str, str]) -> None:
    from functions.admin_api.app import lambda_handler

    # GIVEN a valid customer sent as text/plain
    event = api_event(
        "POST", "/v1/customers", body={"external_id": "acme", "name": "Acme", "currency": "USD"}
    )
    status, _, _ = call(lambda_handler, _with_content_type(event, "text/plain"))
    # THEN 415 and no customer
    assert status == 415
    assert _customer_count() == 0


def test_a_route_without_a_body_ignores_the_media_type(aws: dict[str, str]) -> None:
    # GIVEN a GET with a Content-Type header and no body
    event = api_event("GET", "/v1/customers", scopes="read")
    from functions.read_api.app import lambda_handler

    # WHEN it is sent THEN the list answers
    status, answer, _ = call(lambda_handler, _with_content_type(event, "text/plain"))
    assert status == 200, answer


# ---------------------------------------------------------------- nulls in updates


@pytest.mark.parametrize("field", ["name", "timezone", "metadata"])
def test_patch_customer_with_null_for_a_field_that_cannot_be_empty_is_422(
    aws: dict[str, str], field: str
) -> None:
    # GIVEN a customer
    assert (
        _admin("POST", "/v1/customers", {"external_id": "acme", "name": "Acme", "currency": "USD"})[0] == 201
    )
    # WHEN a PATCH sets a field that must always have a value to null
    status, answer = _admin("PATCH", "/v1/customers/acme", {field: None})
    # THEN 422 naming the field with the code null_not_allowed, and the customer is unchanged
    assert status == 422, answer
    assert answer["error"]["code"] == "validation_error"
    detail = answer["error"]["details"][0]
    assert (detail["param"], detail["code"]) == (field, "null_not_allowed"), detail
    assert field in detail["message"] and "null" in detail["message"]
    from functions.read_api.app import lambda_handler

    _, customer, _ = call(lambda_handler, api_event("GET", "/v1/customers/acme", scopes="read"))
    assert (customer["name"], customer["timezone"], customer["metadata"]) == ("Acme", "UTC", {})


@pytest.mark.parametrize("field", ["email", "stripe_customer_id"])
def test_patch_customer_with_null_clears_an_optional_field(aws: dict[str, str], field: str) -> None:
    # GIVEN a customer with an email and a Stripe id
    customer = {
        "external_id": "acme",
        "name": "Acme",
        "currency": "USD",
        "email": "a@b.c",
        "stripe_customer_id": "cus_1",
    }
    assert _admin("POST", "/v1/customers", customer)[0] == 201
    # WHEN a PATCH sets one of them to null THEN it is cleared
    status, answer = _admin("PATCH", "/v1/customers/acme", {field: None})
    assert status == 200 and answer[field] is None, answer


@pytest.mark.parametrize("field", ["threshold_minor", "amount_minor", "currency", "enabled"])
def test_put_auto_top_up_with_a_null_field_is_never_a_500(aws: dict[str, str], field: str) -> None:
    assert (
        _admin("POST", "/v1/customers", {"external_id": "acme", "name": "Acme", "currency": "USD"})[0] == 201
    )
    rule = {
        "threshold_minor": 100,
        "amount_minor": 1000,
        "currency": "USD",
        "enabled": True,
        "reason": "test",
    }
    rule[field] = None
    # WHEN the rule is put with one field null
    status, answer, _ = _send("ledger_api", "PUT", "/admin/customers/acme/auto-top-up", body=rule)
    # THEN a nullable field is accepted, any other is 422 null_not_allowed
    if field == "currency":
        assert status == 200, answer
    else:
        assert status == 422, answer
        assert answer["error"]["details"][0]["code"] == "null_not_allowed"


# ---------------------------------------------------------------- duplicate keys


@pytest.mark.parametrize(
    ("folder", "method", "path", "raw"),
    [
        (
            "admin_api",
            "POST",
            "/v1/customers",
            '{"external_id": "evil", "name": "A", "currency": "USD", "external_id": "acme"}',
        ),
        (
            "admin_api",
            "POST",
            "/v1/customers",
            '{"external_id": "acme", "name": "A", "currency": "USD", "metadata": {"k": "1", "k": "2"}}',
        ),
        (
            "ledger_api",
            "POST",
            "/admin/customers/acme/credit-grants",
            '{"amount_minor": 1, "currency": "USD", "reason": "x", "amount_minor": 900000}',
        ),
        (
            "ledger_api",
            "POST",
            "/admin/customers/acme/balance-adjustments",
            '{"amount_minor": 100, "amount_minor": -100}',
        ),
        (
            "ingest_api",
            "POST",
            "/v1/events",
            '{"events": [{"transaction_id": "t1", "customer_id": "acme", "code": "c", '
            '"properties": {"v": 1, "v": 2}}]}',
        ),
    ],
    ids=["customer id", "nested metadata", "credit grant amount", "adjustment amount", "event property"],
)
def test_a_duplicate_json_key_is_400_and_nothing_is_written(
    aws: dict[str, str], folder: str, method: str, path: str, raw: str
) -> None:
    # GIVEN a body naming the same key twice in one object (JSON parsers disagree on which one wins)
    # WHEN it is sent
    status, answer, _ = _send(folder, method, path, raw=raw)
    # THEN 400 duplicate_key naming the key, and nothing is stored or queued
    assert status == 400, answer
    assert answer["error"]["code"] == "duplicate_key"
    assert answer["error"]["param"] in {"external_id", "k", "amount_minor", "v"}
    assert _customer_count() == 0
    sqs = boto3.client("sqs")
    from tests.support.aws import queue_url

    counts = sqs.get_queue_attributes(
        QueueUrl=queue_url("IngestQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert counts["Attributes"]["ApproximateNumberOfMessages"] == "0"


# ---------------------------------------------------------------- validation messages


def _ingest_detail(event_fields: dict[str, Any]) -> dict[str, Any]:
    event = {"transaction_id": "t1", "customer_id": "acme", "code": "api_calls", **event_fields}
    status, answer, _ = _send("ingest_api", "POST", "/v1/events", raw=_dumps({"events": [event]}))
    assert status == 400, answer
    return answer["error"]["details"][0]  # type: ignore[no-any-return]


def _dumps(value: Any) -> str:
    from neruba import jsonutil

    return jsonutil.dumps(value)


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"properties": {"v": 10**126}}, "events.0.properties.v", "below 1E+126"),
        ({"properties": {"v": Decimal("1." + "1" * 40)}}, "events.0.properties.v", "digits"),
        ({"properties": {"v": [1]}}, "events.0.properties.v", "boolean, an integer, a number or a string"),
        ({"properties": {"v": None}}, "events.0.properties.v", "null"),
        ({"timestamp": "yesterday"}, "events.0.timestamp", "RFC 3339"),
        ({"colour": "blue"}, "events.0.colour", "not a known field"),
        ({"customer_id": 5}, "events.0.customer_id", "string"),
    ],
    ids=[
        "number too large to store",
        "too many digits",
        "a list",
        "null",
        "bad timestamp",
        "unknown field",
        "wrong type",
    ],
)
def test_event_errors_name_the_field_and_the_rule_in_our_words(
    aws: dict[str, str], fields: dict[str, Any], param: str, words: str
) -> None:
    # WHEN an event breaks one rule
    detail = _ingest_detail(fields)
    # THEN its error names the field and that rule, without the validator's wording
    assert detail["param"] == param, detail
    assert words in detail["message"], detail
    assert param.removeprefix("events.0.") in detail["message"], detail
    assert not PYDANTIC_WORDING.search(detail["message"]), detail


BAD_BODIES: list[tuple[str, str, str, Any]] = [
    (
        "admin_api",
        "POST",
        "/v1/customers",
        {"external_id": "acme", "name": "A", "currency": "USD", "colour": 1},
    ),
    ("admin_api", "POST", "/v1/customers", {"external_id": "acme", "currency": "usd"}),
    (
        "admin_api",
        "POST",
        "/v1/customers",
        {"external_id": "a c", "name": "", "currency": "USD", "metadata": []},
    ),
    ("admin_api", "POST", "/v1/meters", {"code": "m", "name": "M", "aggregation": "median"}),
    ("admin_api", "POST", "/v1/subscriptions", {"customer_id": "acme", "plan_code": "p", "start_at": "soon"}),
    (
        "ledger_api",
        "POST",
        "/admin/customers/acme/credit-grants",
        {"kind": "promotional", "reason": "r", "amount_minor": "a lot", "expires_at": "tomorrow"},
    ),
    (
        "ledger_api",
        "POST",
        "/admin/customers/acme/credit-grants",
        {"kind": "gift", "reason": "r", "amount_minor": 10**20, "currency": 5},
    ),
    (
        "ledger_api",
        "PUT",
        "/admin/customers/acme/auto-top-up",
        {"threshold_minor": -1, "amount_minor": True, "reason": "r"},
    ),
    ("billing_api", "POST", "/admin/billing-runs", {"at": "2026-13-45"}),
]


@pytest.mark.parametrize(
    ("folder", "method", "path", "body"),
    BAD_BODIES,
    ids=[f"{m} {p} {i}" for i, (_, m, p, _) in enumerate(BAD_BODIES)],
)
def test_schema_errors_name_the_field_and_the_rule_in_our_words(
    aws: dict[str, str], folder: str, method: str, path: str, body: Any
) -> None:
    # WHEN a body breaks its schema
    status, answer, _ = _send(folder, method, path, body=body)
    # THEN 422 with one detail per problem, each naming its field, none in the validator's wording
    assert status == 422, answer
    details = answer["error"]["details"]
    assert details
    for detail in details:
        assert detail["param"] and detail["code"], detail
        assert detail["message"].startswith(f"'{detail['param']}'"), detail
        assert not PYDANTIC_WORDING.search(detail["message"]), detail


# ---------------------------------------------------------------- methods


def test_a_method_a_known_path_does_not_serve_is_405_with_allow(aws: dict[str, str]) -> None:
    from functions.read_api.app import lambda_handler

    # WHEN a path the function serves is called with another method
    status, answer, headers = call(lambda_handler, api_event("DELETE", "/v1/customers", scopes="read"))
    # THEN 405 method_not_allowed with the methods it does serve
    assert status == 405, answer
    assert answer["error"]["code"] == "method_not_allowed"
    assert headers.get("Allow") == "GET"
    # AND an unknown path is still 404
    status, answer, _ = call(lambda_handler, api_event("GET", "/v1/nothing-here", scopes="read"))
    assert (status, answer["error"]["code"]) == (404, "route_not_found")


def test_every_template_path_answers_an_undeclared_method_405_with_all_its_methods(
    aws: dict[str, str],
) -> None:
    from functions.method_not_allowed.app import lambda_handler
    from neruba_tools.methods import refused_paths

    # GIVEN every API path whose ANY event reaches the 405 function, and the methods the template declares
    paths = refused_paths(load_template(ROOT / "template.yaml"))
    assert "/v1/events" in paths and "/admin/dlqs" in paths
    for path, methods in paths.items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        refused = next(m for m in ("PUT", "DELETE", "PATCH", "POST", "GET") if m not in methods)
        # WHEN a method the path does not serve reaches it (API Gateway sends only those, no key checked)
        event = api_event(
            refused, concrete, scopes=None, raw_body="<x/>", headers={"Content-Type": "text/xml"}
        )
        event["resource"] = event["requestContext"]["resourcePath"] = path
        status, answer, headers = call(lambda_handler, event)
        # THEN 405 in the one error shape, Allow listing every method of the path, the API-wide headers
        assert status == 405, (path, answer)
        assert answer["error"]["code"] == "method_not_allowed"
        assert (
            answer["error"]["request_id"] == headers["X-Request-Id"] == event["requestContext"]["requestId"]
        )
        assert headers["Allow"] == ", ".join(methods), path
        assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "GET"])
def test_head_and_options_reach_the_405_function_too(aws: dict[str, str], method: str) -> None:
    from functions.method_not_allowed.app import lambda_handler

    # WHEN ANY hands on a method no event of the path declares (only POST is)
    path = "/admin/credit-grants/{grant_id}/void"
    event = api_event(method, path.replace("{grant_id}", "cg_1"), scopes=None)
    event["resource"] = event["requestContext"]["resourcePath"] = path
    status, answer, headers = call(lambda_handler, event)
    # THEN it is 405 too, with Allow: POST
    assert (status, headers["Allow"]) == (405, "POST"), answer
    assert answer["error"]["code"] == "method_not_allowed"
