"""Custom pricing units: a charge priced in the merchant's own unit (credits) with a conversion rate to
the plan's currency, converted exactly and rounded once per line, shown in both. Published examples
reproduced to the cent, and properties. Rules in docs/pricing.md ("Custom pricing units")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from neruba.domain.lines import GroupUsage, usage_lines
from neruba.domain.money import to_minor
from neruba.domain.pricing import price_charge
from neruba.models.catalog import ChargeIn

FLEXPRICE_CUSTOM_CURRENCY = "https://docs.flexprice.io/docs/product-catalogue/custom-pricing/custom-currency"
FLEXPRICE_USE_CASES = "https://docs.flexprice.io/docs/product-catalogue/custom-pricing/use-cases"
LAGO_PRICING_UNITS = "https://getlago.com/docs/guide/plans/custom-pricing-units"
T0, T1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)


def _line(charge: dict[str, Any], quantity: str, currency: str = "USD", group: str = "") -> Any:
    plan = {
        "code": "p",
        "version": 1,
        "currency": currency,
        "charges": [{"meter_code": "gen", "free_units": "0", **charge}],
    }
    (line,) = usage_lines(plan, T0, T1, {"gen": {group: GroupUsage(Decimal(quantity), 1, 1)}})
    return line


def test_flexprice_150_credits_at_10_cents_invoice_as_15_dollars() -> None:
    """Flexprice, custom currency (FLEXPRICE_CUSTOM_CURRENCY): one credit is worth $0.10, so 150 credits
    invoice as $15.00."""
    charge = {
        "model": "per_unit",
        "unit_price": "1",
        "pricing_unit": {"code": "credits", "conversion_rate": "0.10"},
    }
    line = _line(charge, "150")
    assert line.amount_minor == 1500
    assert (line.source["amount_in_pricing_unit"], line.source["amount"]) == (Decimal(150), Decimal("15.00"))
    assert (line.source["pricing_unit"], line.source["conversion_rate"]) == ("credits", Decimal("0.10"))
    assert line.description == "gen (per_unit); 150 credits at 0.1 USD each"


def test_flexprice_15_units_at_1_27_dollars_each() -> None:
    """Flexprice, use cases (FLEXPRICE_USE_CASES): a unit worth 1.27 USD (1 fpc = 1.27 USD) and a charge
    of 15 fpc: 19.05 USD."""
    charge = {
        "model": "per_unit",
        "unit_price": "15",
        "pricing_unit": {"code": "fpc", "conversion_rate": "1.27"},
    }
    assert _line(charge, "1").amount_minor == 1905


def test_lago_tiers_in_tokens_converted_once_and_shown_in_both() -> None:
    """Lago, custom pricing units (LAGO_PRICING_UNITS): a charge's model is defined in the pricing unit
    and its conversion rate set on the charge; usage shows in the unit and in fiat. Here graduated tiers
    in tokens (first 1,000 units at 0.5 token, then 0.25) at 0.003 EUR per token: 3,000 units cost
    500 + 500 = 1,000 tokens = 3.00 EUR."""
    charge = {
        "model": "graduated",
        "tiers": [{"up_to": "1000", "unit_price": "0.5"}, {"up_to": None, "unit_price": "0.25"}],
        "pricing_unit": {"code": "tokens", "conversion_rate": "0.003"},
    }
    line = _line(charge, "3000", "EUR")
    assert line.amount_minor == 300
    assert [t.amount for t in line.tiers] == [Decimal("500.0"), Decimal("500.00")]  # rows in tokens
    assert line.source["amount_in_pricing_unit"] == Decimal("1000.00")


def test_filters_share_the_charge_pricing_unit() -> None:
    charge = {
        "model": "per_unit",
        "unit_price": "2",
        "pricing_unit": {"code": "credits", "conversion_rate": "0.01"},
        "filters": [{"values": {"tier": ["hd"]}, "unit_price": "8"}],
    }
    assert _line(charge, "10", group="tier=hd").amount_minor == 80  # 80 credits
    assert _line(charge, "10", group="tier=sd").amount_minor == 20


@settings(max_examples=100, deadline=None)
@given(
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=10, places=5, allow_nan=False, allow_infinity=False),
    st.decimals(
        min_value=Decimal("0.000001"), max_value=100, places=6, allow_nan=False, allow_infinity=False
    ),
)
def test_conversion_is_exact_and_rounded_once(quantity: Decimal, price: Decimal, rate: Decimal) -> None:
    charge = {
        "model": "per_unit",
        "unit_price": price,
        "pricing_unit": {"code": "c", "conversion_rate": rate},
    }
    line = _line(charge, str(quantity))
    in_unit = price_charge(charge, quantity).amount
    assert line.source["amount"] == in_unit * rate
    assert line.amount_minor == to_minor(in_unit * rate, "USD")


@pytest.mark.parametrize(
    "unit",
    [
        {"code": "credits", "conversion_rate": "0"},
        {"code": "bad code", "conversion_rate": "1"},
        {"code": "c"},
    ],
)
def test_bad_pricing_units_are_refused(unit: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChargeIn.model_validate(
            {"meter_code": "m", "model": "per_unit", "unit_price": "1", "pricing_unit": unit}
        )
