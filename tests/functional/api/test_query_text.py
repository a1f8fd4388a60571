"""What a query parameter's text must look like, on every route that takes it.

A cursor is opaque: the empty text, a blank, a text far longer than any cursor or an id of the wrong shape
is not one, and every list route answers it 400 ``invalid_cursor`` (``neruba.api.params.Cursor``), never
a first page and never a 422. An integer parameter is plain ASCII digits (``neruba.models.fields.
PlainInteger``): a space, a sign, an underscore, a fraction or another script's digits are 422 on that
parameter, on every route. A list that takes several filters applies them all or refuses the mix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.functional.api.test_limits import LIST_ROUTES, _list

ROOT = Path(__file__).resolve().parents[3]

NOT_CURSORS = {
    "empty": "",
    "blank": " ",
    "3000 characters": "c" * 3000,
    "2049 characters": "c" * 2049,
}


@pytest.mark.parametrize(
    ("folder", "path", "query"), [row[:3] for row in LIST_ROUTES], ids=[row[1] for row in LIST_ROUTES]
)
def test_a_text_that_is_not_a_cursor_is_400_invalid_cursor(
    catalog: Any, folder: str, path: str, query: dict[str, str]
) -> None:
    for name, cursor in NOT_CURSORS.items():  # one catalog for every text: each is refused, nothing stored
        # WHEN a list route gets a starting_after that cannot be a cursor it handed out
        got, body = _list(folder, path, {**query, "starting_after": cursor})
        # THEN 400 invalid_cursor on starting_after, as for any other forged cursor
        assert (got, body["error"]["code"]) == (400, "invalid_cursor"), (name, body)
        assert body["error"]["param"] == "starting_after", (name, body)


def _integer_parameters() -> set[tuple[str, str, str]]:
    spec = json.loads((ROOT / "docs" / "openapi.json").read_text())
    found = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = json.dumps(parameter["schema"])
                if '"integer"' in schema or '"number"' in schema:
                    found.add((method, path, parameter["name"]))
    return found


# (folder, path as called, query the route needs, parameter under test)
INTEGER_CASES: list[tuple[str, str, dict[str, str], str]] = [
    *[(folder, path, query, "limit") for folder, path, query, _ in LIST_ROUTES],
    ("billing_api", "/admin/discounts", {"plan_code": "basic"}, "plan_version"),
]


def test_every_integer_parameter_is_covered() -> None:
    # GIVEN every integer or number parameter the reference documents
    documented = _integer_parameters()
    # THEN each is in the table below (the one path integer, a plan version, is tested apart)
    covered = {("get", path.replace("acme", "{customer_id}"), name) for _, path, _, name in INTEGER_CASES}
    covered.add(("get", "/v1/plans/{plan_code}/versions/{version}", "version"))
    assert documented == covered


@pytest.mark.parametrize(
    ("folder", "path", "query", "name"),
    INTEGER_CASES,
    ids=[f"{path} {name}" for _, path, _, name in INTEGER_CASES],
)
def test_an_integer_parameter_is_plain_digits(
    catalog: Any, folder: str, path: str, query: dict[str, str], name: str
) -> None:
    # WHEN an integer parameter is written with a space, a sign, an underscore, a fraction or other digits
    # (one catalog for every text: each request is refused and stores nothing)
    for text in (" 5", "5 ", "+5", "5_0", "5.0", "\u0665", "0x5", "5e0"):
        got, body = _list(folder, path, {**query, name: text})
        # THEN 422 validation_error naming the parameter, with our rule in the message
        assert (got, body["error"]["code"]) == (422, "validation_error"), (text, body)
        detail = next(d for d in body["error"]["details"] if d["param"] == f"query.{name}")
        assert "digits" in detail["message"], (text, detail)


@pytest.mark.parametrize(
    ("folder", "path", "query"), [row[:3] for row in LIST_ROUTES], ids=[row[1] for row in LIST_ROUTES]
)
def test_plain_digits_still_read(catalog: Any, folder: str, path: str, query: dict[str, str]) -> None:
    got, body = _list(folder, path, {**query, "limit": "05"})
    assert got == 200 and body["object"] == "list", body


@pytest.mark.parametrize("text", [" 1", "+1", "1.0"])
def test_a_plan_version_path_number_is_plain_digits(catalog: Any, text: str) -> None:
    from functions.read_api.app import lambda_handler
    from tests.support.api import api_event, call

    event = api_event(
        "GET",
        f"/v1/plans/basic/versions/{text}",
        scopes="read",
        path_parameters={"plan_code": "basic", "version": text},
    )
    event["resource"] = "/v1/plans/{plan_code}/versions/{version}"
    got, body, _ = call(lambda_handler, event)
    assert (got, body["error"]["code"]) == (422, "validation_error"), body


@pytest.mark.parametrize(
    "query",
    [
        {"customer_id": "acme", "plan_code": "basic"},
        {"customer_id": "acme", "plan_version": "1"},
        {"customer_id": "acme", "plan_code": "basic", "plan_version": "1"},
    ],
    ids=["customer and plan", "customer and version", "customer, plan and version"],
)
def test_discounts_of_a_customer_and_a_plan_at_once_are_refused(catalog: Any, query: dict[str, str]) -> None:
    # WHEN the discounts are listed by a customer and a plan version at once
    got, body = _list("billing_api", "/admin/discounts", query)
    # THEN 400 conflicting_filters (two lists: one is asked for), not the customer's list alone
    assert (got, body["error"]["code"]) == (400, "conflicting_filters"), body
    assert body["error"]["param"] in {"plan_code", "plan_version"}, body


@pytest.mark.parametrize(
    ("folder", "path", "query", "name"),
    [
        ("billing_api", "/admin/discounts", {"customer_id": ""}, "customer_id"),
        ("billing_api", "/admin/discounts", {"plan_code": "", "plan_version": "1"}, "plan_code"),
        ("stripe_admin_api", "/admin/stripe-events", {"type": ""}, "type"),
    ],
    ids=["discounts customer_id", "discounts plan_code", "stripe-events type"],
)
def test_an_empty_filter_is_refused_not_read_as_no_filter(
    catalog: Any, folder: str, path: str, query: dict[str, str], name: str
) -> None:
    # WHEN a list filter is given as the empty text
    got, body = _list(folder, path, query)
    # THEN 422 on that filter (an empty filter is not "every item", nor an empty customer's list)
    assert (got, body["error"]["code"]) == (422, "validation_error"), body
    assert f"query.{name}" in [d["param"] for d in body["error"]["details"]], body
