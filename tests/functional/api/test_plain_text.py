"""Free text a caller writes and the service stores and answers (names, descriptions, reasons, tickets)
is printable text on one line: a control character or a line break is refused up front with 422
``validation_error``, naming the field, as the webhook endpoints' description is (docs/limits.md, "Free
text"). Nothing is written: the same body with plain text is accepted."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.functional.api.test_access_control import ROUTES
from tests.support.api import api_event, call

FOLDER = {(method, path): folder for folder, method, path, _ in ROUTES}
WHY = {"reason": "a good reason", "ticket": "SUP-1"}
PLAN = {
    "name": "Pro",
    "currency": "USD",
    "interval": "month",
    "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.01"}],
}
CHARGE = {"description": "Setup", "amount_minor": 100, "currency": "USD", "mode": "invoice_now", **WHY}
SUB = "sub_" + "0" * 20
GRANT = "cg_" + "0" * 24
# (method, route template, concrete path, a valid body, the free-text fields of that body)
CASES: list[tuple[str, str, str, dict[str, Any], tuple[str, ...]]] = [
    (
        "POST",
        "/v1/customers",
        "/v1/customers",
        {"external_id": "x1", "name": "X", "currency": "USD"},
        ("name",),
    ),
    ("PATCH", "/v1/customers/{customer_id}", "/v1/customers/acme", {"name": "Acme"}, ("name",)),
    ("POST", "/v1/customers/{customer_id}/archive", "/v1/customers/acme/archive", WHY, ("reason", "ticket")),
    ("POST", "/v1/meters", "/v1/meters", {"code": "m1", "name": "M", "aggregation": "count"}, ("name",)),
    ("POST", "/v1/plans", "/v1/plans", {"code": "p1", **PLAN}, ("name",)),
    ("POST", "/v1/plans/{plan_code}/versions", "/v1/plans/p1/versions", PLAN, ("name",)),
    (
        "POST",
        "/v1/subscriptions",
        "/v1/subscriptions",
        {"customer_id": "acme", "plan_code": "p1", **WHY},
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/v1/subscriptions/{subscription_id}/cancel",
        f"/v1/subscriptions/{SUB}/cancel",
        WHY,
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/v1/subscriptions/{subscription_id}/change-plan",
        f"/v1/subscriptions/{SUB}/change-plan",
        {"plan_code": "p1", **WHY},
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/admin/customers/{customer_id}/credit-grants",
        "/admin/customers/acme/credit-grants",
        {"kind": "promotional", "amount_minor": 100, **WHY},
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/admin/credit-grants/{grant_id}/void",
        f"/admin/credit-grants/{GRANT}/void",
        WHY,
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/admin/billing-runs",
        "/admin/billing-runs",
        {"customer_id": "acme", **WHY},
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/admin/customers/{customer_id}/one-off-charges",
        "/admin/customers/acme/one-off-charges",
        CHARGE,
        ("description", "reason", "ticket"),
    ),
    (
        "POST",
        "/admin/customers/{customer_id}/one-off-charges/{charge_id}/void",
        "/admin/customers/acme/one-off-charges/ooc_" + "0" * 24 + "/void",
        WHY,
        ("reason", "ticket"),
    ),
    ("POST", "/admin/dlqs/{name}/redrive", "/admin/dlqs/ingest/redrive", WHY, ("reason", "ticket")),
    (
        "POST",
        "/admin/backfills",
        "/admin/backfills",
        {
            "customer_ids": ["acme"],
            "meter_codes": ["api_calls"],
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-02T00:00:00Z",
            **WHY,
        },
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/admin/backfills/{backfill_id}/commit",
        "/admin/backfills/bf_" + "0" * 24 + "/commit",
        WHY,
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/admin/backfills/{backfill_id}/cancel",
        "/admin/backfills/bf_" + "0" * 24 + "/cancel",
        WHY,
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/admin/stripe-events/{event_id}/replay",
        "/admin/stripe-events/evt_1/replay",
        WHY,
        ("reason", "ticket"),
    ),
]
BAD = ["a\u0000b", "a\nb", "tab\there", "a\x1bb", "a\x7fb", "a\u2028b"]


def _send(method: str, template: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
    module = importlib.import_module(f"functions.{FOLDER[(method, template)]}.app")
    event = api_event(method, path, body=body, headers={"Idempotency-Key": "plain-text-1"})
    status, answer, _ = call(module.lambda_handler, event)
    return status, answer


@pytest.mark.parametrize(
    ("method", "template", "path", "body", "field"),
    [(m, t, p, b, f) for m, t, p, b, fields in CASES for f in fields],
    ids=[f"{m} {t} {f}" for m, t, _, _, fields in CASES for f in fields],
)
def test_free_text_with_a_control_character_is_refused(
    aws: dict[str, str], method: str, template: str, path: str, body: dict[str, Any], field: str
) -> None:
    for text in BAD:
        # WHEN the field holds a control character or a line break
        status, answer = _send(method, template, path, {**body, field: text})
        # THEN 422 validation_error names the field and the rule, in our words
        assert status == 422, (text, answer)
        assert answer["error"]["code"] == "validation_error"
        [detail] = answer["error"]["details"]
        assert detail["param"] == field, detail
        assert "control character" in detail["message"], detail
    # AND the same body with plain text (accents and symbols included) passes validation
    status, answer = _send(method, template, path, {**body, field: "fine é ✓ X"})
    assert status != 422, answer


def test_a_name_stored_before_the_rule_still_reads_back_and_updates(aws: dict[str, str]) -> None:
    from neruba.dal.catalog import CatalogRepository
    from neruba.models.catalog import Customer
    from neruba.settings import get_settings

    # GIVEN a customer whose name was stored with a line break (before names refused one)
    old = Customer.model_construct(
        external_id="acme", name="Acme\nLtd", currency="USD", timezone="UTC", metadata={}
    )
    CatalogRepository(get_settings().catalog_table).create_customer(old)
    # WHEN it is read and another field is changed
    status, shown = _send("GET", "/v1/customers/{customer_id}", "/v1/customers/acme", None)
    # THEN both answer (the stored text as it was written), never a 500
    assert (status, shown["name"]) == (200, "Acme\nLtd"), shown
    status, changed = _send("PATCH", "/v1/customers/{customer_id}", "/v1/customers/acme", {"email": "b@a.co"})
    assert (status, changed["name"], changed["email"]) == (200, "Acme\nLtd", "b@a.co"), changed


@pytest.mark.parametrize(
    ("method", "template", "path", "body", "field"),
    [(m, t, p, b, f) for m, t, p, b, fields in CASES for f in fields if f != "description"],
    ids=[f"{m} {t} {f}" for m, t, _, _, fields in CASES for f in fields if f != "description"],
)
def test_free_text_too_long_is_refused_as_text(
    aws: dict[str, str], method: str, template: str, path: str, body: dict[str, Any], field: str
) -> None:
    # WHEN the field is longer than its bound (every bound here is at most 500 characters)
    status, answer = _send(method, template, path, {**body, field: "x" * 501})
    # THEN the refusal speaks of characters, as for any text (the character check comes after the length)
    assert status == 422, answer
    [detail] = answer["error"]["details"]
    assert (detail["param"], detail["code"]) == (field, "string_too_long"), detail
    assert "character(s)" in detail["message"], detail


def test_a_customer_name_with_a_right_to_left_override_is_refused(aws: dict[str, str]) -> None:
    # WHEN a customer is created with a name holding U+202E (it would show reversed text)
    body = {"external_id": "spoof", "name": "invoice\u202efdp.exe", "currency": "USD"}
    status, answer = _send("POST", "/v1/customers", "/v1/customers", body)
    # THEN 422 names the field, and nothing is written
    assert status == 422, answer
    [detail] = answer["error"]["details"]
    assert detail["param"] == "name", detail
    status, _ = _send("GET", "/v1/customers/{customer_id}", "/v1/customers/spoof", None)
    assert status == 404


@pytest.mark.parametrize("template", ["/admin/dlqs/{name}/redrive", "/admin/stripe-events/{event_id}/replay"])
def test_an_idempotency_key_with_a_control_character_is_refused(aws: dict[str, str], template: str) -> None:
    [(method, _, path, body, _)] = [case for case in CASES if case[1] == template]
    module = importlib.import_module(f"functions.{FOLDER[(method, template)]}.app")
    event = api_event(method, path, body=body, headers={"Idempotency-Key": "a\x07b"})
    status, answer, _ = call(module.lambda_handler, event)
    assert status == 422, answer
    assert answer["error"]["code"] == "validation_error"
