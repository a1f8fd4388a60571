"""The amount of a meter's usage in a limit period, for amount caps and spend alerts (plain Python).

Rules (docs/limits.md, "Caps and alerts in amounts"):

- the amount of a meter in a period is the price of the charge in force at an event's timestamp applied to
  the period's whole quantity and event count, rounded once to minor units as an invoice line is
  (``domain.lines.rate_quantity``): before credits, discounts, minimums and tax; a net negative quantity is 0;
- only a price that one running total (quantity, events) decides exactly can be rated so: a charge on a
  meter without ``group_by``, without price ``filters`` and without a per-event rule (``unsupported``);
- an event is admitted when the period's amount after it is at most the amount cap (and its units fit
  the unit cap); an event the customer's subscription does not price at its timestamp adds no amount.

Example:
    >>> charge = {"meter_code": "gb", "model": "graduated", "tiers": [
    ...     {"up_to": "10", "unit_price": "1"}, {"up_to": None, "unit_price": "0.5"}]}
    >>> price = Price(charge, "USD")
    >>> decisions = decide(Period(), None, 1200, [(Decimal(n), price) for n in (8, 4, 3, 2)])
    >>> [(d.admitted, d.after.amount) for d in decisions]  # 8.00, 11.00, 12.50 refused, 12.00 on the cap
    [(True, 800), (True, 1100), (False, 1100), (True, 1200)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from neruba.domain.event_rules import rule_of
from neruba.domain.lines import rate_quantity
from neruba.domain.numbers import exact_sum
from neruba.domain.pricing import line_minor


@dataclass(frozen=True, slots=True)
class Price:
    """The charge that prices a meter at some instant, and its plan's currency."""

    charge: Mapping[str, Any]
    currency: str


@dataclass(frozen=True, slots=True)
class Period:
    """A meter's counted usage in one limit period: quantity, events and its amount (minor units)."""

    used: Decimal = Decimal(0)
    events: int = 0
    amount: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    after: Period


def unsupported(charge: Mapping[str, Any], group_by: Sequence[str]) -> str | None:
    """Why a charge cannot be rated from its meter's running total (None when it can)."""
    if group_by:
        return "its meter groups usage (group_by): each group is priced and rounded on its own line"
    if charge.get("filters"):
        return "it prices groups with filters: each group is priced and rounded on its own line"
    if rule_of(charge) is not None:
        return "it bounds each event's charge (per_event_min / per_event_max)"
    return None


def amount_of(price: Price, quantity: Decimal, events: int) -> int:
    """The amount of a period's usage under ``price``, in minor units (one rounding, half-up)."""
    rated = rate_quantity(price.charge, quantity, price.currency, events)
    return line_minor(rated.amount if rated.amount is not None else rated.priced.amount, price.currency)


def decide(
    seen: Period,
    unit_cap: Decimal | None,
    amount_cap: int | None,
    events: Sequence[tuple[Decimal, Price | None]],
) -> list[Decision]:
    """Each event (its usage and the price at its timestamp, in order) admitted or not, with the period
    after it: admitted when the usage after it is at most ``unit_cap`` and the amount after it at most
    ``amount_cap``; a refused event changes nothing."""
    decisions = []
    for usage, price in events:
        used, count = exact_sum([seen.used, usage]), seen.events + 1
        amount = seen.amount if price is None else amount_of(price, used, count)
        fits = (unit_cap is None or used <= unit_cap) and (
            amount_cap is None or price is None or amount <= amount_cap
        )
        if fits:
            seen = Period(used, count, amount)
        decisions.append(Decision(fits, seen))
    return decisions
