"""Published worked examples of graduated, volume and package pricing, reproduced to the cent.

Each test names the page it follows and the example it reproduces; the numbers are theirs, the wording ours.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from neruba.domain.money import to_minor
from neruba.domain.pricing import price_charge


def _tiers(*rows: tuple[Any, str, str]) -> list[dict[str, Any]]:
    return [{"up_to": up_to, "unit_price": price, "flat_fee": flat} for up_to, price, flat in rows]


def _cents(charge: dict[str, Any], quantity: int | str) -> int:
    return to_minor(price_charge(charge, Decimal(quantity)).amount, "USD")


STRIPE_TIERS = _tiers(("5", "5", "0"), ("10", "4", "0"), ("15", "3", "0"), ("20", "2", "0"), (None, "1", "0"))


@pytest.mark.parametrize(
    ("quantity", "total_cents"), [(1, 500), (5, 2500), (6, 2400), (20, 4000), (25, 2500)]
)
def test_stripe_volume_tiers_table(quantity: int, total_cents: int) -> None:
    """Stripe, "Tiered pricing" (https://stripe.com/docs/billing/subscriptions/tiers), volume section.

    Tiers $5 up to 5, $4 up to 10, $3 up to 15, $2 up to 20, $1 above. The page's table of volume totals:
    1 -> $5, 5 -> $25, 6 -> $24, 20 -> $40, 25 -> $25 (the total can go down as usage grows).
    """
    # GIVEN Stripe's tier table as a volume charge
    charge = {"model": "volume", "tiers": STRIPE_TIERS}
    # WHEN the published quantities are priced
    # THEN the published totals come out to the cent
    assert _cents(charge, quantity) == total_cents


def test_stripe_graduated_six_units_cost_29() -> None:
    """Stripe, "Tiered pricing" (https://stripe.com/docs/billing/subscriptions/tiers), graduated section.

    With the same tiers, 6 units cost $29: $25 for the five units in the first tier plus $4 for the one
    unit in the second.
    """
    # GIVEN Stripe's tier table as a graduated charge
    priced = price_charge({"model": "graduated", "tiers": STRIPE_TIERS}, Decimal(6))
    # THEN $29, split 5 x $5 + 1 x $4
    assert to_minor(priced.amount, "USD") == 2900
    assert [(t.quantity, t.amount) for t in priced.tiers] == [(5, 25), (1, 4)]


@pytest.mark.parametrize(("fonts", "total_cents"), [(1, 700), (5, 3500), (6, 3900), (20, 12000), (25, 15000)])
def test_stripe_typographic_volume(fonts: int, total_cents: int) -> None:
    """Stripe, "Set up tiered pricing" (https://docs.stripe.com/subscriptions/pricing-models/tiered-pricing).

    Typographic's font tiers: 1-5 at 7 USD, 6-10 at 6.50 USD, 11+ at 6 USD. Volume-based totals on the
    page: 1 -> 7, 5 -> 35, 6 -> 39, 20 -> 120, 25 -> 150 USD.
    """
    # GIVEN the font tiers as a volume charge
    charge = {"model": "volume", "tiers": _tiers(("5", "7", "0"), ("10", "6.5", "0"), (None, "6", "0"))}
    # THEN each published total
    assert _cents(charge, fonts) == total_cents


def test_lago_volume_with_flat_fee_65000_calls_cost_49() -> None:
    """Lago, "Volume" charge model (https://getlago.com/docs/guide/plans/charges/charge-models/volume).

    Tiers up to 10,000 at $0.0010, up to 50,000 at $0.0008, up to 100,000 at $0.0006, above at $0.0004,
    each with a $10 flat fee. 65,000 API calls cost 65,000 x $0.0006 + $10 = $49.
    """
    # GIVEN Lago's volume tiers with a flat fee per tier
    charge = {
        "model": "volume",
        "tiers": _tiers(
            ("10000", "0.0010", "10"),
            ("50000", "0.0008", "10"),
            ("100000", "0.0006", "10"),
            (None, "0.0004", "10"),
        ),
    }
    # THEN the third tier's rate applies to every unit, plus that tier's flat fee only
    assert _cents(charge, 65000) == 4900


def test_zuplo_graduated_and_volume_15000_units() -> None:
    """Zuplo, "Pricing models" (https://zuplo.com/docs/articles/monetization/pricing-models).

    Tiers 0-1,000 at $0.10, 1,001-10,000 at $0.05, 10,001+ at $0.01. For 15,000 units the graduated total
    is $100 + $450 + $50 = $600 and the volume total is 15,000 x $0.01 = $150.
    """
    tiers = _tiers(("1000", "0.10", "0"), ("10000", "0.05", "0"), (None, "0.01", "0"))
    # THEN both published totals
    assert _cents({"model": "graduated", "tiers": tiers}, 15000) == 60000
    assert _cents({"model": "volume", "tiers": tiers}, 15000) == 15000


def test_autumn_graduated_15000_requests_cost_107() -> None:
    """Autumn, "Graduated Pricing" (https://docs.useautumn.com/documentation/modelling-pricing/graduated-pricing).

    First 1,000 requests at $0.01, the next 9,000 at $0.008, the rest at $0.005: 15,000 requests cost
    $10 + $72 + $25 = $107.
    """
    tiers = _tiers(("1000", "0.01", "0"), ("10000", "0.008", "0"), (None, "0.005", "0"))
    assert _cents({"model": "graduated", "tiers": tiers}, 15000) == 10700


def test_paymentkit_volume_seats_and_graduated_calls() -> None:
    """PaymentKit, "Tiered pricing" (https://docs.paymentkit.com/guides/product-catalog/pricing-structures/tiered).

    Volume seats (1-10 at $10, 11-50 at $9, 51+ at $8): 12 seats cost 12 x $9 = $108. Graduated calls
    (1-1,000 at $0.01, 1,001-5,000 at $0.008, 5,001+ at $0.005): 3,000 calls cost $10 + $16 = $26.
    """
    seats = _tiers(("10", "10", "0"), ("50", "9", "0"), (None, "8", "0"))
    calls = _tiers(("1000", "0.01", "0"), ("5000", "0.008", "0"), (None, "0.005", "0"))
    assert _cents({"model": "volume", "tiers": seats}, 12) == 10800
    assert _cents({"model": "graduated", "tiers": calls}, 3000) == 2600


@pytest.mark.parametrize(("users", "total_cents"), [(1, 1000), (3, 1000), (5, 1000), (6, 2000), (7, 2000)])
def test_stripe_package_per_five_users(users: int, total_cents: int) -> None:
    """Stripe, "Quantity transformation" (https://stripe.com/docs/billing/subscriptions/quantity-transformation).

    $10 for every 5 users or part of 5 (divide by 5, round up): 1, 3 and 5 users cost $10; 6 and 7 cost $20.
    """
    charge = {"model": "package", "package_size": 5, "package_price": "10"}
    assert _cents(charge, users) == total_cents


def test_stripe_package_car_rental_150_minutes() -> None:
    """Stripe, "Transform quantities" (https://docs.stripe.com/billing/subscriptions/usage-based/transform-quantities).

    Usage reported in minutes, 10 USD per started hour: 150 minutes are billed as 3 hours, 30 USD.
    """
    priced = price_charge({"model": "package", "package_size": 60, "package_price": "10"}, Decimal(150))
    assert priced.tiers[0].quantity == 3
    assert to_minor(priced.amount, "USD") == 3000


@pytest.mark.parametrize(("tokens", "total_cents"), [("10", 125), ("1000000", 125), ("1500000", 250)])
def test_chargebee_package_per_million_tokens(tokens: str, total_cents: int) -> None:
    """Chargebee, "Package Pricing" (https://www.chargebee.com/docs/billing/2.0/product-catalog/package-pricing).

    $1.25 per package of 1,000,000 tokens: 10 tokens bill one package ($1.25), 1,000,000 one ($1.25),
    1,500,000 two ($2.50).
    """
    charge = {"model": "package", "package_size": 1_000_000, "package_price": "1.25"}
    assert _cents(charge, tokens) == total_cents
