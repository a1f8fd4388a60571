"""Zero usage and the first tier's flat fee: an explicit per-charge choice (``zero_usage_flat_fee``),
off by default (no tier reached, nothing billed). Rules in docs/pricing.md ("Zero usage and the first
tier's flat fee")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from neruba.domain.lines import GroupUsage, usage_lines
from neruba.domain.pricing import price_charge
from neruba.models.catalog import ChargeIn

STRIPE_FLAT_FEE_AND_OVERAGES = (
    "https://docs.stripe.com/billing/subscriptions/usage-based-v1/use-cases/flat-fee-and-overages"
)
T0, T1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)

STREAMS = {
    "model": "graduated",
    "tiers": [
        {"up_to": "1000", "unit_price": "0", "flat_fee": "200"},
        {"up_to": None, "unit_price": "0.04", "flat_fee": "0"},
    ],
}


def _line(charge: dict[str, Any], usage: dict[str, GroupUsage]) -> Any:
    plan = {"code": "p", "version": 1, "currency": "USD", "charges": [{"meter_code": "streams", **charge}]}
    return usage_lines(plan, T0, T1, {"streams": usage})


def test_stripe_flat_fee_with_included_usage_is_billed_at_zero_usage() -> None:
    """Stripe, flat fee and overages (STRIPE_FLAT_FEE_AND_OVERAGES): 1,000 monthly streams included in a
    200 USD flat fee, usage above it billed as overage (0.04 USD per unit past 1,000 in the page's
    Hypernian rates). The flat fee is due every month, streams or not."""
    charge = {**STREAMS, "zero_usage_flat_fee": True, "free_units": "0"}
    # WHEN a month with no stream at all (no usage cell: the charge's zero line)
    (line,) = _line(charge, {})
    # THEN the first tier's 200 USD, shown as a tier row of 0 units and said on the line
    assert line.amount_minor == 20000
    assert [(t.tier, t.quantity, t.flat_fee) for t in line.tiers] == [(1, Decimal(0), Decimal(200))]
    assert line.source["zero_usage_flat_fee"] is True
    # AND 1,500 streams: 200 + 500 x 0.04 = 220 USD, the same with or without the choice
    (busy,) = _line(charge, {"": GroupUsage(Decimal(1500), 1, 1500)})
    assert busy.amount_minor == 22000


def test_the_default_keeps_zero_usage_free() -> None:
    (line,) = _line({**STREAMS, "free_units": "0"}, {})
    assert (line.amount_minor, line.tiers) == (0, [])


def test_volume_and_graduated_percentage_bill_their_first_flat_fee() -> None:
    volume = {"model": "volume", "zero_usage_flat_fee": True, "tiers": STREAMS["tiers"]}
    assert price_charge(volume, Decimal(0)).amount == 200
    percentage = {
        "model": "graduated_percentage",
        "zero_usage_flat_fee": True,
        "tiers": [{"up_to": "1000", "rate": "1", "flat_fee": "2"}, {"up_to": None, "rate": "0.5"}],
    }
    priced = price_charge(percentage, Decimal(0))
    assert (priced.amount, priced.tiers[0].unit) == (2, "amount")


def test_usage_within_free_units_bills_the_flat_fee_when_chosen() -> None:
    charge = {**STREAMS, "zero_usage_flat_fee": True, "free_units": "50"}
    assert price_charge(charge, Decimal(30)).amount == 200


@settings(max_examples=100, deadline=None)
@given(
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
    st.sampled_from(["graduated", "volume"]),
    st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False),
)
def test_the_choice_only_changes_a_zero_quantity(quantity: Decimal, model: str, flat: Decimal) -> None:
    tiers = [{"up_to": "10", "unit_price": "1", "flat_fee": flat}, {"up_to": None, "unit_price": "0.5"}]
    off = price_charge({"model": model, "tiers": tiers}, quantity)
    on = price_charge({"model": model, "tiers": tiers, "zero_usage_flat_fee": True}, quantity)
    assert on.amount == (flat if quantity == 0 else off.amount)


@pytest.mark.parametrize("model", ["per_unit", "package", "percentage", "dynamic"])
def test_the_choice_is_refused_on_models_without_tiers(model: str) -> None:
    fields = {
        "per_unit": {"unit_price": "1"},
        "package": {"package_size": 10, "package_price": "1"},
        "percentage": {"rate": "1"},
        "dynamic": {},
    }[model]
    body = {"meter_code": "m", "model": model, "zero_usage_flat_fee": True, **fields}
    with pytest.raises(ValidationError, match="zero_usage_flat_fee applies to tiered models"):
        ChargeIn.model_validate(body)
