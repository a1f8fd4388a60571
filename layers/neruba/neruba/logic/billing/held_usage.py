"""Usage with a backfill's held events laid over it (:class:`HeldUsage`): the cells its events make
(``held_cells``, folded as ingest folds a batch) and the stored cells of events it would void, as their
other events make them (``without_cells``). The backfill preview and a correction's attribution
(``logic.billing.correction_sources``) rate windows on it."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from neruba.dal.backfills import HeldEvent
from neruba.dal.contributions import DayWrite, GroupRef
from neruba.dal.usage import StoredCell, StoredEvent, UsageRepository
from neruba.domain.ingest import InvalidPropertyError, group_key, hour_bucket, matches_filters, meter_value
from neruba.domain.usage import CellUsage, merge_cells, usage_of
from neruba.timefmt import parse_ts

if TYPE_CHECKING:
    from neruba.logic.billing.context import Billing


class HeldUsage:
    """The usage repository with a backfill's events added to what ``aggregates`` reads; every other
    read is the repository's own."""

    def __init__(
        self,
        usage: UsageRepository,
        cells: dict[tuple[str, str], dict[tuple[str, str], CellUsage]],
        cleared: tuple[set[tuple[str, str]], str, str] | None = None,
        without: dict[tuple[str, str], dict[tuple[str, str], CellUsage]] | None = None,
    ):
        self._usage = usage
        self._cells = cells
        # the stored cells of events the commit would void as superseded, as their other events make them
        self._without = without or {}
        # mode replace: the (customer, meter) pairs whose stored cells of hours [first, last] are dropped
        self._cleared = cleared

    def __getattr__(self, name: str) -> Any:
        return getattr(self._usage, name)

    @property
    def levels(self) -> Any:
        """The closing levels, read only: a preview never stores one."""
        return _ReadLevels(self._usage.levels)

    def aggregates(
        self, customer_id: str, meter_code: str, first_hour: str, last_hour: str
    ) -> list[StoredCell]:
        cells = self._usage.aggregates(customer_id, meter_code, first_hour, last_hour)
        return self._merged(customer_id, meter_code, cells, first_hour, last_hour)

    def level_window(
        self, customer_id: str, meter_code: str, first_hour: str, last_hour: str, end_hour: str
    ) -> tuple[str, list[StoredCell], Any]:
        """A level meter's window (``UsageRepository.level_window``) with the held cells of its hours."""
        read_from, cells, found = self._usage.level_window(
            customer_id, meter_code, first_hour, last_hour, end_hour
        )
        return read_from, self._merged(customer_id, meter_code, cells, read_from, last_hour), found

    def _merged(
        self, customer_id: str, meter_code: str, cells: list[StoredCell], first_hour: str, last_hour: str
    ) -> list[StoredCell]:
        stored = {(c.hour, c.group): c for c in cells}
        for (hour, group), kept in self._without.get((customer_id, meter_code), {}).items():
            if (hour, group) in stored:
                was = stored[(hour, group)]
                stored[(hour, group)] = StoredCell(hour, group, kept, was.base, was.sources)
        if self._cleared is not None and (customer_id, meter_code) in self._cleared[0]:
            first, last = self._cleared[1], self._cleared[2]
            stored = {key: c for key, c in stored.items() if not first <= c.hour <= last}
        for (hour, group), extra in self._cells.get((customer_id, meter_code), {}).items():
            if not first_hour <= hour <= last_hour:
                continue
            cell = stored.get((hour, group))
            if cell is None:
                stored[(hour, group)] = StoredCell(hour, group, extra, None, ())
            else:
                merged = merge_cells([cell.usage, extra])
                stored[(hour, group)] = StoredCell(hour, group, merged, cell.base, cell.sources)
        return [stored[key] for key in sorted(stored)]


class _ReadLevels:
    def __init__(self, levels: Any) -> None:
        self._levels = levels

    def __getattr__(self, name: str) -> Any:
        return getattr(self._levels, name)

    def record(self, *args: Any, **kwargs: Any) -> None:
        """Nothing is stored from a preview."""


def without_cells(
    ctx: Billing, events: list[StoredEvent]
) -> dict[tuple[str, str], dict[tuple[str, str], CellUsage]]:
    """The stored cells of ``events`` as their other accepted events make them (the events voided)."""
    from neruba.logic.ingest.voids import catalog_lookup
    from neruba.logic.sweeps.usage import cell_of_event, cell_without

    lookup = catalog_lookup()
    refs: dict[GroupRef, set[str]] = defaultdict(set)
    for event in events:
        found = cell_of_event(event, lookup({event.customer_id}, {event.meter_code}))
        if found is not None:
            refs[found[0]].add(event.transaction_id)
    cells: dict[tuple[str, str], dict[tuple[str, str], CellUsage]] = defaultdict(dict)
    for ref, ids in refs.items():
        kept = cell_without(ctx.usage, lookup, ref, frozenset(ids))
        if kept is not None:
            cells[(ref.customer_id, ref.meter_code)][(ref.hour, ref.group)] = kept
    return dict(cells)


def held_cells(
    ctx: Billing, events: list[HeldEvent]
) -> dict[tuple[str, str], dict[tuple[str, str], CellUsage]]:
    """The events' usage per (customer, meter) and (hour, group), folded as ingest folds a batch."""
    writes: dict[tuple[str, str, str], DayWrite] = {}
    meters = {}
    for held in events:
        event = held.event
        code = str(event["code"])
        if code not in meters:
            meters[code] = ctx.plans.get_meter(code)
        meter = meters[code]
        if meter is None or not matches_filters(meter.filters, event["properties"]):
            continue
        try:
            value = meter_value(
                meter.aggregation, meter.field, event["properties"], allow_negative=meter.allow_negative
            )
        except InvalidPropertyError:
            continue  # ingest parks it failed: it counts nothing
        hour = hour_bucket(parse_ts(str(event["timestamp"])))
        ref = GroupRef(held.customer_id, code, hour, group_key(meter.group_by, event["properties"]))
        key = (held.customer_id, code, ref.day)
        write = writes.setdefault(key, DayWrite(held.customer_id, code, ref.day, meter.aggregation))
        write.add(ref, held.transaction_id, str(event["timestamp"]), value)
    cells: dict[tuple[str, str], dict[tuple[str, str], CellUsage]] = defaultdict(dict)
    for (customer_id, code, _), write in writes.items():
        for ref, cell in write.cells.items():
            cells[(customer_id, code)][(ref.hour, ref.group)] = usage_of(write.aggregation, cell.totals)
    return dict(cells)
