"""The stored shape of usage: cells, a batch's contribution to one customer's meter for one day, and the
keys and partitions they live under.

One partition per customer and meter (``AGG#{customer}#{meter}``, plus ``#{n}`` for shard n > 0 of a
sharded deployment) holds both kinds of usage item, told apart by the sort key:

- contribution ``{day}!{batch}``: every cell (hour, group) one batch counted for that customer, meter
  and day, in a map ``cs`` keyed ``{HH}#{group}`` (the group may itself contain ``#``); each cell holds
  its figures as an aggregate holds them (``cell_item``: count ``n``, sum ``s``, max ``mx``, min ``mn``,
  weighted sum ``tw``, latest ``lt``/``lv``, unique values ``u``, ``late_n``, per-event sums ``pe``/``pn``)
  and the transaction ids ``tx`` it counted. ``agg`` (the meter's aggregation) and ``at`` are stored once.
- aggregate    ``{hour}#{group}``: a cell's usage written by the sweep's repair (or by earlier versions),
  with the batches whose contributions it folds in (``fb``).

``!`` sorts before ``T``, so the contributions of a day come just before its aggregates, and one Query
over ``[{first day}!, {last hour}#\\uffff]`` reads every item of an hour range.

Earlier layouts still recognised: ``USE#{customer}#{meter}`` / ``{hour}#{group}#{batch}`` (one item per
cell and batch, moved into contributions by migration 0004) and ``SL#`` slices (older still).

Example:
    >>> ref = GroupRef("acme", "tokens", "2026-01-02T03", "model=a#1")
    >>> contribution_key("acme", "tokens", ref.day, "b1", 0)["sk"]["S"], ref.cell
    ('2026-01-02!b1', '03#model=a#1')
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from neruba.domain.event_rules import EventRule
from neruba.domain.ingest import GroupTotals
from neruba.domain.usage import CellUsage, usage_of
from neruba.timefmt import iso

HOUR_LENGTH = len("2026-01-01T00")
DAY_LENGTH = len("2026-01-01")
CONTRIBUTION_MARK = "!"
# actions of one adopting transaction: the put, one check per old batch and shard, one update per event
TRANSACTION_ACTIONS = 100


def partition(customer_id: str, meter_code: str, shard: int = 0) -> str:
    """The usage partition of a customer's meter (customer ids and meter codes never contain ``#``)."""
    base = f"AGG#{customer_id}#{meter_code}"
    return base if shard == 0 else f"{base}#{shard}"


def shard_of(batch: str, shards: int) -> int:
    """The shard a batch's contributions go to: spread by the batch id, so one hot customer's batches
    land on ``shards`` partitions."""
    if shards <= 1:
        return 0
    return int(hashlib.sha256(batch.encode()).hexdigest()[:8], 16) % shards


def contribution_key(customer_id: str, meter_code: str, day: str, batch: str, shard: int) -> dict[str, Any]:
    return {
        "pk": {"S": partition(customer_id, meter_code, shard)},
        "sk": {"S": f"{day}{CONTRIBUTION_MARK}{batch}"},
    }


def is_contribution(sk: str) -> bool:
    return sk[DAY_LENGTH : DAY_LENGTH + 1] == CONTRIBUTION_MARK


@dataclass(frozen=True, slots=True)
class GroupRef:
    """One (customer, meter, hour, group) cell of usage."""

    customer_id: str
    meter_code: str
    hour: str
    group: str = ""

    @property
    def day(self) -> str:
        return self.hour[:DAY_LENGTH]

    @property
    def cell(self) -> str:
        """The cell's key in its day's contribution map: ``{HH}#{group}``."""
        return f"{self.hour[DAY_LENGTH + 1 :]}#{self.group}"

    @property
    def aggregate_key(self) -> dict[str, Any]:
        return {
            "pk": {"S": partition(self.customer_id, self.meter_code)},
            "sk": {"S": f"{self.hour}#{self.group}"},
        }

    def slice_key(self, batch: str) -> dict[str, Any]:
        """The key the previous layout gave a batch's contribution to this cell (``USE#``)."""
        return {
            "pk": {"S": f"USE#{self.customer_id}#{self.meter_code}"},
            "sk": {"S": f"{self.hour}#{self.group}#{batch}"},
        }

    def legacy_slice_key(self, batch: str) -> dict[str, Any]:
        """The ``SL#`` slice an even older version wrote for this cell and batch."""
        return {
            "pk": {"S": f"SL#{self.customer_id}#{self.meter_code}#{self.hour}"},
            "sk": {"S": f"{self.group}#{batch}"},
        }


def cell_of(day: str, cell: str) -> tuple[str, str]:
    """(hour, group) of a contribution map key."""
    hh, _, group = cell.partition("#")
    return f"{day}T{hh}", group


@dataclass(slots=True)
class Recount:
    """An accepted event a crashed attempt never counted: move it from ``old_batch`` to this batch."""

    customer_id: str
    transaction_id: str
    old_batch: str
    old_minute: str | None = None  # when the old batch wrote the event: the minute of its pending item


@dataclass(slots=True)
class GroupWrite:
    """What one batch adds to one cell, and the uncounted events it adopts there."""

    ref: GroupRef
    aggregation: str
    totals: GroupTotals
    late: bool = False
    recounts: list[Recount] = field(default_factory=list)


@dataclass(slots=True)
class DayWrite:
    """What one batch (part) adds to one customer's meter on one day: one contribution item, its cells.
    ``rules`` are the meter's per-event rules (by digest), folded into every cell's totals."""

    customer_id: str
    meter_code: str
    day: str
    aggregation: str
    cells: dict[GroupRef, GroupWrite] = field(default_factory=dict)
    rules: Mapping[str, EventRule] = field(default_factory=dict)
    # minutes of this batch's pending items (an earlier attempt's, or a put that failed) that must not hold
    # the day's cells when it is written as a contribution (``dal/pending.py``)
    checks: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.customer_id, self.meter_code, self.day)

    @property
    def recounts(self) -> list[Recount]:
        return [r for cell in self.cells.values() for r in cell.recounts]

    @property
    def count(self) -> int:
        return sum(cell.totals.count for cell in self.cells.values())

    @property
    def transaction_ids(self) -> list[str]:
        return [t for cell in self.cells.values() for t in cell.totals.transaction_ids]

    def cell(self, ref: GroupRef) -> GroupWrite:
        if ref not in self.cells:
            self.cells[ref] = GroupWrite(ref, self.aggregation, GroupTotals())
        return self.cells[ref]

    def add(self, ref: GroupRef, transaction_id: str, at: str, value: Any) -> GroupWrite:
        """Fold one event into its cell (with the meter's per-event rules); returns the cell."""
        cell = self.cell(ref)
        cell.totals.add(transaction_id, self.aggregation, at, value, self.rules)
        return cell

    @classmethod
    def of(cls, write: GroupWrite, rules: Mapping[str, EventRule] | None = None) -> DayWrite:
        """A day write holding the one cell ``write``."""
        ref = write.ref
        return cls(ref.customer_id, ref.meter_code, ref.day, write.aggregation, {ref: write}, rules or {})


def max_recounts(shards: int) -> int:
    """Adopted events one transaction can move: each costs an update and at most one check per shard and
    one of the old batch's pending item."""
    return (TRANSACTION_ACTIONS - 2) // (shards + 2)


class GroupWrites:
    """Accumulates a batch's events per (customer, meter, day), splitting a day whose adopted events would
    overflow one transaction into parts named ``{batch}~{n}``.

    Example:
        >>> writes = GroupWrites("b1")
        >>> writes.add(GroupRef("acme", "calls", "2026-01-01T00"), "count", "t1", "2026-01-01T00:00:00", None)
        'b1'
        >>> [(batch, w.count) for batch, w in writes.parts()]
        [('b1', 1)]
    """

    def __init__(self, batch: str, shards: int = 1) -> None:
        self.batch = batch
        self.limit = max_recounts(shards)
        self._parts: dict[tuple[tuple[str, str, str], int], DayWrite] = {}
        self._current: dict[tuple[str, str, str], int] = {}

    def add(
        self,
        ref: GroupRef,
        aggregation: str,
        transaction_id: str,
        at: str,
        value: Any,
        *,
        late: bool = False,
        recount: Recount | None = None,
        rules: Mapping[str, EventRule] | None = None,
        check: str | None = None,
    ) -> str:
        """Fold one event in (``rules``: the meter's per-event rules by digest); returns the batch id of
        the part it landed in; ``check``: the minute of this batch's pending item an earlier attempt may
        have written with the event)."""
        day = (ref.customer_id, ref.meter_code, ref.day)
        # events this batch wrote always land in part 0 (their bk is the batch); only adopted ones spill over
        part = self._current.get(day, 0) if recount is not None else 0
        write = self._parts.get((day, part))
        if recount is not None and write is not None and len(write.recounts) >= self.limit:
            part = max(p for d, p in self._parts if d == day) + 1
            self._current[day] = part
            write = None
        if write is None:
            write = self._parts[(day, part)] = DayWrite(*day, aggregation, rules=rules or {})
        cell = write.add(ref, transaction_id, at, value)
        cell.late = cell.late or late
        if recount is not None:
            cell.recounts.append(recount)
        if check is not None:
            write.checks.add(check)
        return self.batch_of(part)

    def batch_of(self, part: int) -> str:
        return self.batch if part == 0 else f"{self.batch}~{part}"

    def parts(self) -> list[tuple[str, DayWrite]]:
        return [(self.batch_of(part), write) for (_, part), write in self._parts.items()]


def contribution_item(write: DayWrite, now: datetime) -> dict[str, Any]:
    """A day write's stored attributes (keys apart): ``agg``, ``at`` and the cells' map ``cs``."""
    cells = {}
    for ref, cell in write.cells.items():
        totals = cell.totals
        usage = replace(usage_of(write.aggregation, totals), late_count=totals.count if cell.late else 0)
        stored = cell_item(usage)
        stored.pop("agg", None)
        cells[ref.cell] = {**stored, "tx": totals.transaction_ids}
    return {"agg": write.aggregation, "at": iso(now), "cs": cells}


def cell_item(usage: CellUsage) -> dict[str, Any]:
    """A cell's usage as stored: ``n``, ``agg``, then ``s`` (sum; an average's too), ``mx`` (max), ``mn``
    (min), ``tw`` (weighted_sum: change x seconds into the hour), ``lt``/``lv`` (latest) or
    ``u`` (unique values) where set, ``late_n`` when some events came late, and ``pe`` / ``pn`` (per-event
    rule digest -> exact sum of the events' charges / events priced) when the meter has per-event rules."""
    item: dict[str, Any] = {"n": usage.count, "agg": usage.aggregation}
    if usage.total is not None:
        item["s"] = usage.total
    if usage.maximum is not None:
        item["mx"] = usage.maximum
    if usage.minimum is not None:
        item["mn"] = usage.minimum
    if usage.weighted is not None:
        item["tw"] = usage.weighted
    if usage.latest_at is not None:
        item["lt"], item["lv"] = usage.latest_at, usage.latest
    if usage.uniques:
        item["u"] = set(usage.uniques)
    if usage.late_count:
        item["late_n"] = usage.late_count
    if usage.event_sums:
        item["pe"], item["pn"] = dict(usage.event_sums), dict(usage.event_counts)
    return item


def cell_usage(item: Mapping[str, Any], aggregation: Any = None) -> CellUsage:
    """The usage of a stored aggregate, a contribution's cell (its item's ``agg`` given), or a slice."""
    agg = item.get("agg", aggregation)
    return CellUsage(
        count=int(item.get("n", 0)),
        total=Decimal(item["s"]) if item.get("s") is not None else None,
        maximum=Decimal(item["mx"]) if item.get("mx") is not None else None,
        minimum=Decimal(item["mn"]) if item.get("mn") is not None else None,
        weighted=Decimal(item["tw"]) if item.get("tw") is not None else None,
        latest_at=None if item.get("lt") is None else str(item["lt"]),
        latest=Decimal(item["lv"]) if item.get("lv") is not None else None,
        uniques=frozenset(str(v) for v in item.get("u") or ()),
        late_count=int(item.get("late_n", 0)),
        aggregation=str(agg) if agg else None,
        event_sums={str(k): Decimal(v) for k, v in (item.get("pe") or {}).items()},
        event_counts={str(k): int(v) for k, v in (item.get("pn") or {}).items()},
    )
