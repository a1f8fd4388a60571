"""The level a level meter brings into a window, read from its last closing level (rating calls it).

A window of a weighted_sum meter, or of a latest meter with ``carry_over``, reads the last closing level
at or before its first hour (one Query, ``dal.levels``) and the cells from that level's hour on (none
before the window when the previous window was billed), instead of every cell the meter ever stored.
Rating a whole window (billing, the late-event look-back, reruns) stores the level at its end, so the
next window starts there. Rules and the retry and late-event cases: docs/pricing.md, "Closing levels".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.ingest import hour_bucket
from neruba.domain.levels import ClosingLevel, GroupLevel, advance, carries_level
from neruba.domain.usage import CellUsage
from neruba.timefmt import ts

if TYPE_CHECKING:
    from neruba.dal.levels import Around, LevelsRepository
    from neruba.dal.usage import StoredCell, UsageRepository

BEGINNING = "0001-01-01T00"  # the first hour a usage read can name
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
    found: Around
    record: bool
    read_at: str
    _before: list[tuple[str, CellUsage]] = field(default_factory=list)
    _to_end: list[tuple[str, CellUsage]] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        usage: UsageRepository,
        customer_id: str,
        meter: Any,
        first: str,
        upper: datetime,
        *,
        record: bool,
    ) -> WindowLevels | None:
        """The bookkeeping of a level meter's window [first hour, upper) (None for any other meter):
        reads its closing levels (and, with ``record``, the one stored at the window's end hour)."""
        if not carries_level(str(meter.aggregation), bool(meter.carry_over)):
            return None
        repo = usage.levels
        read_at = ts(datetime.now(UTC))  # before any read: what a later computation has seen, this one too
        end_hour = hour_bucket(upper)
        found = repo.around(customer_id, meter.code, first, end_hour if record else first)
        return cls(repo, customer_id, meter.code, str(meter.aggregation), end_hour, found, record, read_at)

    @property
    def read_from(self) -> str:
        """The first hour whose cells the window must read: the closing level's hour, or the beginning."""
        return self.found.base.hour if self.found.base else BEGINNING

    def saw(self, cell: StoredCell, *, before_window: bool) -> None:
        """Note one cell read (an hour at or after :attr:`read_from`)."""
        if cell.hour < self.end_hour:
            self._to_end.append((cell.group, cell.usage))
        if before_window:
            self._before.append((cell.group, cell.usage))

    def at_start(self) -> dict[str, GroupLevel]:
        """Each group's level when the window starts."""
        base = self.found.base.groups if self.found.base else {}
        return advance(self.aggregation, base, self._before)

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
        if not self.record or self.end_hour <= self.read_from:
            return
        base = self.found.base.groups if self.found.base else {}
        levels = advance(self.aggregation, base, self._to_end)
        closing = ClosingLevel(self.end_hour, self.aggregation, levels, self.read_at)
        self.repo.record(self.customer_id, self.meter_code, closing, self.found.at_end)
