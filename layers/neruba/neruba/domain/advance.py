"""Pay-in-advance charges: what one event costs the moment it arrives (plain Python, no AWS).

A charge with ``pay_in_advance: true`` is billed per event rather than at the period's end. The period
keeps a *position* per subscription and meter: ``level`` (the units in use: the sum of the changes) and
``paid`` (the units paid for in this period). An event changing the level by ``delta``:

- an increase raises ``paid`` to the new level when it passes it; the units above the old ``paid`` are
  billed at their **marginal price**: ``price(paid_after) - price(paid_before)`` under the charge's model
  (free units, tiers and packages count from the period's first advance event);
- a decrease (``on_removal`` ``credit`` or ``refund``) lowers ``paid`` to the new level (not below 0)
  and gives back the marginal price of the units removed; with ``on_removal: none`` nothing is given back
  and ``paid`` stays, so a unit added again in the same period is not billed twice.

With ``prorate: true`` the amount is multiplied by the part of the period left after the event,
``seconds(event, period_end) / seconds(period)`` (``domain.pricing.fraction_of``, the fixed fees' rule).
The line is rounded once, half-up, to the currency's minor unit (``domain.pricing.line_minor``); an
amount beyond the line limit (``domain.pricing.over_line_limit``, the usage lines' rule) bills 0 and
says so (``Change.unbillable``), while the position still follows the usage.

Example:
    >>> from datetime import UTC, datetime
    >>> seat = {"model": "per_unit", "unit_price": "30", "pay_in_advance": True, "prorate": True}
    >>> period = (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
    >>> change = price_change(seat, Position(), Decimal(1), datetime(2026, 4, 16, tzinfo=UTC), period, "USD")
    >>> change.fraction, change.amount_minor
    (Decimal('0.5'), 1500)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any, Literal

from neruba.domain.phases import AddInterval, seconds
from neruba.domain.pricing import (
    EXACT,
    ZERO,
    PricingError,
    exact,
    fraction_of,
    line_minor,
    over_line_limit,
    price_charge,
)

Invoicing = Literal["invoice_now", "next_invoice"]
OnRemoval = Literal["none", "credit", "refund"]
ADVANCE_MODELS = frozenset({"per_unit", "package", "graduated", "volume"})
ADVANCE_AGGREGATIONS = frozenset({"count", "sum", "unique_count"})


def can_decrease(aggregation: str, allow_negative: bool) -> bool:
    """Whether an event of the meter can lower the level (so ``on_removal`` ``credit`` or ``refund`` can
    give something back): only a ``sum`` meter that accepts negative values; a count, or a count of
    unique values, only grows.

    Example:
        >>> can_decrease("count", False), can_decrease("sum", False), can_decrease("sum", True)
        (False, False, True)
    """
    return aggregation == "sum" and allow_negative


@dataclass(frozen=True, slots=True)
class Terms:
    """How a pay-in-advance charge is billed: where its lines go, proration, what a removal gives back."""

    invoicing: Invoicing = "invoice_now"
    prorate: bool = False
    on_removal: OnRemoval = "none"


def terms_of(charge: Mapping[str, Any]) -> Terms | None:
    """The advance terms of a stored charge, or None when it is billed in arrears.

    Example:
        >>> terms_of({"model": "per_unit", "unit_price": "1"}) is None
        True
        >>> terms_of({"pay_in_advance": True, "advance_invoicing": "next_invoice"}).invoicing
        'next_invoice'
    """
    if not charge.get("pay_in_advance"):
        return None
    return Terms(
        invoicing=charge.get("advance_invoicing") or "invoice_now",
        prorate=bool(charge.get("prorate")),
        on_removal=charge.get("on_removal") or "none",
    )


@dataclass(frozen=True, slots=True)
class Position:
    """A subscription's meter in one period: units in use and units paid for (both exact)."""

    level: Decimal = ZERO
    paid: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Change:
    """What one event bills: the units paid for (negative: given back), the exact amounts, the line's
    rounded amount, and the position after it."""

    delta: Decimal
    before: Position
    after: Position
    units: Decimal  # paid_after - paid_before
    full_amount: Decimal  # marginal price of those units for a whole period, exact
    fraction: Decimal  # 1, or the part of the period left after the event
    seconds: Decimal  # seconds from the event to the period's end
    period_seconds: Decimal
    amount: Decimal  # full_amount x fraction, exact (50 significant digits when divided)
    amount_minor: int  # rounded once, half-up; 0 when unbillable
    unbillable: str | None = None  # "amount_too_large": over domain.pricing.MAX_LINE_MINOR, billed as 0

    @property
    def kind(self) -> Literal["charge", "credit", "none"]:
        return "charge" if self.amount_minor > 0 else "credit" if self.amount_minor < 0 else "none"


def _paid_after(terms: Terms, before: Position, level: Decimal, delta: Decimal) -> Decimal:
    if delta >= 0:
        return max(before.paid, level)
    if terms.on_removal == "none":
        return before.paid  # what was paid stays paid until the period ends
    return max(ZERO, min(before.paid, level))


def price_change(
    charge: Mapping[str, Any],
    before: Position,
    delta: Decimal,
    at: datetime,
    period: tuple[datetime, datetime],
    currency: str,
) -> Change:
    """Bill an event changing the level by ``delta`` at ``at`` inside ``period`` (see the module doc)."""
    terms = terms_of(charge) or Terms()
    delta = exact(delta, "delta")
    start, end = period
    if not start <= at < end:
        raise PricingError("the event is outside the period it is billed in")
    with localcontext(EXACT):
        level = before.level + delta
        paid = _paid_after(terms, before, level, delta)
        units = paid - before.paid
        full = ZERO
        if units:
            full = price_charge(charge, paid).amount - price_charge(charge, before.paid).amount
    left, whole = seconds(at, end), seconds(start, end)
    fraction = fraction_of(Decimal(1), left, whole) if terms.prorate else Decimal(1)
    amount = fraction_of(full, left, whole) if terms.prorate else full
    too_large = over_line_limit(amount, currency)
    return Change(
        delta=delta,
        before=before,
        after=Position(level, paid),
        units=units,
        full_amount=full,
        fraction=fraction,
        seconds=left,
        period_seconds=whole,
        amount=amount,
        amount_minor=0 if too_large else line_minor(amount, currency),
        unbillable="amount_too_large" if too_large else None,
    )


def event_delta(aggregation: str, value: Any, new_value: bool = True) -> Decimal:
    """The level change of one event: 1 for ``count``, its value for ``sum``, 1 for a ``unique_count``
    value not seen yet in the period (``new_value``) and 0 for one seen already.

    Example:
        >>> event_delta("sum", "-2"), event_delta("count", None), event_delta("unique_count", "u1", False)
        (Decimal('-2'), Decimal('1'), Decimal('0'))
    """
    if aggregation == "count":
        return Decimal(1)
    if aggregation == "unique_count":
        return Decimal(1) if new_value else ZERO
    if aggregation == "sum":
        return exact(value, "value")
    raise PricingError(f"a {aggregation} meter cannot be charged in advance")


def period_of(anchor: datetime, interval: str, at: datetime, add: AddInterval) -> tuple[datetime, datetime]:
    """The billing period [start, end) of a subscription anchored at ``anchor`` that holds ``at``, with
    the interval arithmetic ``add(anchor, interval, n)`` billing uses."""
    if at < anchor:
        raise PricingError("the event is before the subscription starts")
    n = 0
    while add(anchor, interval, n + 1) <= at:
        n += 1
    return add(anchor, interval, n), add(anchor, interval, n + 1)
