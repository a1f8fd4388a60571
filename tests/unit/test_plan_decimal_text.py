"""A plan's decimals are stored and answered in canonical text: no exponent, no trailing zeros."""

from __future__ import annotations

from neruba.models.catalog import PlanCreate


def test_plan_decimals_dump_without_exponent_or_trailing_zeros() -> None:
    body = PlanCreate.model_validate(
        {
            "code": "p",
            "name": "p",
            "currency": "USD",
            "interval": "month",
            "charges": [
                {
                    "meter_code": "m",
                    "model": "percentage",
                    "rate": "100.00",
                    "fixed_fee": "0.300",
                    "free_units": "5.0",
                },
                {
                    "meter_code": "t",
                    "model": "per_unit",
                    "unit_price": "1.50",
                    "pricing_unit": {"code": "cr", "conversion_rate": "0.000000000001"},
                },
            ],
        }
    )
    charges = body.model_dump(mode="json")["charges"]
    assert (charges[0]["rate"], charges[0]["fixed_fee"], charges[0]["free_units"]) == ("100", "0.3", "5")
    assert charges[1]["unit_price"] == "1.5"
    assert charges[1]["pricing_unit"]["conversion_rate"] == "0.000000000001"
