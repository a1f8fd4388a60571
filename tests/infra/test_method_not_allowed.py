"""Every API path answers a method it does not serve with 405 and ``Allow`` (docs/api.md): API Gateway
routes by path and method, so each path has an ANY event; its declared methods take precedence."""

from __future__ import annotations

import json
from typing import Any

import pytest

from neruba_tools.local.gateway import Gateway
from neruba_tools.local.template import Template
from neruba_tools.methods import ALLOWED_FILE, FUNCTION, allowed_methods, any_routes, refused_paths
from tests.infra.conftest import ROOT

pytestmark = pytest.mark.infra


def test_every_api_path_has_an_any_event(source: dict[str, Any]) -> None:
    # GIVEN every path some Api event declares
    paths = set(allowed_methods(source))
    assert "/v1/events" in paths and "/console" in paths
    # THEN each also has an ANY event, so no method is left to API Gateway's own 403
    assert paths - set(any_routes(source)) == set()


def test_any_events_skip_the_authorizer(source: dict[str, Any]) -> None:
    # a wrong method is refused before the key is checked: Allow reveals only what docs/openapi.json says
    events = source["Resources"][FUNCTION]["Properties"]["Events"]
    assert events and all(e["Properties"]["Auth"] == {"Authorizer": "NONE"} for e in events.values())
    assert all(e["Properties"]["Method"] == "ANY" for e in events.values())


def test_the_committed_allowed_methods_are_the_templates(source: dict[str, Any]) -> None:
    committed = json.loads((ROOT / ALLOWED_FILE).read_text(encoding="utf-8"))
    assert committed == refused_paths(source), (
        "run: neruba allowed-methods > functions/method_not_allowed/allowed.json"
    )


def test_a_path_served_by_two_functions_allows_both_methods() -> None:
    doc = {
        "Resources": {
            "Read": _function({"G": ("/v1/x/{id}", "GET")}),
            "Admin": _function({"P": ("/v1/x/{id}", "POST"), "D": ("/v1/x/{id}", "delete")}),
            FUNCTION: _function({"A": ("/v1/x/{id}", "ANY")}),
            "Console": _function({"C": ("/console", "ANY")}),
        }
    }
    assert refused_paths(doc) == {"/v1/x/{id}": ["DELETE", "GET", "POST"]}


def _function(events: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Events": {
                name: {"Type": "Api", "Properties": {"Path": path, "Method": method}}
                for name, (path, method) in events.items()
            }
        },
    }


def test_the_local_gateway_prefers_a_declared_method_over_any_as_api_gateway_does() -> None:
    # GIVEN a template listing ANY before GET on one resource, and a literal resource beside a {param} one
    doc = {
        "Resources": {
            "Refuse": _function({"A": ("/v1/x/{id}", "ANY"), "L": ("/v1/x/list", "ANY")}),
            "Read": _function({"G": ("/v1/x/{id}", "GET"), "P": ("/v1/x/{id}", "POST")}),
        }
    }
    gateway = Gateway(Template(doc), invoke=lambda fn, event: None)

    def target(method: str, path: str) -> str | None:
        found = gateway.match(method, path)
        return None if found is None else found[0].function

    # THEN the declared method reaches its function, any other the ANY event
    assert target("GET", "/v1/x/7") == "Read"
    assert target("PUT", "/v1/x/7") == "Refuse"
    # AND the most specific resource is chosen first: POST on the literal resource does not fall back to
    # the {id} resource's POST
    assert target("POST", "/v1/x/list") == "Refuse"


def test_a_resource_without_the_method_or_any_is_not_routed() -> None:
    # GIVEN a literal resource serving GET beside a {param} resource serving POST
    doc = {"Resources": {"Read": _function({"P": ("/v1/x/{id}", "POST"), "L": ("/v1/x/list", "GET")})}}
    gateway = Gateway(Template(doc), invoke=lambda fn, event: None)
    # THEN POST on the literal resource is not routed to the other resource (API Gateway answers 403)
    assert gateway.match("POST", "/v1/x/list") is None
    assert gateway.match("GET", "/v1/x/list") is not None
