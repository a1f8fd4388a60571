"""Per-event pricing rules: what one event costs under a percentage charge with a minimum or maximum per
event, a figure the hourly sums cannot give (no AWS).

Two events of 1 and 99 and two of 50 have the same sum and count, but with a minimum of 2 per event they
cost differently. So a charge with per-event bounds registers its :class:`EventRule` on its meter when its
plan version is published; the ingest worker adds each event's :func:`event_charge` under every rule of
the meter to the cell's contribution (one exact sum and one count per rule, named by :func:`digest`), and
rating reads the sum of its own rule. Rules in docs/pricing.md ("Per-event minimum and maximum").

Example:
    >>> rule = EventRule(rate=Decimal("1.2"), fixed_fee=Decimal("0.1"), minimum=Decimal("0.5"))
    >>> [event_charge(rule, Decimal(v)) for v in ("10", "100")]
    [Decimal('0.5'), Decimal('1.300')]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from neruba.domain.numbers import EXACT, canonical_text


@dataclass(frozen=True, slots=True)
class EventRule:
    """One event's charge: ``rate`` percent of its value plus ``fixed_fee``, kept within [minimum,
    maximum] (either bound may be absent)."""

    rate: Decimal
    fixed_fee: Decimal = Decimal(0)
    minimum: Decimal | None = None
    maximum: Decimal | None = None

    def stored(self) -> dict[str, str]:
        """The rule as stored on its meter (decimal text; absent bounds left out)."""
        fields = {"rate": self.rate, "fixed_fee": self.fixed_fee, "min": self.minimum, "max": self.maximum}
        return {name: canonical_text(value) for name, value in fields.items() if value is not None}

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> EventRule:
        def number(name: str) -> Decimal | None:
            return Decimal(str(stored[name])) if stored.get(name) is not None else None

        return cls(
            rate=Decimal(str(stored["rate"])),
            fixed_fee=number("fixed_fee") or Decimal(0),
            minimum=number("min"),
            maximum=number("max"),
        )


def rule_of(price: Mapping[str, Any]) -> EventRule | None:
    """The per-event rule of a charge's (or filter's) price: only a ``percentage`` price with
    ``per_event_min`` or ``per_event_max`` has one.

    Example:
        >>> rule_of({"model": "percentage", "rate": "1", "per_event_max": "5"})
        EventRule(rate=Decimal('1'), fixed_fee=Decimal('0'), minimum=None, maximum=Decimal('5'))
        >>> rule_of({"model": "percentage", "rate": "1"}) is None
        True
    """
    if price.get("model") != "percentage":
        return None
    low, high = price.get("per_event_min"), price.get("per_event_max")
    if low is None and high is None:
        return None
    return EventRule(
        rate=Decimal(str(price["rate"])),
        fixed_fee=Decimal(str(price.get("fixed_fee") or 0)),
        minimum=None if low is None else Decimal(str(low)),
        maximum=None if high is None else Decimal(str(high)),
    )


def digest(rule: EventRule) -> str:
    """The rule's name in storage: a digest of its numbers, so equal rules share one sum.

    Example:
        >>> digest(EventRule(Decimal("1.20"))) == digest(EventRule(Decimal("1.2")))
        True
    """
    text = "|".join(f"{k}={v}" for k, v in sorted(rule.stored().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def event_charge(rule: EventRule, value: Decimal) -> Decimal:
    """What one event of ``value`` costs under ``rule``, exact (never rounded)."""
    with localcontext(EXACT):
        charge = value * rule.rate.scaleb(-2) + rule.fixed_fee
        if rule.minimum is not None and charge < rule.minimum:
            charge = rule.minimum
        if rule.maximum is not None and charge > rule.maximum:
            charge = rule.maximum
        return charge
