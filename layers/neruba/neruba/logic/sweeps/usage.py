"""The usage part of the consistency sweep: adopt events a crashed worker never counted, and
recompute aggregates from raw events, repairing drift.

Each batch and each cell is checked on its own: one that fails (a read error, a sum DynamoDB cannot
store, throttling) is listed in ``failures`` with its ids and the error, and the check goes on with the
rest. Uncounted events are counted through ``logic.limits.gate.count_write``, as the worker counts them
(under the customer's hard caps, refusing ``over_limit`` what would pass one): an
event that can never be counted (its addition would leave a sum DynamoDB cannot store) is parked
``failed`` and reported as a repair of kind ``event_parked``.

It works on the batches *processed* in a window of minutes (from their journals), which are old enough
that no worker attempt can still be running on them (``settle``: longer than the worker's timeout).

Example:
    >>> report = sweep_usage(usage, lookup, start, end)  # doctest: +SKIP
    >>> report.repaired  # doctest: +SKIP
    0
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba import bootstrap, jsonutil
from neruba.dal.catalog import CatalogSnapshot
from neruba.dal.outcomes import attempt_id, moves_by
from neruba.dal.pending import minute_of
from neruba.dal.usage import DayWrite, GroupRef, GroupWrites, Recount, StoredEvent, UsageRepository
from neruba.domain.ingest import (
    GroupTotals,
    InvalidPropertyError,
    earlier_group_key,
    group_key,
    matches_filters,
    meter_value,
    property_number_problems,
)
from neruba.domain.numbers import MESSAGES as NUMBER_RULES
from neruba.domain.usage import CellUsage, combine, usage_of
from neruba.logic.ingest.cells import CellEvent
from neruba.logic.limits.gate import count_write
from neruba.logic.sweeps.runner import CheckResult, SweepContext
from neruba.timefmt import iso

SETTLE = timedelta(minutes=15)


@dataclass
class UsageSweepReport:
    """What one usage sweep checked, found and repaired (ids included, for the log and the report)."""

    window_start: str
    window_end: str
    batches_checked: int = 0
    events_checked: int = 0
    cells_checked: int = 0
    uncounted_found: int = 0
    drift_found: int = 0
    repaired: int = 0
    repairs: list[dict[str, Any]] = field(default_factory=list)
    folded: dict[str, int] = field(default_factory=dict)  # pending minutes folded (``dal/pending.py``)
    # per pending shard, the age in seconds of its oldest unfolded window (``PendingUsage.lag``)
    pending_lag: dict[int, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _ref_and_value(item: StoredEvent, catalog: CatalogSnapshot) -> tuple[GroupRef, str, Any] | None:
    meter = catalog.meters.get(item.meter_code)
    if meter is None:
        return None
    properties = jsonutil.loads(item.properties_json)
    if not matches_filters(meter.filters, properties):
        return None
    try:
        # an accepted event passed the negative-value rule when it was counted (the meter's setting may
        # have changed since): recount it as it was counted
        value = meter_value(meter.aggregation, meter.field, properties, allow_negative=True)
    except InvalidPropertyError:
        return None
    ref = GroupRef(item.customer_id, meter.code, item.hour, group_key(meter.group_by, properties))
    return ref, meter.aggregation, value


def _earlier_ref(item: StoredEvent, catalog: CatalogSnapshot, ref: GroupRef) -> GroupRef | None:
    """The cell earlier versions counted the event in when its key differs from ``ref``'s (a group value
    holding ``|``, domain.groups), else None: that cell holds the event as much as ``ref`` would."""
    meter = catalog.meters.get(item.meter_code)
    if meter is None:
        return None
    earlier = earlier_group_key(meter.group_by, jsonutil.loads(item.properties_json))
    return None if earlier is None else replace(ref, group=earlier)


def held_cell_of_event(
    usage: UsageRepository, item: StoredEvent, catalog: CatalogSnapshot
) -> tuple[GroupRef, str, Any] | None:
    """As :func:`cell_of_event`, the cell being the one its batch counted it in: the cell of the key an
    earlier version gave its group (a value holding ``|``) when the event was counted there, not under
    today's key."""
    found = _ref_and_value(item, catalog)
    prior = None if found is None else _earlier_ref(item, catalog, found[0])
    if found is None or prior is None or item.batch is None:
        return found
    minutes = {(ref, item.batch): [item.written_at or ""] for ref in (found[0], prior)}
    stored = usage.counted(list(minutes), minutes)
    if (found[0], item.batch) not in stored and (prior, item.batch) in stored:
        return prior, found[1], found[2]
    return found


def _number_problem(item: StoredEvent, catalog: CatalogSnapshot) -> tuple[GroupRef, str] | None:
    """The cell and the number rule of an event that can never be counted (a number DynamoDB cannot
    store, accepted before the rule), else None."""
    meter = catalog.meters.get(item.meter_code)
    if meter is None:
        return None
    properties = jsonutil.loads(item.properties_json)
    problems = property_number_problems(properties)
    if not problems:
        return None
    ref = GroupRef(item.customer_id, meter.code, item.hour, group_key(meter.group_by, properties))
    return ref, problems[0][1]


def sweep_usage(
    usage: UsageRepository,
    lookup: Callable[[set[str], set[str]], CatalogSnapshot],
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> UsageSweepReport:
    """Check every batch processed in [start, end) (clipped to ``now - SETTLE``)."""
    now = now or datetime.now(UTC)
    end = min(end, now - SETTLE)
    report = UsageSweepReport(window_start=start.isoformat(), window_end=end.isoformat())
    minute = start.replace(second=0, microsecond=0)
    cells: set[GroupRef] = set()
    while minute < end:
        for batch, keys in usage.journals(minute):
            report.batches_checked += 1
            try:
                cells |= adopt_uncounted(usage, lookup, batch, keys, now, report)
            except Exception as exc:
                report.failures.append({"kind": "batch", "batch": batch, "events": len(keys), **_error(exc)})
        minute += timedelta(minutes=1)
    rechecked: set[GroupRef] = set()

    def recheck(refs: set[GroupRef]) -> None:
        # a cell skipped while its days were pending is checked here, whether or not a batch of this
        # sweep's window touches it (the fold calls this again if it is killed before its watermark moves)
        _recompute_all(usage, lookup, refs, report)
        rechecked.update(refs)

    try:
        report.folded = usage.pending.fold(now, usage.shards, on_folded=recheck)
    except Exception as exc:  # the next sweep folds on from the watermark
        report.failures.append({"kind": "fold", **_error(exc)})
    try:
        report.pending_lag = usage.pending.lag(now)
    except Exception as exc:
        report.failures.append({"kind": "fold_lag", **_error(exc)})
    _recompute_all(usage, lookup, cells - rechecked, report)
    return report


def _recompute_all(
    usage: UsageRepository,
    lookup: Callable[[set[str], set[str]], CatalogSnapshot],
    cells: set[GroupRef],
    report: UsageSweepReport,
) -> None:
    for ref in sorted(cells, key=lambda r: (r.customer_id, r.meter_code, r.hour, r.group)):
        try:
            _recompute(usage, lookup, ref, report)
        except Exception as exc:
            report.failures.append({"kind": "recompute", **_cell_ids(ref), **_error(exc)})


def _cell_ids(ref: GroupRef) -> dict[str, Any]:
    return {"customer_id": ref.customer_id, "meter": ref.meter_code, "hour": ref.hour, "group": ref.group}


def _day_ids(write: DayWrite) -> dict[str, Any]:
    return {"customer_id": write.customer_id, "meter": write.meter_code, "day": write.day}


def _error(exc: BaseException) -> dict[str, str]:
    return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _adopt_uncounted(
    usage: UsageRepository,
    lookup: Callable[[set[str], set[str]], CatalogSnapshot],
    batch: str,
    keys: list[tuple[str, str]],
    now: datetime,
    report: UsageSweepReport,
    moves: Counter[str],
) -> set[GroupRef]:
    """Count the events of ``batch`` no worker counted; each event it parks or refuses moves its outcome
    in ``moves`` (from its first outcome, accepted or replay, to failed or over_limit)."""
    events = usage.get_events(keys)

    def moved(customer_id: str, transaction_id: str, to: str) -> None:
        item = events.get((customer_id, transaction_id))
        moves["replay" if item is not None and item.first_outcome == "replay" else "accepted"] -= 1
        moves[to] += 1

    report.events_checked += len(events)
    catalog = lookup({c for c, _ in events}, {e.meter_code for e in events.values()})
    ours: dict[tuple[str, str], tuple[GroupRef, str, Any]] = {}
    uncountable: dict[tuple[str, str], tuple[GroupRef, str]] = {}
    earlier: dict[tuple[str, str], GroupRef | None] = {}
    touched: set[GroupRef] = set()
    for key, item in events.items():
        if item.status != "accepted":
            continue
        found = _ref_and_value(item, catalog)
        if found is None:
            problem = _number_problem(item, catalog)
            if problem is not None and item.batch == batch:
                uncountable[key] = problem
                earlier[key] = _earlier_ref(item, catalog, problem[0])
            continue
        touched.add(found[0])
        prior = earlier[key] = _earlier_ref(item, catalog, found[0])
        if prior is not None:  # a cell counted by an earlier version is rechecked too
            touched.add(prior)
        if item.batch == batch:
            ours[key] = found
    cells: list[tuple[GroupRef, str]] = []
    minutes: dict[tuple[GroupRef, str], set[str]] = {}
    for key, ref in [*((k, v[0]) for k, v in ours.items()), *((k, v[0]) for k, v in uncountable.items())]:
        for held in (ref, earlier.get(key)):
            if held is not None:
                cells.append((held, batch))
                minutes.setdefault((held, batch), set()).add(events[key].written_at or "")
    stored = usage.counted(cells, minutes)
    # counted under the event's key, or under the one an earlier version gave it
    existing = stored | {(ref, batch) for k, (ref, *_) in ours.items() if (earlier.get(k), batch) in stored}
    existing |= {(ref, batch) for k, (ref, _) in uncountable.items() if (earlier.get(k), batch) in stored}
    for (customer_id, transaction_id), (ref, code) in uncountable.items():
        if (ref, batch) in existing:
            continue
        if usage.park_uncounted(customer_id, transaction_id, batch, code, NUMBER_RULES[code]):
            moved(customer_id, transaction_id, "failed")
            report.repaired += 1
            entry = {"batch": batch, **_cell_ids(ref), "transaction_ids": [transaction_id], "error": code}
            report.repairs.append({"kind": "event_parked", **entry})
    writes = GroupWrites(f"sweep-{batch}", usage.shards)
    members: dict[tuple[str, tuple[str, str, str]], list[CellEvent]] = {}
    for key, (ref, aggregation, value) in ours.items():
        customer_id, transaction_id = key
        if (ref, batch) in existing:
            continue
        at = events[(customer_id, transaction_id)].timestamp
        part = writes.add(
            ref,
            aggregation,
            transaction_id,
            at,
            value,
            recount=Recount(customer_id, transaction_id, batch, minute_of(events[key].written_at or "")),
            rules=catalog.event_rules.get(ref.meter_code),
        )
        cell_event = CellEvent(ref, transaction_id, transaction_id, at, value, False, batch)
        members.setdefault((part, (ref.customer_id, ref.meter_code, ref.day)), []).append(cell_event)
    for part, write in writes.parts():
        report.uncounted_found += write.count
        entry = {"batch": batch, **_day_ids(write), "transaction_ids": write.transaction_ids}
        done = count_write(
            usage,
            catalog.limit_settings(write.customer_id, now),
            part,
            write,
            members[(part, write.key)],
            now,
        )
        result = done.cell
        for transaction_id in done.refused:  # past the customer's hard cap (logic/limits)
            moved(write.customer_id, transaction_id, "over_limit")
            report.repaired += 1
            report.repairs.append({"kind": "event_over_limit", **entry, "transaction_ids": [transaction_id]})
        if result.retry:  # transient: the next sweep tries again
            error = {"error": result.error or "not counted"}
            report.failures.append({"kind": "uncounted", **entry, "transaction_ids": result.retry, **error})
        for transaction_id in result.parked:
            moved(write.customer_id, transaction_id, "failed")
            report.repaired += 1
            report.repairs.append(
                {"kind": "event_parked", **entry, "transaction_ids": [transaction_id], "error": result.error}
            )
        if result.counted:  # one repair per cell, as each cell is reported
            for ref, cell in write.cells.items():
                report.repaired += 1
                ids = {"batch": batch, **_cell_ids(ref), "transaction_ids": cell.totals.transaction_ids}
                report.repairs.append({"kind": "uncounted", **ids})
    return touched


def _recompute(
    usage: UsageRepository,
    lookup: Callable[[set[str], set[str]], CatalogSnapshot],
    ref: GroupRef,
    report: UsageSweepReport,
) -> str:
    """Recompute one cell from its raw events (found through its contributions) and repair drift.

    Returns what it found: ``same`` (no drift), ``repaired``, ``conflict`` (the aggregate changed while
    it was read: recompute again), ``pending`` (a pending day of the cell is not folded yet) or
    ``no_meter``. Only events whose status is ``accepted`` count (a voided one no longer does)."""
    report.cells_checked += 1
    stored_parts = usage.contributions(ref.customer_id, ref.meter_code, ref.hour, ref.hour)
    parts = [s for s in stored_parts if s.group == ref.group]
    if any(s.pending for s in parts):
        return "pending"  # checked once its pending days are folded (a repair names the batches it folds in)
    folded = {s.batch for s in parts if not s.legacy}
    catalog = lookup({ref.customer_id}, {ref.meter_code})
    meter = catalog.meters.get(ref.meter_code)
    if meter is None:
        return "no_meter"
    totals = _totals(usage, catalog, ref, parts)
    cells = usage.aggregates(ref.customer_id, ref.meter_code, ref.hour, ref.hour)
    stored = next((c for c in cells if (c.hour, c.group) == (ref.hour, ref.group)), None)
    kept = stored.usage if stored else CellUsage()
    # the late count is not recomputed from events: the stored one is kept
    truth = replace(usage_of(meter.aggregation, totals), late_count=kept.late_count)
    same = (
        kept.count == totals.count
        and combine(meter.aggregation, [kept]) == combine(meter.aggregation, [truth])
        and (kept.weighted or 0) == (truth.weighted or 0)
        # every per-event rule of the meter priced every event (a rule registered after some were counted),
        # into the sum its events' charges make
        and all(
            (kept.event_counts.get(name), kept.event_sums.get(name))
            == (truth.event_counts.get(name), truth.event_sums.get(name))
            for name in truth.event_counts
        )
    )
    if same:
        return "same"
    report.drift_found += 1
    # quantities as decimal text: the stored report reads back with the same types (docs/billing.md)
    before = {
        "events": kept.count,
        "quantity": jsonutil.number_text(combine(meter.aggregation, [kept])),
    }
    base = stored.base if stored else None
    if usage.replace_aggregate(ref, truth, iso(datetime.now(UTC)), expected=base, folded=folded):
        report.repaired += 1
        report.repairs.append(
            {
                "kind": "drift",
                "customer_id": ref.customer_id,
                "meter": ref.meter_code,
                "hour": ref.hour,
                "group": ref.group,
                "before": before,
                "after": {
                    "events": totals.count,
                    "quantity": jsonutil.number_text(combine(meter.aggregation, [truth])),
                },
            }
        )
        return "repaired"
    return "conflict"


def _totals(
    usage: UsageRepository,
    catalog: CatalogSnapshot,
    ref: GroupRef,
    parts: list[Any],
    without: frozenset[str] = frozenset(),
) -> GroupTotals:
    """The totals of the cell's accepted events (found through its contributions ``parts``), those of
    ``without`` left out."""
    meter = catalog.meters[ref.meter_code]
    transaction_ids = {t for s in parts for t in s.transaction_ids} - without
    events = usage.get_events((ref.customer_id, t) for t in transaction_ids)
    totals = GroupTotals()
    rules = catalog.event_rules.get(ref.meter_code) or {}
    for item in events.values():
        found = _ref_and_value(item, catalog) if item.status == "accepted" else None
        if found is not None and ref in (found[0], _earlier_ref(item, catalog, found[0])):
            totals.add(item.transaction_id, meter.aggregation, item.timestamp, found[2], rules)
    return totals


def cell_without(
    usage: UsageRepository,
    lookup: Callable[[set[str], set[str]], CatalogSnapshot],
    ref: GroupRef,
    without: frozenset[str],
) -> CellUsage | None:
    """The cell's usage as its accepted events other than ``without`` make it (what a void of those would
    recompute; nothing is written), or None when its meter is gone. Pending usage not folded yet is left
    out, as a recompute waits for it."""
    parts = [
        s
        for s in usage.contributions(ref.customer_id, ref.meter_code, ref.hour, ref.hour)
        if s.group == ref.group
    ]
    catalog = lookup({ref.customer_id}, {ref.meter_code})
    meter = catalog.meters.get(ref.meter_code)
    if meter is None:
        return None
    cells = usage.aggregates(ref.customer_id, ref.meter_code, ref.hour, ref.hour)
    stored = next((c for c in cells if (c.hour, c.group) == (ref.hour, ref.group)), None)
    late = stored.usage.late_count if stored else 0
    return replace(usage_of(meter.aggregation, _totals(usage, catalog, ref, parts, without)), late_count=late)


def usage_check(ctx: SweepContext) -> CheckResult:
    """The ``usage`` check: :func:`sweep_usage` over the window, as a :class:`CheckResult`."""
    from neruba.dal.catalog import CatalogCache

    lookup = CatalogCache(bootstrap.catalog(), ttl_seconds=0).lookup
    report = sweep_usage(bootstrap.usage(), lookup, ctx.start, ctx.end, now=ctx.now)
    result = CheckResult(
        name="usage",
        checked={
            "batches": report.batches_checked,
            "events": report.events_checked,
            "aggregate_cells": report.cells_checked,
        },
        found=report.uncounted_found + report.drift_found,
        repaired=report.repaired,
        repairs=report.repairs,
        details={
            "uncounted_found": report.uncounted_found,
            "drift_found": report.drift_found,
            "window_start": report.window_start,
            "window_end": report.window_end,
            "pending_folded": report.folded,
            "pending_lag_seconds": {str(shard): age for shard, age in sorted(report.pending_lag.items())},
        },
    )
    if report.pending_lag:  # the ``PendingFoldLagAlarm``: a fold that fell behind (docs/operations.md)
        from neruba.observability import metrics

        metrics.add_metric(
            name="PendingFoldLagSeconds", unit="Seconds", value=max(report.pending_lag.values())
        )
    for failure in report.failures:
        kind, error = failure.pop("kind"), failure.pop("error")
        result.fail(kind, error, **failure)
    return result


# the same recount, adoption and cell of an event, for voided and amended events (logic/ingest/voids.py)
recompute_cell = _recompute


def adopt_uncounted(
    usage: UsageRepository,
    lookup: Callable[[set[str], set[str]], CatalogSnapshot],
    batch: str,
    keys: list[tuple[str, str]],
    now: datetime,
    report: UsageSweepReport,
) -> set[GroupRef]:
    """Count the events of ``batch`` no worker counted, as one attempt of its own: the events it refuses
    ``over_limit`` or parks ``failed`` name it (``dal/outcomes.py``) and their moves are added to the
    outcome counters as one counts item, where the worker counts its own refusals and parks."""
    attempt = attempt_id(f"sweep-{batch}", now)
    moves: Counter[str] = Counter()
    with moves_by(attempt):
        cells = _adopt_uncounted(usage, lookup, batch, keys, now, report, moves)
    if +moves or -moves:
        usage.add_outcomes(dict(moves), attempt)
    return cells


cell_of_event = _ref_and_value
