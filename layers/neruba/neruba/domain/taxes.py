"""Tax rates and the tax of an invoice line: pure rules, no storage.

A tax rate is a ``percent`` (an exact Decimal), ``inclusive`` (the price already contains it) or
exclusive (added on top), for a jurisdiction (``country`` and optional ``state``) and optionally one
plan (``logic.billing.taxes`` picks the rates of an invoice). Each line is taxed on its amount after
discounts (:func:`line_tax`; docs/billing.md, "Taxes"):

- **inclusive** rates: the tax contained in the amount ``A`` is ``A - A / (1 + sum of inclusive
  rates)``, an exact Decimal rounded once, half-up (``domain.money.to_minor``); the line's net is ``A``
  minus that, so net + inclusive tax = ``A`` exactly. Several inclusive rates share the rounded tax in
  proportion to their percentages (largest remainder, ``domain.discounts.share_out``);
- **exclusive** rates: each is ``percent`` x the net, rounded once, half-up, and added on top;
- a negative line (a credit) has negative tax: the same rule on its absolute value, sign kept.

Example:
    >>> line_tax(1000, [TaxRate("txr_1", Decimal("20"), inclusive=False)], "USD").exclusive_minor
    200
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext

from neruba.domain.discounts import HUNDRED, share_out
from neruba.domain.money import minor_exponent, to_minor


@dataclass(frozen=True, slots=True)
class TaxRate:
    """A tax rate as billing applies it."""

    tax_rate_id: str
    percent: Decimal
    inclusive: bool = False
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class TaxPart:
    """One rate's tax on one line."""

    tax_rate_id: str
    percent: Decimal
    inclusive: bool
    taxable_minor: int  # the line's net (before exclusive tax, without inclusive tax)
    amount_minor: int
    exact: Decimal  # in minor units, before rounding (inclusive parts: the rate's share of the contained tax)


@dataclass(frozen=True, slots=True)
class LineTax:
    """The tax of one line: its net, the tax it contains, the tax added on top, per rate."""

    amount_minor: int  # the line's amount after discounts
    net_minor: int
    inclusive_minor: int
    exclusive_minor: int
    parts: tuple[TaxPart, ...]

    def parts_in(self, rates: Sequence[TaxRate]) -> tuple[TaxPart, ...]:
        """The parts in the order of ``rates`` (``line_tax`` lists the inclusive rates first)."""
        by_id = {p.tax_rate_id: p for p in self.parts}
        return tuple(by_id[r.tax_rate_id] for r in rates)


def _round(exact_minor: Decimal, currency: str) -> int:
    return to_minor(exact_minor.scaleb(-minor_exponent(currency)), currency)


def line_tax(amount_minor: int, rates: Sequence[TaxRate], currency: str) -> LineTax:
    """The tax of a line of ``amount_minor`` (after discounts) under ``rates``."""
    sign = -1 if amount_minor < 0 else 1
    amount = abs(amount_minor)
    inclusive = [r for r in rates if r.inclusive]
    exclusive = [r for r in rates if not r.inclusive]
    parts: list[TaxPart] = []
    with localcontext(Context(prec=80)):
        share = sum((r.percent for r in inclusive), Decimal(0))
        contained_exact = Decimal(amount) - Decimal(amount) / (1 + share / HUNDRED) if share else Decimal(0)
        contained = _round(contained_exact, currency) if share else 0
        net = amount - contained
        if inclusive:
            weights = [(str(i), int(r.percent.scaleb(12))) for i, r in enumerate(inclusive)]
            positive = [(k, w) for k, w in weights if w > 0]
            split = share_out(contained, positive)
            for i, r in enumerate(inclusive):
                exact = contained_exact * r.percent / share if share else Decimal(0)
                part = split.get(str(i), 0)
                parts.append(TaxPart(r.tax_rate_id, r.percent, True, sign * net, sign * part, sign * exact))
        added = 0
        for r in exclusive:
            exact = Decimal(net) * r.percent / HUNDRED
            tax = _round(exact, currency)
            added += tax
            parts.append(TaxPart(r.tax_rate_id, r.percent, False, sign * net, sign * tax, sign * exact))
    return LineTax(amount_minor, sign * net, sign * contained, sign * added, tuple(parts))
