"""Numbers in line descriptions are canonical decimal text: no exponent, no trailing zeros."""

from __future__ import annotations

from decimal import Decimal

from neruba.domain.lines import explain
from neruba.domain.pricing import price_charge


def test_dynamic_description_shows_canonical_amounts() -> None:
    priced = price_charge({"model": "dynamic", "multiplier": "1.20"}, Decimal("0.01160000000"), 2)
    assert explain(priced, 2) == ": the events' amounts, 0.0116, x 1.2"


def test_percentage_description_shows_canonical_figures() -> None:
    charge = {"model": "percentage", "rate": "1E+1", "fixed_fee": "0.250"}
    priced = price_charge(charge, Decimal("1.0"), 1)
    assert explain(priced, 1) == ": 10% of 1 + 0.25 x 1 of 1 events"
