"""The oracle's reference model: what the product should answer, derived from the docs with plain Decimal
arithmetic (docs/limits.md for what ingest takes, docs/pricing.md for prices, periods and proration).

Nothing here imports the product: a shared mistake would hide itself.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any

WIDE = Context(prec=200)
MINOR_DIGITS = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}
MAX_DIGITS = 38  # DynamoDB numbers: 38 significant digits, magnitude 1E-130 .. 1E+126
MIN_EXP, MAX_EXP = -130, 126


# ---------------------------------------------------------------- numbers
def storable(number: Decimal) -> bool:
    """Whether DynamoDB keeps ``number`` exactly (docs/limits.md)."""
    if number == 0:
        return True
    digits = number.normalize(WIDE).as_tuple()
    adjusted = len(digits.digits) + int(digits.exponent) - 1
    return len(digits.digits) <= MAX_DIGITS and MIN_EXP <= adjusted < MAX_EXP


def api_takes(value: Any) -> bool:
    """Whether ``POST /v1/events`` takes a property value (docs/limits.md, 'property value' and 'Numbers'):
    booleans, numbers DynamoDB stores exactly, text of at most 1,024 characters that, when it reads as a
    number, reads as a storable one."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int | Decimal):
        number = Decimal(value)
        return number.is_finite() and storable(number)
    if isinstance(value, str):
        number = as_number(value)
        return len(value) <= 1024 and (number is None or storable(number))
    return False  # null, arrays, objects


def negative(value: Any) -> bool:
    """Whether a meter reads ``value`` as a negative number (docs/limits.md, 'Negative values')."""
    number = as_number(value)
    return number is not None and number < 0


def canonical(number: Decimal) -> str:
    """A decimal's canonical text: no exponent, no trailing zeros (``1.50`` -> ``1.5``)."""
    return format(number.normalize(WIDE), "f")


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def as_number(value: Any) -> Decimal | None:
    """The number a numeric meter reads from a property, or None (the event is parked)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


# ---------------------------------------------------------------- catalog
@dataclass(frozen=True)
class MeterSpec:
    code: str
    aggregation: str
    field: str | None = None
    group_by: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "name": self.code.title(), "aggregation": self.aggregation}
        if self.field:
            body["field"] = self.field
        if self.group_by:
            body["group_by"] = list(self.group_by)
        return body

    def group(self, properties: dict[str, Any]) -> str:
        return "|".join(f"{key}={as_text(properties.get(key))}" for key in self.group_by)


METERS = {
    m.code: m
    for m in (
        MeterSpec("calls", "count"),
        MeterSpec("tokens", "sum", "tokens", ("model",)),
        MeterSpec("peak_gb", "max", "gb"),
        MeterSpec("seats", "unique_count", "user"),
        MeterSpec("level", "latest", "lvl"),
    )
}


@dataclass(frozen=True)
class Charge:
    meter: str
    model: str  # per_unit | graduated | volume | package
    unit_price: Decimal | None = None
    tiers: tuple[tuple[Decimal | None, Decimal, Decimal], ...] = ()  # (up_to, unit_price, flat_fee)
    package_size: int | None = None
    package_price: Decimal | None = None
    free_units: Decimal = Decimal(0)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"meter_code": self.meter, "model": self.model}
        if self.unit_price is not None:
            body["unit_price"] = self.unit_price
        if self.tiers:
            body["tiers"] = [{"up_to": u, "unit_price": p, "flat_fee": f} for u, p, f in self.tiers]
        if self.package_size is not None:
            body["package_size"] = self.package_size
            body["package_price"] = self.package_price
        if self.free_units:
            body["free_units"] = self.free_units
        return body

    def price(self, quantity: Decimal) -> Decimal:
        """The exact amount (major units) for ``quantity`` metered units (docs/pricing.md table)."""
        with localcontext(WIDE):
            b = max(Decimal(0), quantity - self.free_units)
            if b == 0:
                return Decimal(0)
            if self.model == "per_unit":
                assert self.unit_price is not None
                return b * self.unit_price
            if self.model == "package":
                assert self.package_size and self.package_price is not None
                return (b / self.package_size).to_integral_value(ROUND_CEILING) * self.package_price
            if self.model == "volume":
                for up_to, unit, flat in self.tiers:
                    if up_to is None or b <= up_to:
                        return b * unit + flat
                raise AssertionError("the last tier is open")
            total, previous = Decimal(0), Decimal(0)
            for up_to, unit, flat in self.tiers:  # graduated
                if b <= previous:
                    break
                units = (b if up_to is None else min(b, up_to)) - previous
                total += units * unit + flat
                previous = up_to if up_to is not None else b
            return total


@dataclass(frozen=True)
class PlanVersion:
    code: str
    currency: str
    fee: Decimal | None = None
    timing: str = "advance"
    minimum: Decimal | None = None
    charges: tuple[Charge, ...] = ()
    interval: str = "month"

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "name": self.code.title(),
            "currency": self.currency,
            "interval": self.interval,
            "charges": [c.body() for c in self.charges],
        }
        if self.fee is not None:
            body["fixed_fee"] = {"amount": self.fee, "timing": self.timing}
        if self.minimum is not None:
            body["minimum_commitment"] = self.minimum
        return body

    def meters(self) -> set[str]:
        return {c.meter for c in self.charges}


def to_minor(amount: Decimal, currency: str) -> int:
    """The one rounding rule: half-up at the currency's minor unit, once per line."""
    with localcontext(WIDE):
        return int((amount * 10 ** MINOR_DIGITS[currency]).quantize(Decimal(1), rounding=ROUND_HALF_UP))


MAX_LINE_MINOR = 10**18  # docs/pricing.md, "An amount too large to bill"


def usage_minor(charge: Charge, quantity: Decimal, currency: str) -> int:
    """A usage line's amount: the charge's price rounded once, or 0 when the exact amount is over 10^18
    minor units (rated 0 and flagged ``amount_too_large``, docs/pricing.md)."""
    exact = charge.price(quantity)
    with localcontext(WIDE):
        if abs(exact) * 10 ** MINOR_DIGITS[currency] > MAX_LINE_MINOR:
            return 0
    return to_minor(exact, currency)


# ---------------------------------------------------------------- periods
INTERVALS = ("day", "week", "month", "quarter", "year")  # docs/billing.md, "Plan intervals"
HORIZON = timedelta(days=80)  # periods modelled from a start: 34 days back plus the clock's 40 ahead


def add_months(anchor: datetime, n: int) -> datetime:
    """Monthly periods from the anchor, the day clamped to the month's length (docs/billing.md)."""
    month0 = anchor.month - 1 + n
    year, month = anchor.year + month0 // 12, month0 % 12 + 1
    return anchor.replace(year=year, month=month, day=min(anchor.day, calendar.monthrange(year, month)[1]))


def add_periods(anchor: datetime, interval: str, n: int) -> datetime:
    """Boundary ``n`` of a subscription anchored at ``anchor`` (UTC): 24 h or 7 x 24 h per day or week,
    1, 3 or 12 clamped calendar months per month, quarter or year (docs/billing.md, "Plan intervals")."""
    if interval in ("day", "week"):
        return anchor + timedelta(days=n if interval == "day" else 7 * n)
    return add_months(anchor, n * {"month": 1, "quarter": 3, "year": 12}[interval])


def seconds(a: datetime, b: datetime) -> Decimal:
    delta = b - a
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(10**6)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# ---------------------------------------------------------------- usage
@dataclass
class Cell:
    """One (customer, meter, hour, group): the accepted events counted there."""

    values: list[tuple[str, Any]] = field(default_factory=list)  # (timestamp, value as sent)


@dataclass
class Usage:
    cells: dict[tuple[str, str, datetime, str], Cell] = field(default_factory=lambda: defaultdict(Cell))

    def add(self, customer: str, meter: MeterSpec, timestamp: str, properties: dict[str, Any]) -> None:
        at = parse_time(timestamp)
        value = properties.get(meter.field) if meter.field else None
        self.cells[(customer, meter.code, hour_of(at), meter.group(properties))].values.append(
            (timestamp, value)
        )

    def quantity(
        self, meter: MeterSpec, cells: list[Cell]
    ) -> tuple[int, Decimal | None, set[Decimal] | None]:
        """(events, quantity, the set of admissible quantities when ties make `latest` ambiguous)."""
        values = [v for c in cells for v in c.values]
        events = len(values)
        if not values:
            return 0, None, None
        aggregation = meter.aggregation
        with localcontext(WIDE):
            if aggregation == "count":
                return events, Decimal(events), None
            if aggregation == "unique_count":
                return events, Decimal(len({as_text(v) for _, v in values})), None
            numbers = [(parse_time(t), as_number(v)) for t, v in values]
            if aggregation == "sum":
                return events, sum((n for _, n in numbers if n is not None), Decimal(0)), None
            if aggregation == "max":
                return events, max(n for _, n in numbers if n is not None), None
            last = max(t for t, _ in numbers)
            tied = {n for t, n in numbers if t == last and n is not None}
            return events, None, tied

    def hours(self, customer: str, meter: str) -> dict[datetime, list[Cell]]:
        found: dict[datetime, list[Cell]] = defaultdict(list)
        for (c, m, hour, _), cell in self.cells.items():
            if c == customer and m == meter and cell.values:
                found[hour].append(cell)
        return found

    def groups(self, customer: str, meter: str, hours: set[datetime]) -> dict[str, list[Cell]]:
        found: dict[str, list[Cell]] = defaultdict(list)
        for (c, m, hour, group), cell in self.cells.items():
            if c == customer and m == meter and hour in hours and cell.values:
                found[group].append(cell)
        return found


# ---------------------------------------------------------------- subscriptions and invoices
@dataclass
class Phase:
    version: PlanVersion
    start: datetime
    end: datetime | None = None
    recorded: datetime | None = None  # when a plan change recorded it (None: the first phase)


@dataclass
class Subscription:
    id: str
    customer: str
    start: datetime
    phases: list[Phase]
    ended_at: datetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    # the model's billing clock runs ahead of the API's: the final window of an immediate cancellation
    # (due at ended_at, the API's "now") is only expected once a billing run came after the cancellation
    run_after_end: bool = False

    def meters(self) -> set[str]:
        return {m for p in self.phases for m in p.version.meters()}

    def live(self) -> bool:
        return self.ended_at is None and not self.cancel_at_period_end

    def prepaid(self, period_start: datetime) -> int | None:
        """The phase whose advance fee pays for the period starting at ``period_start`` (docs/billing.md,
        "Plan change at a period start, made later"): that fee is billed when the period starts, under the
        phases known then: the first always, a later one only when recorded before ``period_start``; of
        those, the last that starts at or before it."""
        found = None
        for index, phase in enumerate(self.phases):
            known = index == 0 or phase.recorded is None or phase.recorded < period_start
            if phase.start > period_start or not known:
                break
            found = index
        return found

    @property
    def interval(self) -> str:
        return self.phases[0].version.interval  # a plan change keeps the interval

    def boundary(self, k: int) -> datetime:
        return add_periods(self.start, self.interval, k)

    def period(self, k: int) -> tuple[datetime, datetime]:
        return self.boundary(k), self.boundary(k + 1)

    def period_of(self, at: datetime) -> int:
        k = 0
        while self.boundary(k + 1) <= at:
            k += 1
        return k

    def last_period(self) -> int | None:
        """The index of the last period billed (None while the subscription runs on)."""
        if self.ended_at is not None:
            return self.period_of(self.ended_at - timedelta(microseconds=1))
        if self.cancel_at_period_end and self.canceled_at is not None:
            return self.period_of(self.canceled_at)
        return None

    def windows(self) -> list[tuple[str, datetime, datetime, datetime]]:
        """(kind, period start, window end, due at) of every window that will ever exist, in order.

        Infinite subscriptions are cut at the periods starting within ``HORIZON`` of their start (the
        oracle's clock never goes further)."""
        found = [("opening", self.start, self.boundary(1), self.start)]
        last = self.last_period()
        if last is None:
            last = self.period_of(self.start + HORIZON)
        for k in range(last + 1):
            start, end = self.period(k)
            if self.ended_at is not None and self.ended_at < end:
                end = self.ended_at
            found.append(("usage", start, end, end))
        return found


def rate_window(
    sub: Subscription, usage: Usage, meters: dict[str, MeterSpec], kind: str, start: datetime
) -> dict[str, int] | None:
    """The invoice lines (line id -> amount_minor, zero lines left out) of one window, or None when a
    `latest` tie makes a usage line ambiguous (then that invoice is not compared)."""
    first = sub.phases[0].version
    currency = first.currency
    lines: dict[str, int] = {}
    if kind == "opening":
        if first.fee is not None and first.timing == "advance":
            lines["fixed_fee:advance:0"] = to_minor(first.fee, currency)
        return {k: v for k, v in lines.items() if v}
    ps, pe = start, sub.boundary(sub.period_of(start) + 1)
    length = seconds(ps, pe)
    stop = min(pe, sub.ended_at) if sub.ended_at else pe

    def own_time(index: int) -> tuple[datetime, datetime]:
        phase = sub.phases[index]
        a = max(phase.start, ps)
        b = min(phase.end or pe, stop)
        return a, max(a, b)

    usage_total = 0
    minimum: Decimal | None = None
    with localcontext(WIDE):
        for index, phase in enumerate(sub.phases):
            a, b = own_time(index)
            version = phase.version
            if version.minimum is not None and b > a:
                minimum = (minimum or Decimal(0)) + version.minimum * seconds(a, b) / length
            if b <= a and not (phase.start <= ps and (phase.end is None or phase.end > ps)):
                continue
            hours = _hours_of(sub, a, b)
            for charge in version.charges:
                meter = meters[charge.meter]
                for group, cells in usage.groups(sub.customer, charge.meter, hours).items():
                    _, quantity, tied = usage.quantity(meter, cells)
                    if quantity is None:
                        if tied is None or len({usage_minor(charge, q, currency) for q in tied}) != 1:
                            return None
                        quantity = next(iter(tied))
                    amount = usage_minor(charge, quantity, currency)
                    lines[f"usage:{charge.meter}:{group}:{index}"] = amount
                    usage_total += amount
            if version.fee is not None and version.timing == "arrears" and b > a:
                lines[f"fixed_fee:arrears:{index}"] = to_minor(version.fee * seconds(a, b) / length, currency)
        # advance fees: credit the prepaid phase's unused time, charge every other phase its own time in P
        prepaid = sub.prepaid(ps)
        for index, phase in enumerate(sub.phases):
            version = phase.version
            if version.fee is None or version.timing != "advance":
                continue
            a, b = own_time(index)
            if index == prepaid:
                if b < pe:
                    unused = version.fee * seconds(b, pe) / length
                    lines[f"proration:credit:{index}"] = -to_minor(unused, currency)
            elif b > a:
                lines[f"proration:charge:{index}"] = to_minor(version.fee * seconds(a, b) / length, currency)
        if minimum is not None:
            floor = to_minor(minimum, currency)
            if floor > usage_total:
                lines["minimum_commitment"] = floor - usage_total
        ends_here = (sub.ended_at is not None and sub.ended_at <= pe) or (
            sub.cancel_at_period_end and sub.canceled_at is not None and sub.canceled_at < pe
        )
        ahead = sub.prepaid(pe)
        if not ends_here and ahead is not None:  # the next period's fee, under the phases known at period_end
            version = sub.phases[ahead].version
            if version.fee is not None and version.timing == "advance":
                lines[f"fixed_fee:advance:{ahead}"] = to_minor(version.fee, currency)
    return {k: v for k, v in lines.items() if v}


def _hours_of(sub: Subscription, a: datetime, b: datetime) -> set[datetime]:
    """The hours whose effective start (the subscription start for its first hour) lies in [a, b)."""
    hours = set()
    hour = hour_of(a)
    while hour < b:
        effective = max(hour, sub.start)
        if a <= effective < b:
            hours.add(hour)
        hour += timedelta(hours=1)
    return hours
