"""The pricing engine: one charge of a plan version applied to a quantity, and the invoice line shapes.

Pure Python, no AWS. Prices and quantities are ``Decimal`` (a float is refused), every intermediate
amount is exact, and a line's amount is rounded ONCE, half-up, to the currency's minor unit
(``domain.money.to_minor``). Rules in docs/pricing.md.

Example:
    >>> charge = {"meter_code": "calls", "model": "graduated", "free_units": "0",
    ...           "tiers": [{"up_to": "5", "unit_price": "5"}, {"up_to": None, "unit_price": "4"}]}
    >>> priced = price_charge(charge, Decimal(6))
    >>> priced.amount, [t.quantity for t in priced.tiers]
    (Decimal('29'), [Decimal('5'), Decimal('1')])
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from neruba.domain.event_rules import rule_of
from neruba.domain.money import minor_exponent, to_minor

LineKind = Literal["fixed_fee", "usage", "minimum_commitment", "proration"]
ZERO = Decimal(0)
# Exact arithmetic: prices have at most 30 digits; a quantity has at most 100 (usage.combine) with an
# exponent within DynamoDB's range (1E-130..1E+126), so subtracting free units, multiplying by a price and
# summing tiers stays under 400 digits; with Inexact trapped any loss would raise.
EXACT = decimal.Context(prec=400, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])


class PricingError(ValueError):
    """A charge or quantity the engine cannot price (unknown model, float input, negative quantity)."""


def exact(value: Any, what: str = "value") -> Decimal:
    """A price or quantity as Decimal: Decimal, int or numeric string; floats and bools are refused.

    Example:
        >>> exact("0.00025")
        Decimal('0.00025')
        >>> exact(0.1)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        PricingError: value is a float (0.1); prices and quantities are Decimal
    """
    if isinstance(value, float):
        raise PricingError(f"{what} is a float ({value!r}); prices and quantities are Decimal")
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise PricingError(f"{what} must be a Decimal, int or numeric string, not {type(value).__name__}")
    try:
        number = Decimal(value)
    except decimal.InvalidOperation as exc:
        raise PricingError(f"{what} {value!r} is not a number") from exc
    if not number.is_finite():
        raise PricingError(f"{what} must be finite")
    return number


@dataclass(frozen=True, slots=True)
class TierLine:
    """One row of a line's breakdown: units (or packages) at a unit price plus a flat fee, exact amount."""

    tier: int
    quantity: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    amount: Decimal
    unit: Literal["unit", "package", "event", "amount"] = "unit"
    up_to: Decimal | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "quantity": self.quantity,
            "unit": self.unit,
            "up_to": self.up_to,
            "unit_price": self.unit_price,
            "flat_fee": self.flat_fee,
            "amount": self.amount,
        }


@dataclass(frozen=True, slots=True)
class Priced:
    """A charge applied to a quantity: billable units, the breakdown, the exact (unrounded) amount."""

    quantity: Decimal
    billable: Decimal
    unit_price: Decimal | None
    tiers: list[TierLine]
    amount: Decimal
    source: Mapping[str, Any] = field(default_factory=dict)  # what the line's ``source`` adds


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One line of an invoice; ``amount_minor`` is integer minor units (negative for a credit)."""

    line_id: str
    kind: LineKind
    description: str
    meter_code: str | None
    group: dict[str, str]
    quantity: Decimal
    unit_price: Decimal | None
    tiers: list[TierLine]
    amount_minor: int
    period_start: datetime
    period_end: datetime
    plan_code: str
    plan_version: int
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if type(self.amount_minor) is not int:
            raise PricingError("amount_minor is an int")
        if not isinstance(self.quantity, Decimal):
            raise PricingError("quantity is a Decimal")
        if self.period_start.tzinfo is None or self.period_end.tzinfo is None:
            raise PricingError("line periods are timezone-aware")

    def to_dict(self) -> dict[str, Any]:
        return {
            "line_id": self.line_id,
            "kind": self.kind,
            "description": self.description,
            "meter_code": self.meter_code,
            "group": dict(self.group),
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "tiers": [t.to_dict() for t in self.tiers],
            "amount_minor": self.amount_minor,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "plan_code": self.plan_code,
            "plan_version": self.plan_version,
            "source": dict(self.source),
        }


@dataclass(frozen=True, slots=True)
class RatedWindow:
    """The lines of one billing window and their subtotal (checked to be their exact sum).

    ``kind`` is ``window`` for [period_start, period_end) or ``opening`` for the advance fee of the
    first period that billing issues when a subscription starts.
    """

    currency: str
    lines: list[InvoiceLine]
    subtotal_minor: int
    period_start: datetime
    period_end: datetime
    subscription_id: str | None = None
    customer_id: str | None = None
    kind: Literal["window", "opening"] = "window"
    as_of: datetime | None = None

    def __post_init__(self) -> None:
        if self.subtotal_minor != sum(line.amount_minor for line in self.lines):
            raise PricingError("subtotal_minor must equal the sum of the lines")

    @classmethod
    def of(
        cls,
        currency: str,
        lines: Sequence[InvoiceLine],
        period_start: datetime,
        period_end: datetime,
        **kw: Any,
    ) -> RatedWindow:
        """A window whose subtotal is the sum of ``lines``."""
        lines = list(lines)
        return cls(currency, lines, sum(line.amount_minor for line in lines), period_start, period_end, **kw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "rated_window",
            "kind": self.kind,
            "subscription_id": self.subscription_id,
            "customer_id": self.customer_id,
            "currency": self.currency,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "lines": [line.to_dict() for line in self.lines],
            "subtotal_minor": self.subtotal_minor,
        }


def percent(rate: Any, what: str = "rate") -> Decimal:
    """A percentage rate as the exact fraction it multiplies by (``"1.2"`` -> ``0.012``)."""
    value = exact(rate, what)
    if value < 0:
        raise PricingError(f"{what} cannot be negative")
    return value.scaleb(-2)


def _tier_price(tier: Mapping[str, Any], index: int, by_rate: bool) -> Decimal:
    if by_rate:
        return percent(tier.get("rate"), f"tiers[{index}].rate")
    return exact(tier.get("unit_price"), f"tiers[{index}].unit_price")


def _tiers(charge: Mapping[str, Any], by_rate: bool = False) -> list[tuple[Decimal | None, Decimal, Decimal]]:
    rows = []
    for index, tier in enumerate(charge.get("tiers") or []):
        up_to = tier.get("up_to")
        rows.append(
            (
                None if up_to is None else exact(up_to, f"tiers[{index}].up_to"),
                _tier_price(tier, index, by_rate),
                exact(tier.get("flat_fee") or 0, f"tiers[{index}].flat_fee"),
            )
        )
    bounds = [r[0] for r in rows]
    finite = [b for b in bounds[:-1] if b is not None]
    if not rows or bounds[-1] is not None or len(finite) != len(rows) - 1 or finite != sorted(set(finite)):
        raise PricingError("tiers need increasing bounds and an open last tier (up_to: null)")
    return rows


def _graduated(billable: Decimal, charge: Mapping[str, Any], by_rate: bool = False) -> list[TierLine]:
    rows, lower = [], ZERO
    unit: Literal["unit", "amount"] = "amount" if by_rate else "unit"
    for index, (up_to, price, flat) in enumerate(_tiers(charge, by_rate), start=1):
        if billable <= lower:
            break
        upper = billable if up_to is None else min(billable, up_to)
        units = upper - lower
        rows.append(TierLine(index, units, price, flat, units * price + flat, unit, up_to=up_to))
        lower = upper if up_to is None else up_to
    return rows


def _volume(billable: Decimal, charge: Mapping[str, Any]) -> list[TierLine]:
    if billable <= 0:
        return []
    tiers = _tiers(charge)
    for index, (up_to, price, flat) in enumerate(tiers, start=1):
        if up_to is None or billable <= up_to:
            return [TierLine(index, billable, price, flat, billable * price + flat, up_to=up_to)]
    raise PricingError("the last tier is open-ended")  # unreachable: _tiers checked it


def _bounded(
    billable: Decimal, charge: Mapping[str, Any], events: int, per_event: Decimal | None
) -> tuple[list[TierLine], dict[str, Any]]:
    """A percentage with per-event bounds: the sum of the events' bounded charges, read from storage."""
    if per_event is None:
        raise PricingError("a percentage charge with per-event bounds is priced from its per-event sum")
    rate = exact(charge.get("rate"), "rate")
    row = TierLine(1, billable, percent(rate), ZERO, per_event, "amount")
    source = {
        "rate": rate,
        "fixed_fee": exact(charge.get("fixed_fee") or 0, "fixed_fee"),
        **{
            name: exact(charge[name], name)
            for name in ("per_event_min", "per_event_max")
            if charge.get(name) is not None
        },
        "per_event_charges": per_event,
    }
    return ([row] if events else []), source


def _percentage(
    billable: Decimal, charge: Mapping[str, Any], events: int
) -> tuple[list[TierLine], dict[str, Any]]:
    """A rate on the billable amount plus a fixed fee per event past the free events (one row each)."""
    rate = exact(charge.get("rate"), "rate")
    fraction = percent(rate)
    fee = exact(charge.get("fixed_fee") or 0, "fixed_fee")
    free_events = exact(charge.get("free_events") or 0, "free_events")
    if fee < 0 or free_events < 0 or free_events != free_events.to_integral_value():
        raise PricingError("fixed_fee and free_events cannot be negative; free_events is whole")
    billed = max(ZERO, Decimal(events) - free_events)
    rows = [TierLine(1, billable, fraction, ZERO, billable * fraction, "amount")] if billable else []
    if fee and billed:
        rows.append(TierLine(2, billed, fee, ZERO, billed * fee, "event"))
    # counts are integers in answers (docs/billing.md, "Numbers in API answers")
    source = {"rate": rate, "fixed_fee": fee, "free_events": int(free_events), "billable_events": int(billed)}
    return rows, source


# Every field of a price (models.catalog.Pricing): a filter replaces all of them, so none of the charge's
# leaks into a filter's price and none a filter sets is ignored (docs/pricing.md, "Fields a filter may set").
PRICE_FIELDS = (
    "unit_price",
    "tiers",
    "package_size",
    "package_price",
    "free_units",
    "rate",
    "fixed_fee",
    "free_events",
    "per_event_min",
    "per_event_max",
    "multiplier",
    "zero_usage_flat_fee",
)


def price_for_group(
    charge: Mapping[str, Any], group: Mapping[str, str]
) -> tuple[Mapping[str, Any], int | None]:
    """The price a group's usage is rated with: that of the first of the charge's ``filters`` whose
    ``values`` all match the group (an empty list matches any value; the filter's price fields replace the
    charge's), else the charge's own; and the index of that filter (None for the charge's own).

    Example:
        >>> charge = {"model": "per_unit", "unit_price": "1", "filters": [
        ...     {"values": {"region": ["eu", "uk"]}, "unit_price": "2"}]}
        >>> [(price["unit_price"], index) for price, index in
        ...  (price_for_group(charge, {"region": r}) for r in ("uk", "us"))]
        [('2', 0), ('1', None)]
    """
    for index, price in enumerate(charge.get("filters") or []):
        if all(_accepts(list(values), group.get(key)) for key, values in (price.get("values") or {}).items()):
            return filter_price(charge, index), index
    return charge, None


def _accepts(values: list[Any], value: str | None) -> bool:
    """A filter's list accepts a group's value: one of those listed, or any value when none is listed."""
    return value in values if values else bool(value)


def filter_price(charge: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    """The charge as its filter ``index`` prices: the filter's price fields in place of the charge's."""
    price = charge["filters"][index]
    return {**charge, **{name: price.get(name) for name in PRICE_FIELDS}}


def price_charge(
    charge: Mapping[str, Any], quantity: Decimal, events: int = 0, per_event: Decimal | None = None
) -> Priced:
    """Price ``quantity`` units under one charge (free units first, then the model). Exact, unrounded.

    ``events`` is the number of events the quantity counts (the ``percentage`` model's fixed fee per
    event uses it); ``per_event`` the sum of those events' charges under the charge's per-event rule
    (``domain.event_rules``), which prices a ``percentage`` charge with per-event bounds.

    Example:
        >>> price_charge({"model": "package", "package_size": 5, "package_price": "10"}, Decimal(6)).amount
        Decimal('20')
        >>> price_charge({"model": "percentage", "rate": "1.2", "fixed_fee": "0.1"}, Decimal(50), 1).amount
        Decimal('0.700')
    """
    if not isinstance(quantity, Decimal):
        raise PricingError(f"quantity must be a Decimal, not {type(quantity).__name__}")
    quantity = exact(quantity, "quantity")
    if quantity < 0:
        raise PricingError("quantity cannot be negative")
    if type(events) is not int or events < 0:
        raise PricingError("events is a whole number, not negative")
    model = charge.get("model")
    source: dict[str, Any] = {}
    with decimal.localcontext(EXACT):
        free = exact(charge.get("free_units") or 0, "free_units")
        billable = max(ZERO, quantity - free)
        unit_price: Decimal | None
        if rule_of(charge) is not None:
            rows, source = _bounded(billable, charge, events, per_event)
            unit_price = None
        elif model == "percentage":
            rows, source = _percentage(billable, charge, events)
            unit_price = None
        elif model == "dynamic":
            multiplier = charge.get("multiplier")
            unit_price = exact(1 if multiplier is None else multiplier, "multiplier")  # 0 is a multiplier
            if unit_price < 0:
                raise PricingError("multiplier cannot be negative")
            rows = (
                [TierLine(1, billable, unit_price, ZERO, billable * unit_price, "amount")] if billable else []
            )
            source = {"multiplier": unit_price}
        elif model == "graduated_percentage":
            rows = _graduated(billable, charge, by_rate=True)
            unit_price = None
        elif model == "per_unit":
            unit_price = exact(charge["unit_price"], "unit_price")
            rows = [TierLine(1, billable, unit_price, ZERO, billable * unit_price)] if billable else []
        elif model == "graduated":
            rows = _graduated(billable, charge)
            unit_price = None
        elif model == "volume":
            rows = _volume(billable, charge)
            unit_price = rows[0].unit_price if rows else None
        elif model == "package":
            size = exact(charge["package_size"], "package_size")
            unit_price = exact(charge["package_price"], "package_price")
            if size <= 0:
                raise PricingError("package_size must be positive")
            whole, rest = divmod(billable, size)
            packages = whole + (1 if rest else 0)  # a started package is a whole package
            rows = (
                [TierLine(1, packages, unit_price, ZERO, packages * unit_price, "package")]
                if billable
                else []
            )
        else:
            raise PricingError(f"unknown pricing model {model!r}")
        if not rows and charge.get("zero_usage_flat_fee") and model in TIERED:
            rows = _first_flat_fee(charge, model == "graduated_percentage")
            source = {**source, "zero_usage_flat_fee": True}
        amount = sum((row.amount for row in rows), ZERO)
    return Priced(quantity, billable, unit_price, rows, amount, source)


TIERED = frozenset({"graduated", "volume", "graduated_percentage"})


def _first_flat_fee(charge: Mapping[str, Any], by_rate: bool) -> list[TierLine]:
    """The row of a tiered charge that bills its first tier's flat fee at zero billable units."""
    up_to, price, flat = _tiers(charge, by_rate)[0]
    unit: Literal["unit", "amount"] = "amount" if by_rate else "unit"
    return [TierLine(1, ZERO, price, flat, flat, unit, up_to=up_to)] if flat else []


def fraction_of(amount: Decimal, part_seconds: Decimal, whole_seconds: Decimal) -> Decimal:
    """``amount * part / whole`` to 50 significant digits (the one division of proration).

    The exact result is rational; when it is a terminating decimal within 50 digits it is returned
    exactly, otherwise it is at least 1/(2*whole) away from any half minor unit, far more than the
    50-digit error, so rounding it half-up to the minor unit gives the same answer as exact rationals.
    """
    if whole_seconds <= 0:
        raise PricingError("a period has a positive length")
    with decimal.localcontext(decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN)):
        return amount * part_seconds / whole_seconds


def line_minor(amount: Decimal, currency: str) -> int:
    """The one rounding of a line: exact amount -> integer minor units, half-up."""
    return to_minor(amount, currency)


MAX_LINE_MINOR = 10**18
"""The largest amount one line bills or gives back, in minor units. An amount above it (a runaway or
forged quantity) rates to 0 on a line flagged ``source.unbillable = "amount_too_large"`` rather than
failing the whole billing (docs/pricing.md, "Usage values rating never refuses"); usage lines
(``domain.lines``) and pay-in-advance lines (``domain.advance``) use this one guard. Every other amount
(an invoice's lines, discounts, taxes and totals, a credit note's amounts) is held to it as well
(:func:`over_minor_limit`, ``logic.billing.document.check_amount``)."""


def over_minor_limit(amount_minor: int) -> bool:
    """Whether an amount already in minor units (either sign) is beyond :data:`MAX_LINE_MINOR`: the
    same limit for every amount an invoice or a credit note carries (lines, discounts, taxes, totals).

    Example:
        >>> over_minor_limit(10**18), over_minor_limit(-(10**18) - 1)
        (False, True)
    """
    return abs(amount_minor) > MAX_LINE_MINOR


def over_line_limit(amount: Decimal, currency: str) -> bool:
    """Whether an exact line amount (either sign) is beyond :data:`MAX_LINE_MINOR` in ``currency``.

    Example:
        >>> over_line_limit(Decimal("1E+16"), "USD"), over_line_limit(Decimal("-1.000000000001E+16"), "USD")
        (False, True)
    """
    return abs(amount) > Decimal(MAX_LINE_MINOR).scaleb(-minor_exponent(currency))
