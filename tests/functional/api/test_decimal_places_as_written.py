"""Decimal places are counted as written, trailing zeros included, on every decimal the API takes with a
documented maximum (docs/api.md, "Decimal places are counted as written").

Found over HTTP: a hard cap sent as ``"1.0000000"`` (a seventh decimal, a zero) was accepted and stored as
``"1"`` though more than 6 decimals is documented as 422; ``"1.0000001"`` was refused. The same held on
every decimal field (prices, quantities, rates, percentages, caps, levels, grants): the check counted the
value's decimals once trailing zeros were dropped. Each route below refuses one zero too many with 422
``validation_error`` naming the field, stores nothing, and takes the same number at the maximum."""

from __future__ import annotations

import importlib
import itertools
from typing import Any

import pytest

from tests.functional.api.test_access_control import ROUTES
from tests.support.api import api_event, call

FOLDER = {(method, path): folder for folder, method, path, _ in ROUTES}
KEYS = itertools.count()
WHY = {"reason": "a good reason", "ticket": "SUP-1"}
INVOICE = "in_" + "0" * 24


def _send(method: str, template: str, path: str, body: dict[str, Any], **params: str) -> tuple[int, Any]:
    module = importlib.import_module(f"functions.{FOLDER[(method, template)]}.app")
    headers = {"Idempotency-Key": f"places-{next(KEYS)}"}
    event = api_event(method, path, body=body, headers=headers, path_parameters=params or None)
    status, answer, _ = call(module.lambda_handler, event)
    return status, answer


def _fill(value: Any, text: str) -> Any:
    if value == "X":
        return text
    if isinstance(value, dict):
        return {k: _fill(v, text) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, text) for v in value]
    return value


def _plan(charge: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"code": "p1", "name": "P", "currency": "USD", "interval": "month", "charges": [charge], **extra}


PER_UNIT = {"meter_code": "tokens", "model": "per_unit", "unit_price": "1"}
LIMITS = ("PUT", "/v1/customers/{customer_id}/limits", "/v1/customers/acme/limits")
PLANS = ("POST", "/v1/plans", "/v1/plans")
ONE_OFF = ("POST", "/admin/customers/{customer_id}/one-off-charges", "/admin/customers/acme/one-off-charges")
CHARGE = {"description": "Setup", "currency": "USD", "mode": "next_invoice", **WHY}
PERCENTAGE = {"meter_code": "tokens", "model": "percentage"}
METERED = {"feature": "c", "kind": "metered", "meter_code": "api_calls", "limit": "X"}
# (label, (method, template, path), body with the decimal as "X", the param named, its decimal places)
CASES: list[tuple[str, tuple[str, str, str], dict[str, Any], str, int]] = [
    ("hard_cap", LIMITS, {"meters": [{"meter_code": "api_calls", "hard_cap": "X"}]}, "meters.0.hard_cap", 6),
    ("soft_cap", LIMITS, {"meters": [{"meter_code": "api_calls", "soft_cap": "X"}]}, "meters.0.soft_cap", 6),
    ("alert", LIMITS, {"meters": [{"meter_code": "api_calls", "alerts": ["X"]}]}, "meters.0.alerts.0", 6),
    ("feature limit", LIMITS, {"features": [METERED]}, "features.0.limit", 6),
    ("unit_price", PLANS, _plan({**PER_UNIT, "unit_price": "X"}), "charges.0.unit_price", 12),
    ("free_units", PLANS, _plan({**PER_UNIT, "free_units": "X"}), "charges.0.free_units", 6),
    (
        "multiplier",
        PLANS,
        _plan({"meter_code": "tokens", "model": "dynamic", "multiplier": "X"}),
        "charges.0.multiplier",
        12,
    ),
    (
        "fixed_fee",
        PLANS,
        _plan({"meter_code": "tokens", "model": "percentage", "rate": "1", "fixed_fee": "X"}),
        "charges.0.fixed_fee",
        12,
    ),
    (
        "tier up_to",
        PLANS,
        _plan(
            {
                "meter_code": "tokens",
                "model": "graduated",
                "tiers": [{"up_to": "X", "unit_price": "1"}, {"up_to": None, "unit_price": "0.5"}],
            }
        ),
        "charges.0.tiers.0.up_to",
        6,
    ),
    ("rate", PLANS, _plan({**PERCENTAGE, "rate": "X"}), "charges.0.rate", 10),
    (
        "conversion_rate",
        PLANS,
        _plan({**PER_UNIT, "pricing_unit": {"code": "cr", "conversion_rate": "X"}}),
        "charges.0.pricing_unit.conversion_rate",
        12,
    ),
    (
        "plan default hard_cap",
        PLANS,
        _plan(PER_UNIT, defaults={"meters": [{"meter_code": "tokens", "hard_cap": "X"}]}),
        "defaults.meters.0.hard_cap",
        6,
    ),
    (
        "percent_off",
        ("POST", "/admin/coupons", "/admin/coupons"),
        {"name": "Launch", "percent_off": "X", "duration": "once", **WHY},
        "percent_off",
        6,
    ),
    (
        "tax percentage",
        ("POST", "/admin/tax-rates", "/admin/tax-rates"),
        {"display_name": "VAT", "percentage": "X", "inclusive": False, "country": "DE", **WHY},
        "percentage",
        6,
    ),
    (
        "one-off quantity",
        ONE_OFF,
        {**CHARGE, "quantity": "X", "unit_price": "2"},
        "quantity",
        6,
    ),
    (
        "one-off unit_price",
        ONE_OFF,
        {**CHARGE, "quantity": "2", "unit_price": "X"},
        "unit_price",
        12,
    ),
    (
        "credit note quantity",
        ("POST", "/admin/invoices/{invoice_id}/credit-notes", f"/admin/invoices/{INVOICE}/credit-notes"),
        {"lines": [{"line_id": "l1", "quantity": "X"}], **WHY},
        "lines.0.quantity",
        6,
    ),
]  # fmt: skip


def _params(template: str, path: str) -> dict[str, str]:
    names = [part[1:-1] for part in template.split("/") if part.startswith("{")]
    values = [p for t, p in zip(template.split("/"), path.split("/"), strict=True) if t.startswith("{")]
    return dict(zip(names, values, strict=True))


@pytest.mark.parametrize(("label", "route", "body", "param", "places"), CASES, ids=[c[0] for c in CASES])
def test_a_trailing_zero_past_the_maximum_counts_as_a_decimal_place(
    catalog: Any, label: str, route: tuple[str, str, str], body: dict[str, Any], param: str, places: int
) -> None:
    method, template, path = route
    params = _params(template, path)
    # WHEN the decimal is 1 written with one zero more than the field's decimal places
    status, answer = _send(method, template, path, _fill(body, "1." + "0" * (places + 1)), **params)
    # THEN it is refused as too many decimal places, naming the field, as a non-zero last digit is
    assert status == 422, answer
    assert answer["error"]["code"] == "validation_error"
    [detail] = [d for d in answer["error"]["details"] if d["param"] == param]
    assert detail["message"].endswith(f"must have at most {places} decimal places."), detail
    nonzero = _send(method, template, path, _fill(body, "1." + "0" * places + "1"), **params)
    assert nonzero[0] == 422 and param in [d["param"] for d in nonzero[1]["error"]["details"]], nonzero
    # AND at the maximum (zeros included) it passes validation
    status, answer = _send(method, template, path, _fill(body, "1." + "0" * places), **params)
    assert status != 422, answer


def test_a_cap_at_the_maximum_is_stored_in_canonical_text_and_nothing_is_stored_after_a_refusal(
    catalog: Any,
) -> None:
    from tests.functional.api.test_limits_api import _get

    method, template, path = LIMITS
    body = {"meters": [{"meter_code": "api_calls", "hard_cap": "X", "alerts": ["X"]}]}
    assert _send(method, template, path, _fill(body, "1.0000000"), customer_id="acme")[0] == 422
    assert _get("/v1/customers/acme/limits", customer_id="acme")[1]["meters"] == []
    status, answer = _send(method, template, path, _fill(body, "1.000000"), customer_id="acme")
    assert status == 200, answer
    [meter] = _get("/v1/customers/acme/limits", customer_id="acme")[1]["meters"]
    assert (meter["hard_cap"], meter["alerts"]) == ("1", ["1"])
