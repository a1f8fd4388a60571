"""The free-text rule (docs/limits.md, "Free text: one printable line" and "no hidden reordering") and the
plain-decimal rule ("How caps and values are written") on the bodies of coupons, discounts, tax rates, tax
jurisdictions and credit notes, and on the plan prices that took decimal text without it (``free_units``,
a percentage ``rate``, a pricing unit's ``conversion_rate``): each refusal is 422 ``validation_error``
naming the field, before anything is read or written; the same body with plain text passes validation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.api.test_plain_text import BAD, _send

WHY = {"reason": "a good reason", "ticket": "SUP-1"}
COUPON = {"name": "Launch", "percent_off": "10", "duration": "once", **WHY}
TAX = {"display_name": "VAT", "percentage": "20", "inclusive": False, "country": "DE", **WHY}
INVOICE = "in_" + "0" * 24
# (method, route template, concrete path, a valid body, its free-text fields)
CASES: list[tuple[str, str, str, dict[str, Any], tuple[str, ...]]] = [
    ("POST", "/admin/coupons", "/admin/coupons", COUPON, ("name", "reason", "ticket")),
    (
        "POST",
        "/admin/coupons/{coupon_id}/archive",
        "/admin/coupons/co_" + "0" * 24 + "/archive",
        WHY,
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/admin/discounts",
        "/admin/discounts",
        {"coupon_id": "co_" + "0" * 24, "customer_id": "acme", **WHY},
        ("reason", "ticket"),
    ),
    ("POST", "/admin/tax-rates", "/admin/tax-rates", TAX, ("display_name", "reason", "ticket")),
    (
        "PUT",
        "/admin/customers/{customer_id}/tax-jurisdiction",
        "/admin/customers/acme/tax-jurisdiction",
        {"country": "DE", **WHY},
        ("reason", "ticket"),
    ),
    (
        "POST",
        "/admin/invoices/{invoice_id}/credit-notes",
        f"/admin/invoices/{INVOICE}/credit-notes",
        {"memo": "thanks", **WHY},
        ("memo", "reason", "ticket"),
    ),
]
HIDDEN = ["invoice\u202efdp.exe", "a\u2066b", "a\u200fb", "a\ufeffb"]


@pytest.mark.parametrize(
    ("method", "template", "path", "body", "field"),
    [(m, t, p, b, f) for m, t, p, b, fields in CASES for f in fields],
    ids=[f"{m} {t} {f}" for m, t, _, _, fields in CASES for f in fields],
)
def test_operator_free_text_with_a_control_or_hidden_character_is_refused(
    aws: dict[str, str], method: str, template: str, path: str, body: dict[str, Any], field: str
) -> None:
    for text in BAD + HIDDEN:
        status, answer = _send(method, template, path, {**body, field: text})
        assert status == 422, (field, text, answer)
        [detail] = answer["error"]["details"]
        assert detail["param"] == field and "control character" in detail["message"], detail
    status, answer = _send(method, template, path, {**body, field: "fine é ✓ X"})
    assert status != 422, answer


NOT_PLAIN = ["1e1", " 5", "5.", ".5", "+5", "1_0", "\uff15", "\u0665"]


@pytest.mark.parametrize(
    ("template", "body", "field", "param"),
    [
        ("/admin/coupons", COUPON, "percent_off", "percent_off"),
        ("/admin/tax-rates", TAX, "percentage", "percentage"),
    ],
)
def test_percentages_are_plain_decimal_text(
    aws: dict[str, str], template: str, body: dict[str, Any], field: str, param: str
) -> None:
    for text in NOT_PLAIN:
        status, answer = _send("POST", template, template, {**body, field: text})
        assert status == 422, (text, answer)
        [detail] = answer["error"]["details"]
        assert detail["param"] == param and "plain decimal" in detail["message"], detail
    assert _send("GET", template, template, None)[1]["data"] == []
    status, answer = _send("POST", template, template, {**body, field: "12.5"})
    assert status == 201, answer


def _plan(charge: dict[str, Any]) -> dict[str, Any]:
    return {"code": "p1", "name": "Pro", "currency": "USD", "interval": "month", "charges": [charge]}


@pytest.mark.parametrize(
    ("charge", "field", "param"),
    [
        ({"model": "per_unit", "unit_price": "0.01"}, "free_units", "charges.0.free_units"),
        ({"model": "percentage"}, "rate", "charges.0.rate"),
    ],
)
def test_plan_decimals_are_plain_decimal_text(
    aws: dict[str, str], charge: dict[str, Any], field: str, param: str
) -> None:
    for text in NOT_PLAIN:
        body = _plan({"meter_code": "api_calls", **charge, field: text})
        status, answer = _send("POST", "/v1/plans", "/v1/plans", body)
        assert status == 422, (text, answer)
        assert param in [d["param"] for d in answer["error"]["details"]], answer
        assert any("plain decimal" in d["message"] for d in answer["error"]["details"]), answer
    assert _send("GET", "/v1/plans/{plan_code}", "/v1/plans/p1", None)[0] == 404


def test_a_pricing_units_conversion_rate_is_plain_decimal_text(aws: dict[str, str]) -> None:
    charge = {"meter_code": "api_calls", "model": "per_unit", "unit_price": "2"}
    for text in NOT_PLAIN:
        unit = {"code": "credits", "conversion_rate": text}
        status, answer = _send("POST", "/v1/plans", "/v1/plans", _plan({**charge, "pricing_unit": unit}))
        assert status == 422, (text, answer)
        params = [d["param"] for d in answer["error"]["details"]]
        assert "charges.0.pricing_unit.conversion_rate" in params, answer
