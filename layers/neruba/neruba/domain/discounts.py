"""Coupons and the discounts they give an invoice: pure rules, no storage.

A coupon takes a fixed amount off (``amount_minor`` in one ``currency``) or a ``percent`` (an exact
Decimal, 0 to 100); its ``duration`` is ``once`` (one billing period), ``repeating`` (``periods``
billing periods) or ``forever``. A discount is a coupon attached to a customer, a subscription or a plan
version (``logic.billing.discounts``).

How an invoice is discounted (:func:`apply_discounts`; docs/billing.md, "Coupons and discounts"):

- only the positive lines are discounted (a credit line or a negative adjustment takes none), and the
  discounts together never take more than those lines hold: an invoice never goes below zero by a
  discount;
- discounts apply one after the other, in the order given, each on what the earlier ones left;
- a percentage is ``percent`` x the amount left, an exact Decimal rounded once, half-up, to minor units
  (``domain.money.to_minor``, the one rounding rule); a fixed amount is capped at the amount left;
- the amount is then shared between the lines in proportion to what is left of each
  (:func:`allocate`: whole minor units by the largest remainder, ties to the earlier line), so the shares
  always sum exactly to the discount.

Example:
    >>> c = Coupon("co_1", "percentage", percent=Decimal("10"), duration="forever")
    >>> [d.allocations for d in apply_discounts([("fee", 1000), ("usage", 505)], [("di_1", c)], "USD")]
    [{'fee': 100, 'usage': 51}]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from typing import Literal

from neruba.domain.money import minor_exponent, to_minor

CouponKind = Literal["fixed", "percentage"]
Duration = Literal["once", "repeating", "forever"]
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Coupon:
    """The terms of a coupon (what a discount applies)."""

    coupon_id: str
    kind: CouponKind
    amount_minor: int | None = None
    currency: str | None = None
    percent: Decimal | None = None
    duration: Duration = "once"
    periods: int | None = None  # repeating only


@dataclass(frozen=True, slots=True)
class AppliedDiscount:
    """One discount on one invoice: its amount, the exact figure before rounding (percentages), and what
    it took off each line (``allocations``: line id -> minor units, positive shares only)."""

    discount_id: str
    coupon: Coupon
    base_minor: int  # what was left to discount when it applied
    amount_minor: int
    exact: Decimal
    allocations: dict[str, int] = field(default_factory=dict)
    capped: bool = False  # a fixed amount larger than what was left
    skipped: str | None = None  # why it took nothing (currency_mismatch)


def periods_left(coupon: Coupon, used: int) -> int | None:
    """Billing periods the coupon still discounts after ``used`` of them (None: forever)."""
    if coupon.duration == "forever":
        return None
    total = 1 if coupon.duration == "once" else int(coupon.periods or 0)
    return max(0, total - used)


@dataclass(frozen=True, slots=True)
class PeriodUse:
    """How far a discount has gone for one subscription: ``used`` billing periods counted, the last of
    them keyed ``period`` (its start), and ``taken_minor`` what the discount took in that period so far
    across its invoices."""

    used: int = 0
    period: str | None = None
    taken_minor: int = 0


@dataclass(frozen=True, slots=True)
class Turn:
    """What a discount gives one invoice of the billing period ``key``: it is period ``number`` of the
    duration, ``new`` when that period is not counted yet, and ``cap_minor`` the most a fixed amount may
    still take in it (None: a percentage, no cap)."""

    key: str
    number: int
    new: bool
    cap_minor: int | None


def turn(coupon: Coupon, use: PeriodUse, key: str) -> Turn | None:
    """The discount's turn on an invoice of the billing period keyed ``key`` (period keys compare in
    time order), or None when it gives that invoice nothing: its periods are all used, or the invoice
    belongs to a period before the last one counted (that period is closed).

    Example:
        >>> c = Coupon("co_1", "fixed", amount_minor=500, currency="USD", duration="once")
        >>> turn(c, PeriodUse(1, "2026-01-01", 120), "2026-01-01")  # the counted period: 380 left
        Turn(key='2026-01-01', number=1, new=False, cap_minor=380)
        >>> turn(c, PeriodUse(1, "2026-01-01", 120), "2026-01-02") is None  # once: no second period
        True
    """
    fixed = int(coupon.amount_minor or 0) if coupon.kind == "fixed" else None
    if use.period == key:
        return Turn(key, use.used, False, None if fixed is None else max(0, fixed - use.taken_minor))
    if use.period is not None and key < use.period:
        return None
    left = periods_left(coupon, use.used)
    if left is not None and left <= 0:
        return None
    return Turn(key, use.used + 1, True, fixed)


def after(use: PeriodUse, step: Turn, amount_minor: int) -> PeriodUse | None:
    """The use once an invoice took ``amount_minor`` on its ``step``; None when nothing changes (an
    invoice discounted by 0 counts no period and takes nothing)."""
    if amount_minor <= 0:
        return None
    taken = amount_minor if step.new else use.taken_minor + amount_minor
    return PeriodUse(step.number, step.key, taken)


def allocate(amount: int, lines: Sequence[tuple[str, int]]) -> dict[str, int]:
    """``amount`` shared between ``lines`` (id, amount > 0) in proportion to their amounts, in whole
    minor units by the largest remainder (ties to the earlier line); the shares sum to ``amount`` and
    none exceeds its line.

    Example:
        >>> allocate(100, [("a", 300), ("b", 300), ("c", 300)])
        {'a': 34, 'b': 33, 'c': 33}
    """
    base = sum(value for _, value in lines)
    if amount > base or amount < 0:
        raise ValueError(f"cannot allocate {amount}: more than the lines hold ({base}) or negative")
    return share_out(amount, lines)


def share_out(amount: int, weights: Sequence[tuple[str, int]]) -> dict[str, int]:
    """``amount`` (>= 0) shared in proportion to positive integer ``weights`` by the largest remainder
    (ties to the earlier one): the shares sum to ``amount``."""
    lines = weights
    base = sum(value for _, value in lines)
    if amount == 0 or base <= 0:
        return {line_id: 0 for line_id, _ in lines}
    shares = {line_id: amount * value // base for line_id, value in lines}
    left = amount - sum(shares.values())
    order = sorted(range(len(lines)), key=lambda i: (-(amount * lines[i][1] % base), i))
    for i in order[:left]:
        shares[lines[i][0]] += 1
    return shares


def coupon_amount(coupon: Coupon, base_minor: int, currency: str) -> tuple[int, Decimal]:
    """The discount a coupon gives on ``base_minor`` (>= 0): (minor units, exact figure in minor units)."""
    if coupon.kind == "percentage":
        with localcontext(Context(prec=60)):
            exact = Decimal(base_minor) * (coupon.percent or Decimal(0)) / HUNDRED
            rounded = to_minor(exact.scaleb(-minor_exponent(currency)), currency)
        return min(rounded, base_minor), exact
    amount = int(coupon.amount_minor or 0)
    return min(amount, base_minor), Decimal(amount)


def apply_discounts(
    lines: Sequence[tuple[str, int]],
    discounts: Sequence[tuple[str, Coupon]],
    currency: str,
    eligible: Callable[[str, str], bool] | None = None,
) -> list[AppliedDiscount]:
    """Each discount (id, coupon), in order, on what the earlier ones left of the positive ``lines``;
    ``eligible(discount_id, line_id)`` narrows the lines a discount may reduce (None: all of them)."""
    left = {line_id: amount for line_id, amount in lines if amount > 0}
    out = []
    for discount_id, coupon in discounts:
        mine = {k: v for k, v in left.items() if v > 0 and (eligible is None or eligible(discount_id, k))}
        base = sum(mine.values())
        if coupon.kind == "fixed" and coupon.currency != currency:
            out.append(
                AppliedDiscount(discount_id, coupon, base, 0, Decimal(0), {}, skipped="currency_mismatch")
            )
            continue
        amount, exact = coupon_amount(coupon, base, currency)
        shares = allocate(amount, list(mine.items()))
        for line_id, share in shares.items():
            left[line_id] -= share
        capped = coupon.kind == "fixed" and int(coupon.amount_minor or 0) > base
        allocations = {k: v for k, v in shares.items() if v > 0}
        out.append(AppliedDiscount(discount_id, coupon, base, amount, exact, allocations, capped))
    return out
