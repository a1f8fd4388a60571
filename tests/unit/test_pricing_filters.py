"""Prices per property value (charge filters): each group of a grouped meter is priced by the first
filter whose values match it, the rest by the charge's own price. Published examples reproduced to the
cent, and properties. Rules in docs/pricing.md ("Prices per property value")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from neruba.domain.lines import GroupUsage, usage_lines
from neruba.domain.pricing import price_charge, price_for_group
from neruba.models.catalog import ChargeIn

ORB_PRICE_CONFIGURATION = "https://docs.withorb.com/product-catalog/price-configuration"
ORB_BUILD_CATALOG = "https://docs.withorb.com/product-catalog/build-catalog"
LAGO_FILTERS = "https://docs.getlago.com/guide/plans/charges/charges-with-filters"
LAGO_STRIPE_TEMPLATE = "https://getlago.com/docs/templates/per-transaction/stripe"
T0, T1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)


def _lines(charge: dict[str, Any], usage: dict[str, GroupUsage]) -> dict[str, Any]:
    plan = {"code": "p", "version": 1, "currency": "USD", "charges": [{"free_units": "0", **charge}]}
    return {line.line_id: line for line in usage_lines(plan, T0, T1, {charge["meter_code"]: usage})}


def test_orb_default_price_and_a_cheaper_price_in_two_regions() -> None:
    """Orb, price configuration (ORB_PRICE_CONFIGURATION), dimensional pricing: any call costs $3.00,
    but a call made in the alpha or west region costs $2.00."""
    # GIVEN the default price and one filter for region alpha or west
    charge = {
        "meter_code": "calls",
        "model": "per_unit",
        "unit_price": "3.00",
        "filters": [{"values": {"region": ["alpha", "west"]}, "unit_price": "2.00"}],
    }
    # WHEN 10 calls in alpha, 5 in west and 7 in east are rated
    usage = {
        f"region={r}": GroupUsage(Decimal(n), 1, n) for r, n in (("alpha", 10), ("west", 5), ("east", 7))
    }
    lines = _lines(charge, usage)
    # THEN alpha and west at $2, east at the default $3
    assert [lines[f"usage:calls:region={r}:0"].amount_minor for r in ("alpha", "west", "east")] == [
        2000,
        1000,
        2100,
    ]
    alpha, east = lines["usage:calls:region=alpha:0"], lines["usage:calls:region=east:0"]
    assert (alpha.source["filter"], alpha.source["filter_values"]) == (0, {"region": ["alpha", "west"]})
    assert alpha.description == "calls (per_unit) [region=alpha] priced by filter 0"
    assert "filter" not in east.source and east.unit_price == Decimal("3.00")


def test_orb_storage_matrix_by_tier_and_region() -> None:
    """Orb, building the catalog (ORB_BUILD_CATALOG), matrix example: $0.05/GB cold storage in
    us-east-1, $0.08/GB hot in us-east-1, $0.03/GB cold in us-west-1, $0.08/GB hot in us-west-1."""
    prices = {("cold", "us-east-1"): "0.05", ("hot", "us-east-1"): "0.08", ("cold", "us-west-1"): "0.03"}
    charge = {
        "meter_code": "gb",
        "model": "per_unit",
        "unit_price": "0.08",  # hot storage in us-west-1 is the default here
        "filters": [
            {"values": {"tier": [t], "region": [r]}, "unit_price": p} for (t, r), p in prices.items()
        ],
    }
    usage = {
        f"tier={t}|region={r}": GroupUsage(Decimal(100), 1, 1)
        for t, r in (("cold", "us-east-1"), ("hot", "us-east-1"), ("cold", "us-west-1"), ("hot", "us-west-1"))
    }
    lines = _lines(charge, usage)
    # THEN 100 GB each: $5, $8, $3, $8
    assert [lines[f"usage:gb:{key}:0"].amount_minor for key in usage] == [500, 800, 300, 800]


def test_lago_filter_for_a_combination_and_a_default_price() -> None:
    """Lago, charges with filters (LAGO_FILTERS): a standard charge at $2 by default, $1 for events with
    region africa and provider aws, $0.5 for every other region and provider (a key with all its values:
    here an empty list); the default then prices usage lacking those properties."""
    charge = {
        "meter_code": "compute",
        "model": "per_unit",
        "unit_price": "2",
        "filters": [
            {"values": {"region": ["africa"], "provider": ["aws"]}, "unit_price": "1"},
            {"values": {"region": [], "provider": []}, "unit_price": "0.5"},
        ],
    }
    usage = {
        "region=africa|provider=aws": GroupUsage(Decimal(3), 1, 3),
        "region=africa|provider=gcp": GroupUsage(Decimal(3), 1, 3),  # any region and provider: 0.5
        "region=|provider=aws": GroupUsage(Decimal(3), 1, 3),  # no region: the default
    }
    lines = _lines(charge, usage)
    assert lines["usage:compute:region=africa|provider=aws:0"].amount_minor == 300
    assert lines["usage:compute:region=africa|provider=gcp:0"].amount_minor == 150
    assert lines["usage:compute:region=|provider=aws:0"].amount_minor == 600


def test_lago_stripe_template_percentage_per_payment_type() -> None:
    """Lago, "Clone Stripe pricing" (LAGO_STRIPE_TEMPLATE): one percentage charge filtered by payment
    type, 2.9% + $0.30 online and 2.7% + $0.05 in person."""
    charge = {
        "meter_code": "payments",
        "model": "percentage",
        "rate": "2.9",
        "fixed_fee": "0.30",
        "filters": [
            {"values": {"type": ["in_person"]}, "rate": "2.7", "fixed_fee": "0.05", "free_units": "0"}
        ],
    }
    usage = {"type=online": GroupUsage(Decimal(100), 1, 1), "type=in_person": GroupUsage(Decimal(100), 1, 1)}
    lines = _lines(charge, usage)
    assert lines["usage:payments:type=online:0"].amount_minor == 320  # 2.90 + 0.30
    assert lines["usage:payments:type=in_person:0"].amount_minor == 275  # 2.70 + 0.05


def test_tiers_per_filter_value_and_free_units_of_the_filter() -> None:
    # GIVEN graduated tiers for eu and other tiers (with free units) for the rest
    charge = {
        "meter_code": "calls",
        "model": "graduated",
        "free_units": "10",
        "tiers": [{"up_to": "100", "unit_price": "1"}, {"up_to": None, "unit_price": "0.5"}],
        "filters": [
            {
                "values": {"region": ["eu"]},
                "free_units": "0",
                "tiers": [
                    {"up_to": "5", "unit_price": "0"},
                    {"up_to": None, "unit_price": "2", "flat_fee": "1"},
                ],
            }
        ],
    }
    usage = {"region=eu": GroupUsage(Decimal(8), 1, 8), "region=us": GroupUsage(Decimal(120), 1, 120)}
    lines = _lines(charge, usage)
    # eu: 5 free-priced + 3 x 2 + 1 flat = 7; us: 110 billable = 100 x 1 + 10 x 0.5 = 105
    assert lines["usage:calls:region=eu:0"].amount_minor == 700
    assert lines["usage:calls:region=eu:0"].source["free_units"] == 0
    assert lines["usage:calls:region=us:0"].amount_minor == 10500


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y", "z"]), max_size=3),
    st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c"]),
            st.lists(st.sampled_from(["x", "y", "z"]), max_size=2),
            min_size=1,
            max_size=2,
        ),
        max_size=4,
    ),
    st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False),
)
def test_a_group_is_priced_by_the_first_matching_filter_else_the_default(
    group: dict[str, str], filters: list[dict[str, list[str]]], quantity: Decimal
) -> None:
    charge = {
        "model": "per_unit",
        "unit_price": "1000",
        "filters": [{"values": values, "unit_price": str(i + 1)} for i, values in enumerate(filters)],
    }
    price, index = price_for_group(charge, group)
    matching = [
        i
        for i, values in enumerate(filters)
        if all((group.get(k) in v) if v else bool(group.get(k)) for k, v in values.items())
    ]
    assert index == (matching[0] if matching else None)
    expected_price = Decimal(index + 1 if index is not None else 1000)
    assert price_charge(price, quantity).amount == quantity * expected_price


@pytest.mark.parametrize(
    ("filters", "rule"),
    [
        ([{"values": {"region": ["eu"]}}], "filters[0]: a per_unit charge takes exactly ['unit_price']"),
        ([{"values": {}, "unit_price": "1"}], None),
        ([{"values": {"bad name": ["x"]}, "unit_price": "1"}], "invalid property name"),
        ([{"values": {"region": ["eu"]}, "unit_price": "1", "rate": "1"}], "filters[0]: a per_unit charge"),
    ],
)
def test_filter_bodies_that_break_a_rule_are_refused(filters: list[dict[str, Any]], rule: str | None) -> None:
    body = {"meter_code": "calls", "model": "per_unit", "unit_price": "1", "filters": filters}
    with pytest.raises(ValidationError) as caught:
        ChargeIn.model_validate(body)
    if rule:
        assert rule in str(caught.value)
