"""Counting one batch's events of a customer's meter and day when that meter has limits.

The ingest worker hands a day write here instead of ``logic.ingest.cells.count_cell`` when the customer
has limits on the meter (``IngestBatch._count_write``; several days of one period: ``count_days``). One
attempt:

1. read the period counter of each period the events fall in (``dal.limits``: one strongly consistent
   read each; a day holds at most two periods) and complete the write it records as pending, if any
   (``settle``, ``dal.limit_pending``); if that write is this one (an earlier attempt), stop;
2. decide, in (timestamp, transaction id) order, which events fit under the hard cap
   (``domain.limits.decide``; with an amount cap or spend alerts, ``domain.limit_amounts.decide`` with the
   prices of ``logic.limits.amounts``) and which alert levels the admitted ones reach
   (``domain.limits.crossed``); with spend alerts, the period's spend counter too (``_spend``);
3. when one counter moves (``_one_put``): check that this write's contribution does not exist (an earlier
   attempt whose record was completed and replaced), then put the counter's new state on condition of
   the version read, recording the contribution, the refusals and the ``alert.triggered`` outbox items
   (and, with spend alerts, the spend step: ``_spend_step``); then write them (``_finish``), each a plain
   conditional write that the counter's next writer repeats if this worker dies first;
4. otherwise (adopted or checked events, two periods, every event refused, many refusals) commit in ONE
   transaction: the contribution of the admitted events (``UsageRepository.count_group``), each counter's
   new state on condition of the version read (without a record), each refused event turned
   ``over_limit`` (on condition that this batch still holds it, uncounted) and one outbox event
   ``alert.triggered`` per level reached.

In a sparse batch (``dal.pending``) the worker hands its limited days to ``share`` first: the counters
are read in one BatchGetItem, and each limit period of a meter whose events all fit moves its counter by
one put whose record names the batch's pending item of the customer's shard instead of a contribution
(``dal.limit_pending.Shared``; an amount cap decides with the prices, a spend step rides in the record);
the worker then puts its pending items holding those days (``finish_shared``). Any other meter's days
(a refusal, a day split between two periods) are counted as above.

Refusals beyond what one transaction holds (100 actions) are committed before it, on condition that the
contribution does not exist yet (``_refuse_ahead``). A counter that moved since it was read (another batch
of the customer) fails the put or cancels the transaction: read and decide again (a few times, then the
messages go back to SQS). A contribution that exists already (a redelivered batch) cancels the
transaction too: nothing is counted, refused or fired twice. When every event is refused the contribution
is written empty: it is still the proof that this batch decided, so a redelivery of the batch (which finds
the counter full) never refuses the events its first delivery counted.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from neruba.dal import limit_pending as pending
from neruba.dal.contributions import contribution_key, shard_of
from neruba.dal.dynamo import is_transient
from neruba.dal.limits import SPEND, Counter, LimitsRepository
from neruba.dal.transaction import LIMIT
from neruba.dal.usage import DayWrite, ExtraConditionError, Recount, UsageRepository
from neruba.domain.limit_amounts import Period
from neruba.domain.limit_amounts import decide as decide_amounts
from neruba.domain.limits import LimitSettings, crossed, decide, usage_of
from neruba.domain.numbers import exact_sum
from neruba.logic.ingest.cells import CellEvent, CellResult, count_cell
from neruba.logic.limits.amounts import Prices
from neruba.observability import logger
from neruba.timefmt import iso_z, parse_ts

ATTEMPTS = 8
OVER_LIMIT = "over_limit"


@dataclass(slots=True)
class GateResult:
    """What counting a limited write did: the cell result, the events refused, the alerts fired."""

    cell: CellResult
    refused: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _State:
    """A counter's new state: usage, events, levels fired; the meter's amount or the spend per meter."""

    seen: Counter
    used: Decimal
    events: int
    fired: set[str]
    amount: int | None = None
    amounts: dict[str, int] | None = None
    versions: dict[str, int] | None = None  # spend counter: each meter's counter version


@dataclass(slots=True)
class _Plan:
    admitted: list[CellEvent]
    refused: list[CellEvent]
    counters: list[_State]
    alerts: list[dict[str, Any]]
    found: set[tuple[str, str]] = field(default_factory=set)  # own contributions a counter records
    currency: str | None = None  # the price's currency (spend alerts)


@dataclass(slots=True)
class _Write:
    """What one limited write works with: the repositories, the customer's settings, the batch (or part)
    writing, the time, the meter's prices (amount caps, spend alerts), the write's own contribution keys
    (an earlier attempt's record names them), the events refused while completing another write's record,
    and what was read ahead for it (its counters, the pending items their records name)."""

    usage: UsageRepository
    limits: LimitsRepository
    settings: LimitSettings
    part: str
    now: datetime
    prices: Prices | None = None
    own: set[tuple[str, str]] = field(default_factory=set)
    settled: list[str] = field(default_factory=list)
    ahead: dict[tuple[str, str, datetime], Counter] = field(default_factory=dict)
    items: dict[tuple[str, str], Any] = field(default_factory=dict)

    def counter(self, customer_id: str, meter_code: str, start: datetime, end: datetime) -> Counter:
        """The counter read ahead (once), else read now."""
        found = self.ahead.pop((customer_id, meter_code, start), None)
        return found if found is not None else self.limits.counter(customer_id, meter_code, start, end)


def limited(settings: LimitSettings | None, meter_code: str, aggregation: str) -> bool:
    """Whether a customer's settings put any limit on this meter (or count its amount for spend)."""
    return settings is not None and settings.counts(meter_code, aggregation)


def applies(settings_text: str | None, meter_code: str, aggregation: str) -> bool:
    """Whether a customer's stored limit settings count this meter (else it is counted as any cell)."""
    return limited(LimitSettings.from_stored(settings_text), meter_code, aggregation)


def count_write(
    usage: UsageRepository,
    settings_text: str | None,
    part: str,
    write: DayWrite,
    events: list[CellEvent],
    now: datetime,
) -> GateResult:
    """Count one day write of a batch (the worker) or of a repair (the sweep): through the customer's
    limits when it has some on the meter (``settings_text``, as its catalog item stores them), else as any
    cell (``logic.ingest.cells.count_cell``)."""
    settings = LimitSettings.from_stored(settings_text)
    if settings is None or not limited(settings, write.meter_code, write.aggregation):
        return GateResult(count_cell(usage, part, write, events, now))
    from neruba import bootstrap

    return count_limited(usage, bootstrap.limits(), settings, part, write, events, now)


def count_limited(
    usage: UsageRepository,
    limits: LimitsRepository,
    settings: LimitSettings,
    part: str,
    write: DayWrite,
    events: list[CellEvent],
    now: datetime,
) -> GateResult:
    """Count the admitted events of ``write`` with its counters, refuse the rest (module docstring)."""
    ctx = _Write(usage, limits, settings, part, now)
    return _with_settled(_count_limited(ctx, write, events), ctx.settled)


def _with_settled(result: GateResult, settled: list[str]) -> GateResult:
    """``result`` also naming the events refused while completing a pending write of the counter (another
    batch's, or an earlier attempt's): the caller records each refusal that landed once, whoever made it."""
    result.refused += [t for t in settled if t not in result.refused]
    return result


def _count_limited(ctx: _Write, write: DayWrite, events: list[CellEvent]) -> GateResult:
    usage, limits, settings, part, now = ctx.usage, ctx.limits, ctx.settings, ctx.part, ctx.now
    everything = [e.message_id for e in events]
    early: list[str] = []  # refused ahead of the transaction (more than it holds)
    if settings.rates(write.meter_code):
        ctx.prices = Prices(write.customer_id, write.meter_code)
    ctx.own = _own_keys(usage, part, [write])
    for attempt in range(ATTEMPTS):
        plan = _plan(ctx, write, events)
        if plan.found:
            return GateResult(CellResult(), early)  # an earlier attempt of this batch counted and refused
        decided = _decided_by_holders(usage, part, write, events)
        if decided:  # their batch decided them (its pending write completed just now, maybe): decide again
            events = [e for e in events if e not in decided]
            if not events:
                return GateResult(CellResult(), early)
            continue
        if _one_put([write], plan, early):
            try:
                moved = _put_pending(usage, limits, settings, part, [write], plan, now)
            except Exception as exc:
                if is_transient(exc):  # the put may have landed: its events stay held (not given back)
                    logger.warning(
                        "limit counter not moved, retried", extra={"batch_id": part, "error": repr(exc)[:300]}
                    )
                    return GateResult(CellResult(retry=everything, error=repr(exc)[:300], held=True))
                return _isolate(ctx, write, events, exc)
            if moved is None:
                return GateResult(CellResult(), early)  # its contribution exists: counted earlier
            if moved is False:
                time.sleep(random.uniform(0.005, 0.02) * (2**attempt))  # the counter moved: decide again
                continue
            return _finish(limits, part, moved, plan, everything)
        adopting = sum(1 + usage.shards for e in plan.admitted if e.held_by != part)  # update + checks
        budget = max(0, LIMIT - 1 - adopting - len(plan.counters) - len(plan.alerts))
        kept, ahead = plan.refused[:budget], plan.refused[budget:]
        if ahead:
            if not _refuse_ahead(usage, limits, part, write, ahead):
                return GateResult(CellResult(), early)  # an earlier attempt of this batch decided them
            early += [e.transaction_id for e in ahead]
            events = [e for e in events if e not in ahead]
        extra = [("limit", _counter_put(limits, state)) for state in plan.counters]
        extra += [("over_limit", _refusal(limits, write, e)) for e in kept]
        extra += [("alert", _alert_action(write.customer_id, alert, now)) for alert in plan.alerts]
        try:
            counted = usage.count_group(part, _admitted_write(write, plan.admitted, part), now, extra)
        except ExtraConditionError as exc:
            if exc.args and exc.args[0] == "limit":
                time.sleep(random.uniform(0.005, 0.02) * (2**attempt))  # the counter moved: decide again
                continue
            return GateResult(CellResult(retry=everything, error=f"refusal not written: {exc}"))
        except Exception as exc:
            if is_transient(exc):
                logger.warning(
                    "limited usage not counted, retried", extra={"batch_id": part, "error": repr(exc)[:300]}
                )
                return GateResult(CellResult(retry=everything, error=repr(exc)[:300]))
            return _isolate(ctx, write, events, exc)
        if not counted:
            return GateResult(CellResult(), early)  # an earlier attempt of this batch counted and refused
        return GateResult(CellResult(counted=True), early + [e.transaction_id for e in kept], plan.alerts)
    return GateResult(CellResult(retry=everything, error="limit counter kept moving"))


PENDING_REFUSALS = 50  # refusals one counter put records (more: the transaction, ``_refuse_ahead``)


def count_days(
    usage: UsageRepository,
    settings_text: str | None,
    part: str,
    writes: list[tuple[DayWrite, list[CellEvent]]],
    now: datetime,
) -> GateResult:
    """Count several days of one batch for one customer's limited meter (``settings_text`` limits it) by
    ONE counter put when the days fall in one limit period: the events decided together in (timestamp,
    transaction id) order, one contribution per day in the put's record. Anything one put cannot carry
    (a second period, adopted or checked events, an earlier attempt that counted some of the days,
    too many refusals, every event refused) is counted day by day (``count_write``)."""
    settled: list[str] = []
    return _with_settled(_count_days(usage, settings_text, part, writes, now, settled), settled)


def _count_days(
    usage: UsageRepository,
    settings_text: str | None,
    part: str,
    writes: list[tuple[DayWrite, list[CellEvent]]],
    now: datetime,
    settled: list[str],
) -> GateResult:
    from neruba import bootstrap

    settings = LimitSettings.from_stored(settings_text)
    days = [write for write, _ in writes]
    events = [e for _, day_events in writes for e in day_events]
    if settings is None or len(writes) < 2 or any(w.recounts or w.checks for w in days):
        return _each(usage, settings_text, part, writes, now)
    if len({settings.period(parse_ts(e.at)) for e in events}) != 1:
        return _each(usage, settings_text, part, writes, now)
    limits, first = bootstrap.limits(), days[0]
    prices = Prices(first.customer_id, first.meter_code) if settings.rates(first.meter_code) else None
    own = _own_keys(usage, part, days)
    ctx = _Write(usage, limits, settings, part, now, prices, own, settled)
    everything = [e.message_id for e in events]
    for attempt in range(ATTEMPTS):
        plan = _plan(ctx, first, events)
        if plan.found == own:
            return GateResult(CellResult())  # an earlier attempt of this batch counted and refused them
        if plan.found or not _one_put(days, plan, []):
            return _each(usage, settings_text, part, writes, now)
        try:
            moved = _put_pending(usage, limits, settings, part, days, plan, now)
        except Exception as exc:
            if is_transient(exc):  # the put may have landed: its events stay held (not given back)
                return GateResult(CellResult(retry=everything, error=repr(exc)[:300], held=True))
            return _each(usage, settings_text, part, writes, now)
        if moved is None:
            return _each(usage, settings_text, part, writes, now)  # some day counted by an earlier attempt
        if moved is False:
            time.sleep(random.uniform(0.005, 0.02) * (2**attempt))  # the counter moved: decide again
            continue
        return _finish(limits, part, moved, plan, everything)
    return GateResult(CellResult(retry=everything, error="limit counter kept moving"))


@dataclass(slots=True)
class SharedWrite:
    """A limited write of a sparse batch (``share``): ``record`` when its counter moved recording it, its
    ``days`` then going into the batch's pending item of their shard; None when they are counted as usual
    (``count_write``/``count_days``), or retried (``result.cell.retry``). ``result.refused`` names the
    events refused while completing the counter's earlier record either way."""

    record: pending.PendingWrite | None
    result: GateResult
    days: list[DayWrite] = field(default_factory=list)


def share(
    usage: UsageRepository,
    part: str,
    minute: str,
    units: list[tuple[str | None, list[DayWrite], list[CellEvent]]],
    now: datetime,
) -> list[list[SharedWrite]]:
    """Decide the limited days of a sparse batch together, each unit (one customer's meter: its settings,
    its days, their events) moving the counter of each limit period its days fall in by one conditional
    put whose record names the batch's pending item of ``minute`` in the customer's shard
    (``dal.limit_pending.Shared``) instead of a contribution of its own: the counters in one BatchGetItem,
    the pending items their earlier records name in another. Returns, per unit, one write per period (or
    one for all its days when none is shared). A period's write is shared when every event fits (no
    refusal) and its meter's counter is the only one it moves, bar the spend counter (a step its record
    carries, applied by ``finish_shared``); a unit with a day split between two periods is counted as
    usual (a day's contribution would need both counters). The caller puts the pending items after these
    counter puts, so a day is in a pending item only once its counter moved (docs/limits.md, "Sparse
    batches under limits")."""
    from neruba import bootstrap

    limits = bootstrap.limits()
    out = [[SharedWrite(None, GateResult(CellResult()), days)] for _, days, _ in units]
    candidates: list[tuple[int, LimitSettings, tuple[datetime, datetime], list[DayWrite], list[CellEvent]]]
    candidates = []
    for n, (text, days, events) in enumerate(units):
        settings = LimitSettings.from_stored(text)
        first = days[0]
        if settings is None or not limited(settings, first.meter_code, first.aggregation):
            continue
        if any(d.recounts or d.checks for d in days):
            continue
        periods = _by_period(settings, days, events)
        if periods is not None:
            out[n] = []
            candidates += [(n, settings, period, ds, es) for period, (ds, es) in periods]
    read = limits.counters(
        [(days[0].customer_id, days[0].meter_code, *period) for _, _, period, days, _ in candidates]
    )
    items = pending.read_shared(pending.decode(c.pending) for c in read if c.pending is not None)
    prices: dict[int, Prices] = {}
    for (n, settings, _, days, events), seen in zip(candidates, read, strict=True):
        first = days[0]
        ctx = _Write(usage, limits, settings, part, now, own=_own_keys(usage, part, days), items=items)
        if settings.rates(first.meter_code):
            ctx.prices = prices.setdefault(n, Prices(first.customer_id, first.meter_code))
        ctx.ahead[(seen.customer_id, seen.meter_code, seen.start)] = seen
        try:
            done = _share_one(ctx, minute, days, events)
        except Exception as exc:
            if not is_transient(exc):  # counted as usual, which isolates what cannot be written
                done = SharedWrite(None, GateResult(CellResult(), list(ctx.settled)))
            else:
                logger.warning(
                    "limit counter not moved, retried", extra={"batch_id": part, "error": repr(exc)[:300]}
                )
                retry = CellResult(retry=[e.message_id for e in events], error=repr(exc)[:300], held=True)
                done = SharedWrite(None, GateResult(retry, list(ctx.settled)))
        done.days = days
        out[n].append(done)
    return out


def _by_period(
    settings: LimitSettings, days: list[DayWrite], events: list[CellEvent]
) -> list[tuple[tuple[datetime, datetime], tuple[list[DayWrite], list[CellEvent]]]] | None:
    """The unit's days and events by the limit period they fall in; None when a day has events in two
    periods (its one contribution cannot be recorded by either counter alone)."""
    parts: dict[tuple[datetime, datetime], tuple[list[DayWrite], list[CellEvent]]] = {}
    for day in days:
        members = [e for e in events if e.ref.day == day.day]
        periods = {settings.period(parse_ts(e.at)) for e in members}
        if len(periods) != 1:
            return None
        held, of_day = parts.setdefault(periods.pop(), ([], []))
        held.append(day)
        of_day += members
    return sorted(parts.items())


def _share_one(ctx: _Write, minute: str, days: list[DayWrite], events: list[CellEvent]) -> SharedWrite:
    """One period of a unit of ``share``: decide, then move the counter recording the shared write (or
    not); with spend alerts, the spend counter's step rides in the record (``finish_shared``)."""
    from neruba.dal.pending import day_entry, pending_shard

    first = days[0]
    plan = _plan(ctx, first, events)
    meters = [state for state in plan.counters if state.seen.meter_code != SPEND]
    spends = [state for state in plan.counters if state.seen.meter_code == SPEND]
    if plan.found or plan.refused or len(meters) != 1 or len(spends) > 1:
        return SharedWrite(None, GateResult(CellResult(), list(ctx.settled)))
    (state,) = meters
    shared = pending.Shared(
        pending_shard(first.customer_id),
        minute,
        ctx.part,
        tuple(day_entry(d.customer_id, d.meter_code, d.day) for d in days),
    )
    alerts = [a for a in plan.alerts if a["kind"] != "spend"]  # the spend step fires the spend levels
    record = pending.PendingWrite(
        [ctx.usage.contribution_put(ctx.part, day, ctx.now) for day in days],
        [],
        _message(first),
        [_alert_action(first.customer_id, a, ctx.now) for a in alerts],
        _step(first, state, spends[0], ctx.settings, plan, ctx.now) if spends else None,
        shared,
    )
    action = ctx.limits.counter_put(
        state.seen, state.used, state.events, state.fired, state.amount, None, pending.encode(record)
    )
    if not ctx.limits.write_counter(action):
        return SharedWrite(None, GateResult(CellResult(), list(ctx.settled)))  # moved: counted as usual
    return SharedWrite(record, GateResult(CellResult(counted=True), list(ctx.settled), alerts))


def finish_shared(record: pending.PendingWrite, *, landed: bool) -> list[dict[str, Any]]:
    """After the put of the batch's pending item meant to hold a shared write's days: its alerts when the
    put ``landed``, else the completion of its record (whatever the item holds counts there, the rest as
    contributions); then its spend step, if any. Returns the spend alerts the step fired. A failure leaves
    the record on the counter for its next writer (``settle`` completes it and applies the step)."""
    from neruba import bootstrap

    if landed:
        pending.finish_shared(record)
    else:
        pending.complete(record)
    return [] if record.spend is None else _spend_step(bootstrap.limits(), record.spend)


def _step(
    write: DayWrite, state: _State, spend: _State, settings: LimitSettings, plan: _Plan, now: datetime
) -> dict[str, Any]:
    """The spend counter's step a meter counter's record carries (``_spend_step``): the meter's amount at
    the counter's next version, the period, the spend levels, the currency."""
    return {
        "c": write.customer_id,
        "k": write.meter_code,
        "a": state.amount,
        "v": state.seen.version + 1,
        "s": iso_z(spend.seen.start),
        "e": iso_z(spend.seen.end),
        "l": {k: str(v) for k, v in settings.spend_levels().items()},
        "cur": plan.currency,
        "t": iso_z(now),
    }


def _each(
    usage: UsageRepository,
    settings_text: str | None,
    part: str,
    writes: list[tuple[DayWrite, list[CellEvent]]],
    now: datetime,
) -> GateResult:
    """``count_write`` of each day, the results merged."""
    merged = GateResult(CellResult())
    for write, events in writes:
        one = count_write(usage, settings_text, part, write, events, now)
        merged.cell.retry += one.cell.retry
        merged.cell.parked += one.cell.parked
        merged.cell.counted = merged.cell.counted or one.cell.counted
        merged.cell.held = merged.cell.held or one.cell.held
        merged.cell.error = merged.cell.error or one.cell.error
        merged.refused += one.refused
        merged.alerts += one.alerts
    return merged


def settle(
    seen: Counter,
    own: set[tuple[str, str]] | None = None,
    limits: LimitsRepository | None = None,
    refused: list[str] | None = None,
    items: dict[tuple[str, str], Any] | None = None,
) -> set[tuple[str, str]]:
    """Complete the write ``seen`` records as pending (``dal.limit_pending``, then its spend step) before
    its reader replaces the counter; returns the contribution keys of that write found in ``own`` (the
    reader's own: its write was recorded by an earlier attempt). The events this call refused are added
    to ``refused``: the one refusal that lands is the one counted ``over_limit`` (the writer's own
    completion then finds them refused and reports nothing). ``items``: pending items read ahead."""
    if seen.pending is None:
        return set()
    write = pending.decode(seen.pending)
    done = pending.complete(write, items=items)
    if refused is not None:
        refused += done
    if write.spend is not None:
        from neruba import bootstrap

        _spend_step(limits or bootstrap.limits(), write.spend)
    return (own or set()) & write.keys


def _decided_by_holders(
    usage: UsageRepository, part: str, write: DayWrite, events: list[CellEvent]
) -> list[CellEvent]:
    """The adopted events whose holding batch wrote its contribution for the day (read after the
    counter's pending write was completed): that batch decided every event of the day it held, counting
    it or refusing it (``dal.limit_pending``), so this write neither counts nor refuses them again. A
    holder whose write was shared (``share``: no refusal) holds the day in its pending item instead."""
    holders = {e.held_by for e in events if e.held_by != part}
    done = {holder for holder in holders if usage.contribution_exists(holder, write)}
    # a holder that shared its limited day put it into its pending item instead (``share``)
    minutes = {(r.transaction_id, r.old_batch): r.old_minute for r in write.recounts if r.old_minute}
    asked = {
        (e.ref, e.held_by): [minutes[(e.transaction_id, e.held_by)]]
        for e in events
        if e.held_by != part and e.held_by not in done and (e.transaction_id, e.held_by) in minutes
    }
    if asked:
        done |= {holder for _, holder in usage.counted(asked, asked)}
    return [e for e in events if e.held_by in done]


def _own_keys(usage: UsageRepository, part: str, writes: list[DayWrite]) -> set[tuple[str, str]]:
    keys = [contribution_key(*write.key, part, shard_of(part, usage.shards)) for write in writes]
    return {(key["pk"]["S"], key["sk"]["S"]) for key in keys}


def _one_put(writes: list[DayWrite], plan: _Plan, early: list[str]) -> bool:
    """Whether the write can move its counter by one put recording it as pending: one counter moves (no
    second period, no spend counter), nothing is adopted or checked (those need the transaction's
    conditions), and its refusals fit the record. The spend counter, when it moves, is a step the put
    records (``_spend_step``)."""
    meters = [state for state in plan.counters if state.seen.meter_code != SPEND]
    return (
        len(meters) == 1
        and not any(write.recounts or write.checks for write in writes)
        and not early
        and len(plan.refused) <= PENDING_REFUSALS
    )


def _put_pending(
    usage: UsageRepository,
    limits: LimitsRepository,
    settings: LimitSettings,
    part: str,
    writes: list[DayWrite],
    plan: _Plan,
    now: datetime,
) -> pending.PendingWrite | Literal[False] | None:
    """Move the counter by one conditional put recording the write (its days: one contribution each) as
    pending. Returns the record when the counter moved, False when it moved since it was read, None when a
    contribution of it exists already (an earlier attempt counted it and its record was completed and
    replaced since)."""
    write = writes[0]  # the days share the customer and meter
    (state,) = [s for s in plan.counters if s.seen.meter_code != SPEND]
    spend = next((s for s in plan.counters if s.seen.meter_code == SPEND), None)
    step = None if spend is None else _step(write, state, spend, settings, plan, now)
    record = pending.PendingWrite(
        [
            usage.contribution_put(
                part, _admitted_write(day, [e for e in plan.admitted if e.ref.day == day.day], part), now
            )
            for day in writes
        ],
        [(write.customer_id, e.transaction_id, e.held_by) for e in plan.refused],
        _message(write),
        [_alert_action(write.customer_id, a, now) for a in plan.alerts if a["kind"] != "spend"],
        step,
    )
    if any(usage.contribution_exists(part, day) for day in writes):
        return None
    action = limits.counter_put(
        state.seen, state.used, state.events, state.fired, state.amount, state.amounts, pending.encode(record)
    )
    return record if limits.write_counter(action) else False


def _finish(
    limits: LimitsRepository, part: str, record: pending.PendingWrite, plan: _Plan, everything: list[str]
) -> GateResult:
    """The writer completes its own record (and its spend step); when it cannot, the record stays for
    the next writer of the counter and the messages come again, their events still held by this batch."""
    alerts = [a for a in plan.alerts if a["kind"] != "spend"]
    try:
        refused = pending.complete(record, fresh=True)
        if record.spend is not None:
            alerts += _spend_step(limits, record.spend)
    except Exception as exc:
        logger.warning(
            "limited write left pending on its counter", extra={"batch_id": part, "error": repr(exc)[:300]}
        )
        return GateResult(CellResult(retry=everything, error=repr(exc)[:300], held=True))
    return GateResult(CellResult(counted=True), refused, alerts)


def _refuse_ahead(
    usage: UsageRepository, limits: LimitsRepository, part: str, write: DayWrite, ahead: list[CellEvent]
) -> bool:
    """Refuse the events one transaction cannot hold besides the contribution, before it, each batch of
    99 on condition that the contribution is not written yet: a refusal is final whatever the counter does
    next (it only grows between reads, bar negative values), and an earlier attempt that wrote the
    contribution decided these events already (then nothing is written: False)."""
    for start in range(0, len(ahead), LIMIT - 1):
        refusals = [_refusal(limits, write, e) for e in ahead[start : start + LIMIT - 1]]
        if not limits.refuse_before(part, usage.shards, write.key, refusals):
            return False
    return True


def _isolate(ctx: _Write, write: DayWrite, events: list[CellEvent], exc: Exception) -> GateResult:
    """A write refused for a reason other than a condition (a figure DynamoDB cannot store, a refused
    request): as ``logic.ingest.cells`` does, each event is counted on its own (``{part}.{n}``, adopting it
    from the batch that holds it); a single event whose own write is refused is parked ``failed``."""
    from neruba.dal.usage import AggregateOverflowError

    usage, part = ctx.usage, ctx.part
    error = f"{type(exc).__name__}: {exc}"[:500]
    logger.error("limited usage refused, isolating its events", extra={"batch_id": part, "error": error})
    if len(events) == 1:
        (event,) = events
        reason = "aggregate_overflow" if isinstance(exc, AggregateOverflowError) else "write_refused"
        parked = usage.park_uncounted(write.customer_id, event.transaction_id, event.held_by, reason, error)
        return GateResult(CellResult(parked=[event.transaction_id] if parked else [], error=error))
    merged = GateResult(CellResult(error=error))
    for n, event in enumerate(events):
        one = count_limited(usage, ctx.limits, ctx.settings, f"{part}.{n}", write, [event], ctx.now)  # adopts
        merged.cell.retry += one.cell.retry
        merged.cell.parked += one.cell.parked
        merged.cell.counted = merged.cell.counted or one.cell.counted
        merged.refused += one.refused
        merged.alerts += one.alerts
    return merged


def _counter_put(limits: LimitsRepository, state: _State) -> dict[str, Any]:
    return limits.counter_put(
        state.seen, state.used, state.events, state.fired, state.amount, state.amounts, None, state.versions
    )


def _plan(ctx: _Write, write: DayWrite, events: list[CellEvent]) -> _Plan:
    limits, settings, now, prices = ctx.limits, ctx.settings, ctx.now, ctx.prices
    meter = settings.limits_of(write.meter_code)
    by_period: dict[tuple[datetime, datetime], list[CellEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: (e.at, e.transaction_id)):
        by_period[settings.period(parse_ts(event.at))].append(event)
    plan = _Plan([], [], [], [])
    for (start, end), members in sorted(by_period.items()):
        seen = ctx.counter(write.customer_id, write.meter_code, start, end)
        plan.found |= settle(seen, ctx.own, limits, ctx.settled, ctx.items)
        usages = [usage_of(write.aggregation, e.value) for e in members]
        amount: int | None = None
        if prices is None:
            flags = decide(seen.used, meter.hard_cap, usages)
        else:
            priced = [(u, prices.at(parse_ts(e.at))) for u, e in zip(usages, members, strict=True)]
            start_state = Period(seen.used, seen.events, seen.amount)
            decisions = decide_amounts(start_state, meter.hard_cap, meter.hard_cap_amount, priced)
            flags = [d.admitted for d in decisions]
            amount = decisions[-1].after.amount if decisions else seen.amount
        admitted = [e for e, ok in zip(members, flags, strict=True) if ok]
        plan.admitted += admitted
        plan.refused += [e for e, ok in zip(members, flags, strict=True) if not ok]
        if not admitted:
            continue
        after = exact_sum([seen.used, *(a for a, ok in zip(usages, flags, strict=True) if ok)])
        levels = meter.thresholds()
        reached = crossed(seen.used, after, levels, seen.fired)
        capped = (
            []
            if amount is None
            else crossed(Decimal(seen.amount), Decimal(amount), meter.amount_levels(), seen.fired)
        )
        plan.counters.append(
            _State(seen, after, seen.events + len(admitted), seen.fired | set(reached) | set(capped), amount)
        )
        if settings.spend_alerts and amount is not None:
            _spend(limits, settings, write, (start, end), amount, prices, members, now, plan)
        for key in reached:
            plan.alerts.append(
                {
                    "customer_id": write.customer_id,
                    "meter_code": write.meter_code,
                    "alert": key,
                    "kind": {"a": "usage", "soft": "soft_cap", "hard": "hard_cap"}[key.split(":", 1)[0]],
                    "threshold": levels[key],
                    "usage": after,
                    "period_start": iso_z(start),
                    "period_end": iso_z(end),
                    "late": end <= now,
                }
            )
        if capped and prices is not None:
            currency = next((p.currency for p in (prices.at(parse_ts(e.at)) for e in admitted) if p), None)
            plan.alerts += [
                _amount_alert(write, key, after, amount, currency, (start, end), now) for key in capped
            ]
    return plan


def _amount_alert(
    write: DayWrite,
    key: str,
    usage: Decimal,
    amount: int | None,
    currency: str | None,
    period: tuple[datetime, datetime],
    now: datetime,
) -> dict[str, Any]:
    """The alert of a meter's amount cap reached (kind ``hard_cap_amount``, the cap in minor units)."""
    start, end = period
    return {
        "customer_id": write.customer_id,
        "meter_code": write.meter_code,
        "alert": key,
        "kind": "hard_cap_amount",
        "threshold": Decimal(key.split(":", 1)[1]),
        "usage": usage,
        "amount_minor": amount,
        "currency": currency,
        "period_start": iso_z(start),
        "period_end": iso_z(end),
        "late": end <= now,
    }


def _spend(
    limits: LimitsRepository,
    settings: LimitSettings,
    write: DayWrite,
    period: tuple[datetime, datetime],
    amount: int,
    prices: Prices | None,
    members: list[CellEvent],
    now: datetime,
    plan: _Plan,
) -> None:
    """The spend counter's new state when the meter's amount changed, and the spend levels it reaches."""
    start, end = period
    spend = limits.counter(write.customer_id, SPEND, start, end)
    settle(spend, limits=limits)  # the alerts its last write recorded
    if spend.amounts.get(write.meter_code, 0) == amount:
        return  # the spend did not move: nothing to write
    amounts = {**spend.amounts, write.meter_code: amount}
    total = sum(amounts.values())
    reached = crossed(spend.used, Decimal(total), settings.spend_levels(), spend.fired)
    meter_version = plan.counters[-1].seen.version + 1  # the meter's counter, appended just before
    versions = {**spend.versions, write.meter_code: meter_version}
    plan.counters.append(
        _State(spend, Decimal(total), spend.events, spend.fired | set(reached), None, amounts, versions)
    )
    price = next((p for p in (prices.at(parse_ts(e.at)) for e in members) if p), None) if prices else None
    plan.currency = price.currency if price else None
    for key in reached:
        plan.alerts.append(_spend_alert(write.customer_id, key, total, plan.currency, period, now))


def _spend_alert(
    customer_id: str,
    key: str,
    total: int,
    currency: str | None,
    period: tuple[datetime, datetime],
    now: datetime,
) -> dict[str, Any]:
    start, end = period
    return {
        "customer_id": customer_id,
        "meter_code": None,
        "alert": key,
        "kind": "spend",
        "threshold": Decimal(key.split(":", 1)[1]),
        "usage": None,
        "spend_minor": total,
        "currency": currency,
        "period_start": iso_z(start),
        "period_end": iso_z(end),
        "late": end <= now,
    }


def _spend_step(limits: LimitsRepository, step: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply a recorded spend step: set the meter's amount on the spend counter (one conditional put on
    its version) unless a step of that meter's counter at this version or later is applied already, and
    fire the spend levels it reaches (recorded on the spend counter as pending, so a kill before the
    alerts leaves them to its next writer). Returns the alerts fired."""
    customer_id, meter_code, version = str(step["c"]), str(step["k"]), int(step["v"])
    period = (parse_ts(step["s"]), parse_ts(step["e"]))
    levels = {str(k): Decimal(v) for k, v in step["l"].items()}
    now = parse_ts(step["t"])
    for attempt in range(ATTEMPTS):
        spend = limits.counter(customer_id, SPEND, *period)
        settle(spend, limits=limits)
        if spend.versions.get(meter_code, 0) >= version:
            return []  # applied already (by the writer, a completer, or a later write of the meter)
        amounts = {**spend.amounts, meter_code: int(step["a"])}
        total = sum(amounts.values())
        reached = crossed(spend.used, Decimal(total), levels, spend.fired)
        alerts = [_spend_alert(customer_id, key, total, step.get("cur"), period, now) for key in reached]
        record = pending.PendingWrite([], alerts=[_alert_action(customer_id, a, now) for a in alerts])
        put = limits.counter_put(
            spend,
            Decimal(total),
            spend.events,
            spend.fired | set(reached),
            None,
            amounts,
            pending.encode(record) if alerts else None,
            {**spend.versions, meter_code: version},
        )
        if limits.write_counter(put):
            pending.complete(record, fresh=True)
            return alerts
        time.sleep(random.uniform(0.005, 0.02) * (2**attempt))  # another meter's step moved it
    raise SpendContentionError(f"spend counter of {customer_id} kept moving")


class SpendContentionError(RuntimeError):
    """The spend counter moved on every attempt of a step (the messages come again)."""


def _admitted_write(write: DayWrite, admitted: list[CellEvent], part: str) -> DayWrite:
    """``write`` holding only the admitted events (adopted ones keep their recount)."""
    kept = DayWrite(write.customer_id, write.meter_code, write.day, write.aggregation, rules=write.rules)
    kept.checks = set(write.checks)  # pending items of this batch that may hold the day (dal.pending)
    for event in admitted:
        cell = kept.add(event.ref, event.transaction_id, event.at, event.value)
        cell.late = cell.late or event.late
        if event.held_by != part:
            cell.recounts.append(Recount(write.customer_id, event.transaction_id, event.held_by))
    return kept


def _message(write: DayWrite) -> str:
    return (
        f"the usage of meter {write.meter_code!r} in the period would pass the customer's hard cap"
        " (in units or in amount)"
    )


def _refusal(limits: LimitsRepository, write: DayWrite, event: CellEvent) -> dict[str, Any]:
    return limits.over_limit_update(write.customer_id, event.transaction_id, event.held_by, _message(write))


def _alert_action(customer_id: str, alert: dict[str, Any], now: datetime) -> dict[str, Any]:
    from neruba.logic.webhooks.outbox import event_action

    usage = alert["usage"]
    data = {**alert, "threshold": str(alert["threshold"]), "usage": None if usage is None else str(usage)}
    return event_action("alert.triggered", customer_id, data, now)
