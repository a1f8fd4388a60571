"""Usage limits of one customer: hard caps, soft caps and alert thresholds per meter and period, and
which events of a batch fit under a cap (plain Python, no storage).

Rules (docs/limits.md, "Usage caps and alerts"):

- a meter's usage in a period is the number of its events (``count`` meters) or the sum of their values
  (``sum`` meters); other aggregations take no cap;
- an event is admitted when the period's usage after it is at most the hard cap (landing exactly on the cap
  is admitted); an event that would pass the cap is refused whole (``over_limit``), never split;
- the events of one write are decided in order of (timestamp, transaction id), each against what the ones
  before it left: a later, smaller event may still fit after a larger one was refused;
- an alert threshold (a soft cap is one) fires when the usage goes from below it to at least it.

Example:
    >>> from decimal import Decimal
    >>> decide(Decimal(8), Decimal(10), [Decimal(1), Decimal(1), Decimal(1)])
    [True, True, False]
    >>> crossed(Decimal(7), Decimal(9), {"u80": Decimal(8), "u90": Decimal(9)}, set())
    ['u80', 'u90']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from neruba.domain.numbers import canonical_text, exact_sum
from neruba.domain.periods import period_containing

CAPPABLE = ("count", "sum")  # aggregations whose period usage is the running total of the events
DEFAULT_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)  # calendar months in UTC unless a period is set
DEFAULT_INTERVAL = "month"


@dataclass(frozen=True, slots=True)
class MeterLimits:
    """One meter's hard cap, soft cap and alert thresholds (units of the meter)."""

    hard_cap: Decimal | None = None
    soft_cap: Decimal | None = None
    alerts: tuple[Decimal, ...] = ()
    hard_cap_amount: int | None = None  # minor units of the plan's currency (``domain.limit_amounts``)

    def thresholds(self) -> dict[str, Decimal]:
        """Every level that fires an alert, by its key in the period's fired set."""
        levels = {f"a:{_text(level)}": level for level in self.alerts}
        if self.soft_cap is not None:
            levels[f"soft:{_text(self.soft_cap)}"] = self.soft_cap
        if self.hard_cap is not None:
            levels[f"hard:{_text(self.hard_cap)}"] = self.hard_cap
        return levels


@dataclass(frozen=True, slots=True)
class Feature:
    """An entitlement: ``boolean`` (``enabled``), ``static`` (``value``) or ``metered`` (``meter_code``
    used up to ``limit`` per period)."""

    kind: str
    enabled: bool = True
    value: str | None = None
    meter_code: str | None = None
    limit: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """A customer's limits: the period they reset with, and the limits of each meter."""

    anchor: datetime = DEFAULT_ANCHOR
    interval: str = DEFAULT_INTERVAL
    meters: Mapping[str, MeterLimits] = field(default_factory=dict)
    features: Mapping[str, Feature] = field(default_factory=dict)
    spend_alerts: tuple[int, ...] = ()  # levels of the period's rated spend, minor units
    balance_alerts: tuple[int, ...] = ()  # levels of the usable credit balance, minor units

    def counted_meters(self) -> set[str]:
        """The meters whose period usage is counted: those with limits or a metered feature."""
        return set(self.meters) | {f.meter_code for f in self.features.values() if f.meter_code}

    def counts(self, meter_code: str, aggregation: str) -> bool:
        """Whether a write of this meter goes through the limits: the meter has limits, or the customer
        has spend alerts (every count and sum meter's amount is then counted)."""
        if meter_code in self.counted_meters():
            return True
        return bool(self.spend_alerts) and aggregation in CAPPABLE

    def rates(self, meter_code: str) -> bool:
        """Whether a write of this meter needs its amount (an amount cap, or spend alerts)."""
        return bool(self.spend_alerts) or self.limits_of(meter_code).hard_cap_amount is not None

    def spend_levels(self) -> dict[str, Decimal]:
        """The spend alert levels by their key in the period's fired set."""
        return {f"spend:{level}": Decimal(level) for level in self.spend_alerts}

    def limits_of(self, meter_code: str) -> MeterLimits:
        return self.meters.get(meter_code) or MeterLimits()

    def period(self, at: datetime) -> tuple[datetime, datetime]:
        """The limit period [start, end) holding ``at`` (before the anchor: the anchor's first period)."""
        return period_containing(self.anchor, self.interval, max(at, self.anchor))

    def stored(self) -> str:
        return json.dumps(
            {
                "anchor": self.anchor.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "interval": self.interval,
                "meters": {
                    code: {
                        "hard": _text(m.hard_cap),
                        "soft": _text(m.soft_cap),
                        "alerts": [_text(a) for a in m.alerts],
                        **({"hard_amount": m.hard_cap_amount} if m.hard_cap_amount is not None else {}),
                    }
                    for code, m in sorted(self.meters.items())
                },
                "features": {
                    name: {
                        "kind": f.kind,
                        "enabled": f.enabled,
                        "value": f.value,
                        "meter": f.meter_code,
                        "limit": _text(f.limit),
                    }
                    for name, f in sorted(self.features.items())
                },
                **({"spend": list(self.spend_alerts)} if self.spend_alerts else {}),
                **({"balance": list(self.balance_alerts)} if self.balance_alerts else {}),
            },
            sort_keys=True,
        )

    @classmethod
    def from_stored(cls, text: str | None) -> LimitSettings | None:
        if not text:
            return None
        data: dict[str, Any] = json.loads(text)
        meters = {
            str(code): MeterLimits(
                hard_cap=_number(m.get("hard")),
                soft_cap=_number(m.get("soft")),
                alerts=tuple(Decimal(a) for a in m.get("alerts") or ()),
                hard_cap_amount=None if m.get("hard_amount") is None else int(m["hard_amount"]),
            )
            for code, m in (data.get("meters") or {}).items()
        }
        features = {
            str(name): Feature(
                f["kind"], bool(f["enabled"]), f.get("value"), f.get("meter"), _number(f.get("limit"))
            )
            for name, f in (data.get("features") or {}).items()
        }
        return cls(
            datetime.fromisoformat(data["anchor"]),
            str(data["interval"]),
            meters,
            features,
            tuple(int(level) for level in data.get("spend") or ()),
            tuple(int(level) for level in data.get("balance") or ()),
        )


# the prefix of a key of a period's fired set (``MeterLimits.thresholds``, ``LimitSettings.spend_levels``)
# -> the alert's kind, as ``alert.triggered`` names it
FIRED_KINDS = {"a": "usage", "soft": "soft_cap", "hard": "hard_cap", "spend": "spend"}


def fired_level(key: str) -> tuple[str, Decimal]:
    """The kind and the level of a key of a period's fired set.

    Example:
        >>> fired_level("soft:50")
        ('soft_cap', Decimal('50'))
    """
    prefix, _, level = key.partition(":")
    return FIRED_KINDS[prefix], Decimal(level)


def usage_of(aggregation: str, value: Any) -> Decimal:
    """What one event adds to its meter's period usage."""
    if aggregation == "count":
        return Decimal(1)
    return Decimal(str(value)) if value is not None else Decimal(0)


def decide(used: Decimal, cap: Decimal | None, amounts: Sequence[Decimal]) -> list[bool]:
    """Which events (in the order given) fit under ``cap`` from ``used``: each is admitted when the usage
    after it is at most the cap; a refused event adds nothing. The running usage is exact (38-digit
    values, ``domain.numbers.exact_sum``): an event the smallest step past the cap is refused."""
    admitted = []
    for amount in amounts:
        after = exact_sum([used, amount])
        fits = cap is None or after <= cap
        if fits:
            used = after
        admitted.append(fits)
    return admitted


def crossed(
    before: Decimal, after: Decimal, levels: Mapping[str, Decimal], fired: Iterable[str]
) -> list[str]:
    """The levels reached by going from ``before`` to ``after`` that did not fire yet this period."""
    done = set(fired)
    return sorted(key for key, level in levels.items() if before < level <= after and key not in done)


def fallen_under(before: int, after: int, levels: Iterable[int]) -> list[int]:
    """The levels a balance crosses downwards going from ``before`` to ``after`` (at or above the level
    before, below it after), highest first.

    Example:
        >>> fallen_under(1500, 300, [1000, 400, 200, 2000])
        [1000, 400]
    """
    return sorted((level for level in set(levels) if before >= level > after), reverse=True)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else canonical_text(value)  # exact (``normalize`` rounds to 28 digits)


def _number(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
