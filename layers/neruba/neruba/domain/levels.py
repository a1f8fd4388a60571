"""Closing levels: what a level meter carries from every earlier hour into a window (no AWS).

Two kinds of meter bill a level that outlives the hour it was reported in: a ``weighted_sum`` meter (the
level is the exact sum of every change before) and a ``latest`` meter with ``carry_over`` (the last value
reported before). A closing level at hour ``H`` holds, per group, that level over **every cell of an hour
before H**; a window starting at or after ``H`` needs only that item and the cells from ``H`` on
(docs/pricing.md, "Closing levels").

Example:
    >>> from decimal import Decimal
    >>> base = {"": GroupLevel(level=Decimal(10))}
    >>> after = advance("weighted_sum", base, [("", CellUsage(1, total=Decimal("-2.5")))])
    >>> after[""].level
    Decimal('7.5')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from neruba.domain.numbers import exact_sum
from neruba.domain.usage import CellUsage

LEVEL_AGGREGATIONS = frozenset({"weighted_sum", "latest"})
BEGINNING = "0001-01-01T00"  # the first hour a usage read can name (a window with no closing level before it)


def carries_level(aggregation: str, carry_over: bool) -> bool:
    """Whether a meter's windows need the level reached before them: a weighted_sum meter always, a
    latest meter when it carries its value over."""
    return aggregation == "weighted_sum" or (aggregation == "latest" and carry_over)


@dataclass(frozen=True, slots=True)
class GroupLevel:
    """One group's level: ``level`` (weighted_sum: the sum of every change) or ``latest`` reported at
    ``latest_at`` (latest)."""

    level: Decimal | None = None
    latest: Decimal | None = None
    latest_at: str | None = None

    def as_cell(self) -> CellUsage:
        """The level as a cell of no event, to combine with the window's cells."""
        return CellUsage(0, total=self.level, latest=self.latest, latest_at=self.latest_at)


@dataclass(frozen=True, slots=True)
class ClosingLevel:
    """The levels of every group over the cells of the hours before ``hour`` (``YYYY-MM-DDTHH``).

    ``read_at`` is when the computation that wrote it began reading: a computation that began later
    has seen at least as much, so it may replace this one, never the other way round."""

    hour: str
    aggregation: str
    groups: Mapping[str, GroupLevel] = field(default_factory=dict)
    read_at: str = ""


def advance(
    aggregation: str, base: Mapping[str, GroupLevel], cells: Iterable[tuple[str, CellUsage]]
) -> dict[str, GroupLevel]:
    """The levels after ``base`` and then ``cells`` ((group, usage) of later hours, any order).

    weighted_sum: the exact sum of the changes (no rounding); latest: per group the value reported last
    (by its ``latest_at``), the base's when no cell of the group reported one."""
    by_group: dict[str, list[CellUsage]] = {group: [level.as_cell()] for group, level in base.items()}
    for group, usage in cells:
        by_group.setdefault(group, []).append(usage)
    out: dict[str, GroupLevel] = {}
    for group, usages in sorted(by_group.items()):
        if aggregation == "weighted_sum":
            out[group] = GroupLevel(level=exact_sum(u.total for u in usages if u.total is not None))
            continue
        dated = [(u.latest_at, u.latest) for u in usages if u.latest_at is not None and u.latest is not None]
        if dated:
            at, value = max(dated)
            out[group] = GroupLevel(latest=value, latest_at=at)
    return out


def same_levels(one: Mapping[str, GroupLevel], other: Mapping[str, GroupLevel]) -> bool:
    """Whether two sets of group levels are equal (a zero weighted level equals no level)."""

    def kept(levels: Mapping[str, GroupLevel]) -> dict[str, GroupLevel]:
        return {g: v for g, v in levels.items() if v != GroupLevel(level=Decimal(0))}

    return kept(one) == kept(other)
