"""The level a level meter brings into a window, read from its last closing level (rating calls it).

A window of a weighted_sum meter, or of a latest meter with ``carry_over``, reads the last closing level
at or before its first hour and the cells from that level's hour on (none before the window when the
previous window was billed), instead of every cell the meter ever stored: the level is stored in the
meter's usage partition, so the window's usage Query returns it along with the cells (``dal.levels``).
Rating a whole window (billing, the late-event look-back, reruns) stores the level at its end, so the
next window starts there. Rules and the retry and late-event cases: docs/pricing.md, "Closing levels".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.ingest import hour_bucket
from neruba.domain.levels import BEGINNING, ClosingLevel, GroupLevel, advance, carries_level
from neruba.domain.usage import CellUsage
from neruba.timefmt import ts

if TYPE_CHECKING:
    from neruba.dal.levels import Around, LevelsRepository
    from neruba.dal.usage import StoredCell, UsageRepository

LONG_AGO = datetime.min.replace(tzinfo=UTC)


@dataclass(slots=True)
class WindowLevels:
    """One window's level bookkeeping for one meter: the closing level it starts from, the cells read
    before the window (between that level's hour and the window) and up to the window's end hour."""

    repo: LevelsRepository
    customer_id: str
    meter_code: str
    aggregation: str
    end_hour: str
    record: bool
    read_at: str
    found: Around | None = None
    read_from: str = (
        BEGINNING  # the first hour whose cells the window read: the base level's, or the beginning
    )
    _before: list[tuple[str, CellUsage]] = field(default_factory=list)
    _to_end: list[tuple[str, CellUsage]] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        usage: UsageRepository,
        customer_id: str,
        meter: Any,
        upper: datetime,
        *,
        record: bool,
    ) -> WindowLevels | None:
        """The bookkeeping of a level meter's window ending at ``upper`` (None for any other meter)."""
        if not carries_level(str(meter.aggregation), bool(meter.carry_over)):
            return None
        read_at = ts(datetime.now(UTC))  # before any read: what a later computation has seen, this one too
        end_hour = hour_bucket(upper)
        return cls(usage.levels, customer_id, meter.code, str(meter.aggregation), end_hour, record, read_at)

    def read(self, usage: UsageRepository, first: str, last: str) -> list[StoredCell]:
        """The cells of the window's hours [first, last] and of the hours between its base level and
        it, read with its closing levels in one read (``UsageRepository.level_window``)."""
        self.read_from, cells, self.found = usage.level_window(
            self.customer_id, self.meter_code, first, last, self.end_hour
        )
        return cells

    def saw(self, cell: StoredCell, *, before_window: bool) -> None:
        """Note one cell read (an hour at or after :attr:`read_from`)."""
        if cell.hour < self.end_hour:
            self._to_end.append((cell.group, cell.usage))
        if before_window:
            self._before.append((cell.group, cell.usage))

    def _base(self) -> Mapping[str, GroupLevel]:
        return self.found.base.groups if self.found and self.found.base else {}

    def at_start(self) -> dict[str, GroupLevel]:
        """Each group's level when the window starts."""
        return advance(self.aggregation, self._base(), self._before)

    def opening_cells(self) -> list[tuple[datetime, str, CellUsage]]:
        """A weighted_sum window's opening level per group, as one dated change before everything."""
        if self.aggregation != "weighted_sum":
            return []
        return [(LONG_AGO, group, level.as_cell()) for group, level in self.at_start().items()]

    def before_window(self) -> dict[str, CellUsage]:
        """A carried latest meter's last value per group before the window."""
        return {g: level.as_cell() for g, level in self.at_start().items() if level.latest_at is not None}

    def close(self) -> None:
        """Store the level at the window's end hour (when rating a whole window, and when that hour is
        past the level the window started from)."""
        if not self.record or self.found is None or self.end_hour <= self.read_from:
            return
        levels = advance(self.aggregation, self._base(), self._to_end)
        closing = ClosingLevel(self.end_hour, self.aggregation, levels, self.read_at)
        self.repo.record(self.customer_id, self.meter_code, closing, self.found.at_end)
