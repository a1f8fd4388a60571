"""Usage lines of one plan version: each charge applied to each meter's (and group's) usage.

Example:
    >>> from datetime import UTC
    >>> plan = {"code": "api", "version": 1, "currency": "USD", "charges": [
    ...     {"meter_code": "calls", "model": "per_unit", "unit_price": "0.00025", "free_units": "0"}]}
    >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    >>> [l.amount_minor for l in usage_lines(plan, t0, t1, {"calls": {"": GroupUsage(Decimal(1234))}})]
    [31]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from neruba.domain.event_rules import digest, rule_of
from neruba.domain.level_intervals import LevelInterval, shown
from neruba.domain.numbers import canonical_text
from neruba.domain.pricing import (
    EXACT,
    MAX_LINE_MINOR,
    ZERO,
    InvoiceLine,
    Priced,
    exact,
    line_minor,
    over_line_limit,
    price_charge,
    price_for_group,
)

ADVANCE_NOTE = "already billed in advance, event by event, on advance lines: not billed again here"
"""What a usage line of a pay-in-advance charge says: its quantity is shown, its amount is 0 (each event
was billed when it arrived, ``domain.advance``), so the period's invoice never bills those units twice."""


@dataclass(frozen=True, slots=True)
class GroupUsage:
    """The aggregated usage of one meter and group over a span: quantity, hourly cells read, events."""

    quantity: Decimal
    hours: int = 0
    events: int = 0
    # per-event rules (domain.event_rules): digest -> sum of the events' charges / events it priced
    event_sums: Mapping[str, Decimal] = field(default_factory=dict)
    event_counts: Mapping[str, int] = field(default_factory=dict)
    carried_from: str | None = None  # a latest meter with carry_over: when the carried value was reported
    aggregation: str | None = None  # the meter's aggregation (the line's ``source.aggregation``)
    # a weighted_sum meter: the level intervals behind the quantity (``domain.level_intervals``)
    intervals: tuple[LevelInterval, ...] = ()


def parse_group(key: str) -> dict[str, str]:
    """``"model=gpt|region=eu"`` -> ``{"model": "gpt", "region": "eu"}`` (empty key -> ``{}``)."""
    return dict(part.partition("=")[::2] for part in key.split("|") if part)


def usage_lines(
    version: Mapping[str, Any],
    period_start: datetime,
    period_end: datetime,
    usage: Mapping[str, Mapping[str, GroupUsage]],
    *,
    phase_index: int = 0,
) -> list[InvoiceLine]:
    """The usage lines of one plan version over [period_start, period_end).

    ``usage`` maps meter code -> group key (``""`` when the meter has no groups) -> usage. Each group is
    priced with the whole charge on its own (its own free units and tiers). A charge without usage gives
    one zero line, so every charge of the plan shows on the invoice.

    Example:
        >>> from datetime import UTC
        >>> plan = {"code": "api", "version": 1, "currency": "USD", "charges": [
        ...     {"meter_code": "calls", "model": "per_unit", "unit_price": "0.00025", "free_units": "0"}]}
        >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
        >>> [l.amount_minor for l in usage_lines(plan, t0, t1, {"calls": {"": GroupUsage(Decimal(1234))}})]
        [31]
    """
    currency = str(version["currency"])
    lines = []
    for charge in version.get("charges") or []:
        meter = str(charge["meter_code"])
        groups = usage.get(meter) or {"": GroupUsage(ZERO)}
        for key in sorted(groups):
            cell = groups[key]
            group = parse_group(key)
            price, matched = price_for_group(charge, group)
            rated = rate_quantity(price, cell.quantity, currency, cell.events, _per_event(price, cell))
            priced = rated.priced
            label = ", ".join(f"{k}={v}" for k, v in group.items())
            advance = bool(charge.get("pay_in_advance"))  # billed per event when it arrived, not here
            by_filter = (
                {} if matched is None else {"filter": matched, "filter_values": price_filter(charge, matched)}
            )
            lines.append(
                InvoiceLine(
                    line_id=f"usage:{meter}:{key}:{phase_index}",
                    kind="usage",
                    description=f"{meter} ({charge['model']})"
                    + (f" [{label}]" if label else "")
                    + (f" priced by filter {matched}" if matched is not None else "")
                    + explain(priced, cell.events)
                    + (
                        f"; no report this period: the value of {cell.carried_from} carried over"
                        if cell.carried_from
                        else ""
                    )
                    + (
                        f"; time-weighted: the level over {len(cell.intervals)} interval(s) of the period"
                        if cell.intervals
                        else ""
                    )
                    + "".join(f"; {note}" for note in rated.notes)
                    + (f"; {ADVANCE_NOTE}" if advance else ""),
                    meter_code=meter,
                    group=group,
                    quantity=priced.quantity,
                    unit_price=priced.unit_price,
                    tiers=priced.tiers,
                    amount_minor=0 if advance else rated.amount_minor,
                    period_start=period_start,
                    period_end=period_end,
                    plan_code=str(version["code"]),
                    plan_version=int(version["version"]),
                    source={
                        **({"aggregation": cell.aggregation} if cell.aggregation else {}),
                        "hours": cell.hours,
                        "events": cell.events,
                        "free_units": exact(price.get("free_units") or 0),
                        "billable_quantity": priced.billable,
                        "amount": priced.amount if rated.amount is None else rated.amount,
                        **priced.source,
                        **by_filter,
                        **({"carried_from": cell.carried_from} if cell.carried_from else {}),
                        **_intervals(cell.intervals),
                        **rated.source,
                        **({"billed_in_advance": True, "amount": ZERO} if advance else {}),
                    },
                )
            )
    return lines


def _intervals(rows: tuple[LevelInterval, ...]) -> dict[str, Any]:
    """A weighted_sum line's ``intervals`` (the first rows) and ``intervals_more`` (what the rest add up
    to, when there are more than a line shows: ``domain.level_intervals.shown``)."""
    if not rows:
        return {}
    first, more = shown(list(rows))
    return {"intervals": [i.to_dict() for i in first], **({"intervals_more": more} if more else {})}


def price_filter(charge: Mapping[str, Any], index: int) -> dict[str, list[str]]:
    """The ``values`` of the charge's filter ``index`` (what a line priced by it shows in ``source``)."""
    values = charge["filters"][index].get("values") or {}
    return {str(key): [str(v) for v in allowed] for key, allowed in values.items()}


def explain(priced: Priced, events: int) -> str:
    """What a line's description adds to say how its amount was found, for models whose rows alone do
    not (percentage: the rate on the amount, the fixed fee on the events past the free ones).

    Example:
        >>> from neruba.domain.pricing import price_charge
        >>> explain(price_charge({"model": "percentage", "rate": "1.2", "fixed_fee": "0.1",
        ...                       "free_events": 3}, Decimal(450), 4), 4)
        ': 1.2% of 450 + 0.1 x 1 of 4 events (3 free)'
    """
    source = {key: _shown(value) for key, value in priced.source.items()}
    billable = _shown(priced.billable)
    if "multiplier" in source:
        return f": the events' amounts, {billable}, x {source['multiplier']}"
    if "rate" not in source:
        return ""
    if "per_event_charges" in source:
        low, high = source.get("per_event_min"), source.get("per_event_max")
        bounds = " and ".join(
            text
            for text in (low is not None and f"at least {low}", high is not None and f"at most {high}")
            if text
        )
        return (
            f": each event {source['rate']}% + {source['fixed_fee']}, {bounds}:"
            f" {events} events = {source['per_event_charges']}"
        )
    text = f": {source['rate']}% of {billable}"
    if priced.source.get("fixed_fee"):
        free = source["free_events"]
        text += f" + {source['fixed_fee']} x {source['billable_events']} of {events} events"
        text += f" ({free} free)" if priced.source.get("free_events") else ""
    return text


def _shown(value: Any) -> Any:
    """A number as a description shows it: canonical decimal text (no exponent, no trailing zeros)."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return canonical_text(value)
    if isinstance(value, str):
        try:
            return canonical_text(Decimal(value))
        except ArithmeticError:
            return value
    return value


@dataclass(frozen=True, slots=True)
class RatedQuantity:
    """One usage quantity priced: the pricing, the line's ``amount_minor``, what the line's description
    adds (``notes``) and what its ``source`` adds (``net_quantity``, ``unbillable``)."""

    priced: Priced
    amount_minor: int
    notes: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)
    amount: Decimal | None = None  # the exact amount in the plan's currency (priced.amount converted)


def _per_event(price: Mapping[str, Any], cell: GroupUsage) -> tuple[Decimal, int] | None:
    """The sum of the events' charges under the price's per-event rule and how many events it priced
    (None when the price has no per-event rule)."""
    rule = rule_of(price)
    if rule is None:
        return None
    name = digest(rule)
    return cell.event_sums.get(name, ZERO), cell.event_counts.get(name, 0)


def rate_quantity(
    charge: Mapping[str, Any],
    quantity: Decimal,
    currency: str,
    events: int = 0,
    per_event: tuple[Decimal, int] | None = None,
) -> RatedQuantity:
    """Price one usage quantity, never refusing it.

    A net negative quantity (a meter that allows negative values, netted below zero) is priced as a
    quantity of 0 (``source.net_quantity`` keeps it: what a model bills at 0, such as a percentage's fees
    per event or a first tier's flat fee, is still billed); a line is never negative: an amount below 0
    (per-event charges of refunds) is billed as 0 (``source.net_amount`` keeps it); an amount over
    ``MAX_LINE_MINOR`` is billed as 0 and flagged ``source.unbillable``; each says so in ``notes``.

    Example:
        >>> rated = rate_quantity({"model": "per_unit", "unit_price": "2"}, Decimal(-3), "USD")
        >>> (rated.priced.quantity, rated.amount_minor, rated.notes)
        (Decimal('0'), 0, ('net usage was negative (-3): priced as a quantity of 0',))
    """
    notes: list[str] = []
    source: dict[str, Any] = {}
    if quantity < 0:
        source["net_quantity"] = quantity
        notes.append(f"net usage was negative ({quantity}): priced as a quantity of 0")
    priced = price_charge(charge, max(quantity, ZERO), events, per_event[0] if per_event else None)
    amount = priced.amount
    unit = charge.get("pricing_unit")
    if unit:
        rate = exact(unit["conversion_rate"], "pricing_unit.conversion_rate")
        with localcontext(EXACT):
            amount = priced.amount * rate
        source.update(pricing_unit=unit["code"], conversion_rate=rate, amount_in_pricing_unit=priced.amount)
        notes.append(
            f"{canonical_text(priced.amount)} {unit['code']} at {canonical_text(rate)} {currency} each"
        )
    if per_event is not None and per_event[1] != events:
        source["unbillable"] = "per_event_rule_incomplete"
        source["per_event_priced"] = per_event[1]
        notes.append(
            f"only {per_event[1]} of {events} events were priced by the per-event rule when counted:"
            " billed as 0 until the usage sweep recounts them"
        )
        return RatedQuantity(priced, 0, tuple(notes), source, amount)
    if amount < 0:
        source["net_amount"] = amount
        notes.append(f"the events' charges net below zero ({canonical_text(amount)}): billed as 0")
        return RatedQuantity(priced, 0, tuple(notes), source, ZERO)
    if over_line_limit(amount, currency):
        source["unbillable"] = "amount_too_large"
        notes.append(f"amount too large to bill (over {MAX_LINE_MINOR} minor units): billed as 0")
        return RatedQuantity(priced, 0, tuple(notes), source, amount)
    return RatedQuantity(priced, line_minor(amount, currency), tuple(notes), source, amount)


def trial_usage_lines(
    version: Mapping[str, Any],
    period_start: datetime,
    period_end: datetime,
    usage: Mapping[str, Mapping[str, GroupUsage]],
    *,
    phase_index: int = 0,
) -> list[InvoiceLine]:
    """Zero-amount lines showing the usage of a trial: one per charged meter and group with usage.

    Line id ``usage:{meter}:{group}:{phase}:trial``, ``source.trial`` true. Trial usage is not priced,
    uses no free units and fills no tier of the paid part.

    Example:
        >>> from datetime import UTC
        >>> plan = {"code": "api", "version": 1, "currency": "USD", "charges": [
        ...     {"meter_code": "calls", "model": "per_unit", "unit_price": "1", "free_units": "0"}]}
        >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC)
        >>> [(l.line_id, l.quantity, l.amount_minor) for l in
        ...  trial_usage_lines(plan, t0, t1, {"calls": {"": GroupUsage(Decimal(7), 1, 7)}})]
        [('usage:calls::0:trial', Decimal('7'), 0)]
    """
    lines = []
    for charge in version.get("charges") or []:
        meter = str(charge["meter_code"])
        groups = usage.get(meter) or {}
        for key in sorted(groups):
            cell = groups[key]
            if not cell.quantity and not cell.events:
                continue
            group = parse_group(key)
            label = ", ".join(f"{k}={v}" for k, v in group.items())
            lines.append(
                InvoiceLine(
                    line_id=f"usage:{meter}:{key}:{phase_index}:trial",
                    kind="usage",
                    description=f"{meter} during the trial (not charged)" + (f" [{label}]" if label else ""),
                    meter_code=meter,
                    group=group,
                    quantity=cell.quantity,
                    unit_price=None,
                    tiers=[],
                    amount_minor=0,
                    period_start=period_start,
                    period_end=period_end,
                    plan_code=str(version["code"]),
                    plan_version=int(version["version"]),
                    source={
                        **({"aggregation": cell.aggregation} if cell.aggregation else {}),
                        "hours": cell.hours,
                        "events": cell.events,
                        "trial": True,
                        "amount": ZERO,
                    },
                )
            )
    return lines
