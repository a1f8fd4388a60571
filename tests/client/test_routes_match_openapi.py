"""Every route builder of the client against docs/openapi.json: the operation exists, answers the
model the client parses, and takes exactly the parameters the builder offers; every operation of the
document has a builder."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from neruba_client.routes import ROUTES, RouteSpec
from tests.client.openapi_shapes import load_document

DOCUMENT = load_document()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
# operations the client leaves out on purpose: Stripe calls this one, not integrators
NOT_IN_CLIENT = {("POST", "/webhooks/stripe")}


def _operation(spec: RouteSpec) -> dict[str, Any]:
    path = DOCUMENT["paths"].get(spec.path)
    assert path is not None, f"docs/openapi.json has no path {spec.path}"
    operation = path.get(spec.method.lower())
    assert operation is not None, f"docs/openapi.json has no {spec.method} {spec.path}"
    return dict(operation)


def _inputs(spec: RouteSpec) -> tuple[set[str], set[str]]:
    """The builder's inputs besides path parameters and the idempotency key: (all, required)."""
    import neruba_client.routes as routes

    signature = inspect.signature(getattr(routes, spec.name))
    path_params = set(re.findall(r"{(\w+)}", spec.path))
    names, required = set(), set()
    for name, parameter in signature.parameters.items():
        if name in path_params or name == "idempotency_key":
            continue
        names.add(name.rstrip("_"))
        if parameter.default is inspect.Parameter.empty:
            required.add(name.rstrip("_"))
    return names, required


@pytest.mark.parametrize("spec", sorted(ROUTES.values(), key=lambda s: s.name), ids=lambda s: s.name)
def test_builder_matches_its_operation(spec: RouteSpec) -> None:
    operation = _operation(spec)
    successes = {k: v for k, v in operation["responses"].items() if k.startswith("2")}
    assert len(successes) == 1
    (answer,) = successes.values()
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    assert ref.rsplit("/", 1)[-1] == spec.response.__name__

    parameters = operation.get("parameters", [])
    documented_path = {p["name"] for p in parameters if p["in"] == "path"}
    assert documented_path == set(re.findall(r"{(\w+)}", spec.path))
    headers = {p["name"].lower() for p in parameters if p["in"] == "header"}
    assert spec.idempotency_key == ("idempotency-key" in headers)

    names, required = _inputs(spec)
    if spec.body is not None:
        body_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body_ref.rsplit("/", 1)[-1] == spec.body
        if spec.name == "send_events":  # built from models.Event, checked by the models test
            return
        schema = SCHEMAS[spec.body]
        assert names == set(schema["properties"]), "body fields differ"
        assert required == set(schema.get("required", [])), "required body fields differ"
    else:
        assert "requestBody" not in operation
        query = {p["name"]: p for p in parameters if p["in"] == "query"}
        assert names == set(query), "query parameters differ"
        assert required == {n for n, p in query.items() if p.get("required")}, "required query differ"
    # every answer in the list envelope is read through a paginator, and only those
    envelope = {"data", "has_more", "next_cursor"} <= set(
        SCHEMAS[spec.response.__name__].get("properties", {})
    )
    assert spec.listing == envelope


def test_every_operation_of_the_document_has_a_builder() -> None:
    built = {(spec.method, spec.path) for spec in ROUTES.values()}
    documented = {
        (method.upper(), path)
        for path, operations in DOCUMENT["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    missing = documented - built - NOT_IN_CLIENT
    assert not missing, (
        "routes of docs/openapi.json the Python client lacks (add a builder in "
        f"clients/python/neruba_client/routes.py and a line in resources.py): {sorted(missing)}"
    )
