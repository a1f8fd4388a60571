"""Money: ISO 4217 minor units and the one rounding rule (half-up, once per invoice line).

Example:
    >>> to_minor(Decimal("308.64175"), "USD")
    30864
    >>> to_minor(Decimal("1.5"), "JPY")
    2
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

_EXPONENTS = {
    **dict.fromkeys(
        [
            "USD",
            "EUR",
            "GBP",
            "CHF",
            "CAD",
            "AUD",
            "NZD",
            "SEK",
            "NOK",
            "DKK",
            "PLN",
            "CZK",
            "INR",
            "BRL",
            "MXN",
            "SGD",
            "HKD",
            "CNY",
            "ZAR",
            "AED",
        ],
        2,
    ),
    **dict.fromkeys(["JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG"], 0),
    **dict.fromkeys(["BHD", "JOD", "KWD", "OMR", "TND"], 3),
}


class CurrencyError(ValueError):
    """A currency code Neruba does not know."""


def is_supported_currency(currency: str) -> bool:
    return currency in _EXPONENTS


def minor_exponent(currency: str) -> int:
    try:
        return _EXPONENTS[currency]
    except KeyError as exc:
        raise CurrencyError(f"unsupported currency {currency!r}") from exc


def to_minor(amount: Decimal, currency: str) -> int:
    """Major units to integer minor units, rounding half-up (away from zero on .5)."""
    if not isinstance(amount, Decimal):
        raise TypeError("amounts are Decimal")
    with localcontext(Context(prec=max(28, amount.adjusted() + 8))):  # the default 28 digits would refuse
        scaled = amount.scaleb(minor_exponent(currency))  # to quantize amounts of 10^26 and more
        return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))
