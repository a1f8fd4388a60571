"""Every decimal and whole number a plan takes is written one way: a plain decimal as text (ASCII digits,
optional sign and fraction) or a JSON number, and a JSON integer where a count is asked. Other scripts'
digits, spaces, `_`, exponents in text, `+`, `.5`, `5.` and booleans are refused with 422 naming the field,
and nothing is stored (docs/limits.md, "How caps and values are written")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Api = Callable[..., tuple[int, Any]]

TEXTS = [
    "\u0661\u0662",
    "\uff11\uff12",
    "\U0001d7d9",
    " 1",
    "1 ",
    "1\u00a0",
    "1_000",
    "1e2",
    "1E-6",
    "+1",
    "1.",
    ".5",
]


def _plan(charge: dict[str, Any]) -> dict[str, Any]:
    return {"code": "p", "name": "P", "currency": "USD", "interval": "month", "charges": [charge]}


def _cases() -> list[tuple[str, dict[str, Any], str]]:
    """(label, charge with a placeholder "X", the param the refusal must name)."""
    tiers_pct = [{"up_to": "10", "rate": "X"}, {"up_to": None, "rate": "1"}]
    return [
        ("free_units", {"meter_code": "amt", "model": "per_unit", "unit_price": "1", "free_units": "X"},
         "charges.0.free_units"),
        ("rate", {"meter_code": "amt", "model": "percentage", "rate": "X"}, "charges.0.rate"),
        ("tier rate", {"meter_code": "amt", "model": "graduated_percentage", "tiers": tiers_pct},
         "charges.0.tiers.0.rate"),
        ("conversion_rate", {"meter_code": "amt", "model": "per_unit", "unit_price": "1",
                             "pricing_unit": {"code": "cr", "conversion_rate": "X"}},
         "charges.0.pricing_unit.conversion_rate"),
        ("filter free_units", {"meter_code": "amt", "model": "per_unit", "unit_price": "1",
                               "filters": [{"values": {"kind": ["a"]}, "unit_price": "1",
                                            "free_units": "X"}]},
         "charges.0.filters.0.free_units"),
        ("filter rate", {"meter_code": "amt", "model": "percentage", "rate": "1",
                         "filters": [{"values": {"kind": ["a"]}, "rate": "X"}]},
         "charges.0.filters.0.rate"),
    ]  # fmt: skip


def _fill(value: Any, text: str) -> Any:
    if value == "X":
        return text
    if isinstance(value, dict):
        return {k: _fill(v, text) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, text) for v in value]
    return value


@pytest.fixture
def amt_meter(admin: Api) -> None:
    meter = {"code": "amt", "name": "Amount", "aggregation": "sum", "field": "amount", "group_by": ["kind"]}
    assert admin("POST", "/v1/meters", meter)[0] == 201


@pytest.mark.parametrize(("label", "charge", "param"), _cases(), ids=[c[0] for c in _cases()])
def test_a_plan_decimal_is_plain_text(
    admin: Api, reader: Api, amt_meter: None, label: str, charge: dict[str, Any], param: str
) -> None:
    for text in TEXTS:
        # WHEN a plan gives one of its decimals in a form other than plain ASCII digits
        status, body = admin("POST", "/v1/plans", _plan(_fill(charge, text)))
        # THEN it is refused, naming the field, and nothing is stored
        assert status == 422, (label, text, body)
        assert body["error"]["code"] == "validation_error", (text, body)
        assert [d["param"] for d in body["error"]["details"]] == [param], text
        assert reader("/v1/plans/p", params={"plan_code": "p"})[0] == 404, text


@pytest.mark.parametrize("value", [True, False, "2", " 2", "1_000", 2.5])
@pytest.mark.parametrize("field", ["package_size", "free_events"])
def test_a_plan_count_is_a_json_integer(
    admin: Api, reader: Api, amt_meter: None, field: str, value: Any
) -> None:
    charge: dict[str, Any] = (
        {"meter_code": "amt", "model": "package", "package_size": value, "package_price": "1"}
        if field == "package_size"
        else {
            "meter_code": "amt",
            "model": "percentage",
            "rate": "1",
            "fixed_fee": "0.3",
            "free_events": value,
        }
    )
    status, body = admin("POST", "/v1/plans", _plan(charge))
    assert status == 422, (field, value, body)
    assert [d["param"] for d in body["error"]["details"]] == [f"charges.0.{field}"]
    assert reader("/v1/plans/p", params={"plan_code": "p"})[0] == 404


def test_plain_text_and_json_numbers_are_still_taken(admin: Api, reader: Api, amt_meter: None) -> None:
    charge = {
        "meter_code": "amt",
        "model": "percentage",
        "rate": "2.9",
        "fixed_fee": 0.3,
        "free_units": "10.5",
        "free_events": 2,
        "pricing_unit": {"code": "cr", "conversion_rate": "0.01"},
    }
    status, body = admin("POST", "/v1/plans", _plan(charge))
    assert status == 201, body
    read = reader("/v1/plans/p", params={"plan_code": "p"})[1]["charges"][0]
    assert (read["rate"], read["fixed_fee"], read["free_units"], read["free_events"]) == (
        "2.9",
        "0.3",
        "10.5",
        2,
    )
    assert read["pricing_unit"]["conversion_rate"] == "0.01"


@pytest.mark.parametrize("version", [True, "1", " 1", 1.5])
def test_a_subscription_names_its_plan_version_with_a_json_integer(
    admin: Api, reader: Api, amt_meter: None, version: Any
) -> None:
    assert (
        admin("POST", "/v1/customers", {"external_id": "acme", "name": "Acme", "currency": "USD"})[0] == 201
    )
    charge = {"meter_code": "amt", "model": "per_unit", "unit_price": "1"}
    assert admin("POST", "/v1/plans", _plan(charge))[0] == 201
    body = {
        "customer_id": "acme",
        "plan_code": "p",
        "plan_version": version,
        "start_at": "2026-01-01T00:00:00Z",
    }
    status, answer = admin("POST", "/v1/subscriptions", body)
    assert status == 422, answer
    assert [d["param"] for d in answer["error"]["details"]] == ["plan_version"]
    assert reader("/v1/customers/acme/subscriptions", params={"customer_id": "acme"})[1]["data"] == []


@pytest.mark.parametrize(
    ("currency", "field", "value", "param"),
    [
        ("USD", "fixed_fee", {"amount": "10000000000000000.01"}, "fixed_fee.amount"),
        ("USD", "minimum_commitment", "999999999999999999.99", "minimum_commitment"),
        ("KWD", "fixed_fee", {"amount": "1000000000000000.001", "timing": "arrears"}, "fixed_fee.amount"),
    ],
)
def test_a_fee_or_minimum_over_the_line_limit_is_refused(
    admin: Api, reader: Api, amt_meter: None, currency: str, field: str, value: Any, param: str
) -> None:
    # GIVEN a fee or a minimum whose one line would be over 10^18 minor units (the limit every usage
    # line and every event billed in advance is held to)
    charge = {"meter_code": "amt", "model": "per_unit", "unit_price": "1"}
    body = {**_plan(charge), "currency": currency, field: value}
    # WHEN the plan is created, or published as a new version of an existing plan
    status, answer = admin("POST", "/v1/plans", body)
    assert admin("POST", "/v1/plans", {**_plan(charge), "code": "q", "currency": currency})[0] == 201
    version = {k: v for k, v in body.items() if k != "code"}
    v_status, v_answer = admin("POST", "/v1/plans/q/versions", version, params={"plan_code": "q"})
    # THEN both are refused with the code and the field, and nothing is stored
    for got, error in ((status, answer), (v_status, v_answer)):
        assert (got, error["error"]["code"], error["error"].get("param")) == (400, "amount_too_large", param)
    assert reader("/v1/plans/p", params={"plan_code": "p"})[0] == 404
    assert reader("/v1/plans/q", params={"plan_code": "q"})[1]["version"] == 1


def test_a_fee_at_the_line_limit_is_taken(admin: Api, amt_meter: None) -> None:
    charge = {"meter_code": "amt", "model": "per_unit", "unit_price": "1"}
    body = {
        **_plan(charge),
        "fixed_fee": {"amount": "10000000000000000"},
        "minimum_commitment": "10000000000000000",
    }
    assert admin("POST", "/v1/plans", body)[0] == 201


def test_two_charges_on_one_meter_are_refused_naming_the_charges(
    admin: Api, reader: Api, amt_meter: None
) -> None:
    charge = {"meter_code": "amt", "model": "per_unit", "unit_price": "1"}
    status, body = admin(
        "POST", "/v1/plans", {**_plan(charge), "charges": [charge, {**charge, "unit_price": "2"}]}
    )
    assert status == 422, body
    [detail] = body["error"]["details"]
    assert detail["param"] == "charges" and "'amt'" in detail["message"], detail
    assert reader("/v1/plans/p", params={"plan_code": "p"})[0] == 404
