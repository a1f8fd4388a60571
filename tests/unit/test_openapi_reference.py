"""docs/openapi.json is the API reference: it must match what the code generates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neruba_tools.cli import openapi_text

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_reference_is_current() -> None:
    # THEN regenerate with `neruba openapi > docs/openapi.json` when this fails
    assert REFERENCE.read_text() == openapi_text()


def test_every_route_documents_its_errors_and_security() -> None:

    spec = json.loads(openapi_text())
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path in ("/health", "/ready"):
                continue
            if path == "/webhooks/stripe":  # authenticated by the Stripe-Signature header, not an API key
                assert operation.get("security") is None and "400" in operation["responses"]
                continue
            assert operation.get("security") == [{"bearerAuth": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def _schema(response: dict[str, Any]) -> dict[str, Any] | None:
    return ((response.get("content") or {}).get("application/json") or {}).get("schema")


def test_the_reference_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate

    spec = json.loads(openapi_text())
    assert spec["openapi"].startswith("3.1")
    validate(spec, cls=OpenAPIV31SpecValidator)  # raises on the first error


def test_no_success_answer_is_a_bare_string() -> None:
    # GIVEN the reference THEN every 2xx answer is a documented model (a $ref), never "string" or untyped
    spec = json.loads(openapi_text())
    loose = []
    for method, path, operation in _operations(spec):
        success = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        assert len(success) == 1, (method, path, sorted(success))
        for code, response in success.items():
            schema = _schema(response)
            if schema is None or "$ref" not in schema:
                loose.append(f"{method} {path} {code}: {schema}")
    assert not loose, "\n".join(loose)


def test_every_error_answer_is_the_one_error_component() -> None:
    spec = json.loads(openapi_text())
    error = spec["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
    inner = spec["components"]["schemas"]["ErrorObject"]
    assert set(inner["required"]) == {"type", "code", "message", "request_id"}
    assert {"param", "details"} <= set(inner["properties"])
    others = [
        f"{method} {path} {code}: {_schema(response)}"
        for method, path, operation in _operations(spec)
        for code, response in operation["responses"].items()
        if code[0] in "45" and _schema(response) != {"$ref": "#/components/schemas/ErrorResponse"}
    ]
    assert not others, "\n".join(others)
    # the generator's own error shapes are gone from the published document
    assert not {"HTTPValidationError", "ValidationError"} & set(spec["components"]["schemas"])


def test_every_error_code_the_code_raises_is_listed() -> None:
    # GIVEN every code= literal in the package THEN the documented code list names it
    import re

    from neruba.models.errors import ERROR_CODES

    package = REFERENCE.parents[1] / "layers" / "neruba" / "neruba"
    raised = set()
    for source in package.rglob("*.py"):
        text = source.read_text()
        raised |= set(re.findall(r'code="([a-z_]+)"', text))
        raised |= set(re.findall(r'default_code = "([a-z_]+)"', text))
    per_item = {"api_calls"}  # a meter code in an example, not an error code
    missing = sorted(raised - set(ERROR_CODES) - per_item)
    assert not missing, missing


def test_the_api_page_lists_every_error_code() -> None:
    from neruba.models.errors import ERROR_CODES

    page = (REFERENCE.parent / "api.md").read_text()
    assert not [code for code in ERROR_CODES if f"`{code}`" not in page]


def test_every_example_fits_its_own_schema() -> None:
    # GIVEN each component with examples THEN each example validates against the component (a request
    # example is a body the API accepts; an answer example is one the API could give)
    from jsonschema import Draft202012Validator

    from neruba.models.catalog import Customer, Meter, PlanCreate, SubscriptionCreate
    from neruba.models.errors import ErrorResponse
    from neruba.models.events import IngestRequest, IngestResponse

    spec = json.loads(openapi_text())
    schemas = spec["components"]["schemas"]
    checked = 0
    for name, schema in schemas.items():
        for example in schema.get("examples") or []:
            validator = Draft202012Validator({**schema, "components": spec["components"]})
            assert not list(validator.iter_errors(example)), (name, example)
            checked += 1
    for model in (
        Customer,
        Meter,
        PlanCreate,
        SubscriptionCreate,
        IngestRequest,
        IngestResponse,
        ErrorResponse,
    ):
        for example in model.model_json_schema()["examples"]:
            model.model_validate(example)  # the pydantic rules too (currencies, one charge per meter, ...)
    assert checked >= 7


def test_the_answer_check_of_the_api_tests_refuses_shapes_the_reference_does_not_describe() -> None:
    # GIVEN the check every functional API test applies to the answers it receives
    from tests.support.contract import answer_problems

    customer = {
        "external_id": "acme",
        "name": "Acme",
        "email": None,
        "currency": "USD",
        "timezone": "UTC",
        "stripe_customer_id": None,
        "metadata": {},
        "created_at": "2026-01-31T12:00:00Z",
    }
    error = {
        "type": "invalid_request_error",
        "code": "customer_not_found",
        "message": "No.",
        "request_id": "r",
    }
    page = {"object": "list", "data": [customer], "has_more": False, "next_cursor": None}
    # THEN what the document describes passes
    assert answer_problems("GET", "/v1/customers/acme", 200, customer) == []
    assert answer_problems("GET", "/v1/customers", 200, page) == []
    assert answer_problems("GET", "/v1/customers/acme", 404, {"error": error}) == []
    # AND a missing field, a field of the wrong type, an unknown field, a list without its cursor, an
    # undocumented status, an error without its request id, and a bare string all fail
    assert answer_problems("GET", "/v1/customers/acme", 200, {**customer, "currency": None})
    assert answer_problems(
        "GET", "/v1/customers/acme", 200, {k: v for k, v in customer.items() if k != "name"}
    )
    assert answer_problems("GET", "/v1/customers/acme", 200, {**customer, "surprise": 1})
    assert answer_problems("GET", "/v1/customers", 200, {k: v for k, v in page.items() if k != "next_cursor"})
    assert answer_problems("GET", "/v1/customers/acme", 201, customer)
    assert answer_problems(
        "GET", "/v1/customers/acme", 404, {"error": {k: v for k, v in error.items() if k != "request_id"}}
    )
    assert answer_problems("GET", "/v1/customers/acme", 200, "ok")
    # AND a path no operation serves answers the error shape only
    assert answer_problems("GET", "/nowhere", 404, {"error": error}) == []
    assert answer_problems("GET", "/nowhere", 200, {})
