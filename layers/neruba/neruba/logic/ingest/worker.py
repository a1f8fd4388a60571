"""Metering a batch of queued events exactly once, with one recorded outcome per copy.

Order of writes for a batch (each step retry-safe, see docs/architecture.md):

1. the journal (the batch's event keys) so a sweep can find anything written below;
2. one conditional put per event: ``accepted``, ``replay`` (was ``failed``), ``duplicate`` (same payload),
   ``conflict`` (other payload; the original stands), or a redelivery of a copy already written;
3. one conditional put per (customer, meter, day): the batch's contribution holding its cells (hours and
   groups), which is both the count and its proof. Redelivered copies whose old batch never counted
   their cell are adopted here (a transaction). A write that fails never fails another
   (``logic/ingest/cells.py``).
4. outcome counters: the attempt's counts as one item written once (``dal/outcomes.py``); copies an
   earlier, killed attempt recorded and never counted are counted once here (``logic/ingest/outcomes.py``).

A customer's meter with usage limits is counted through ``logic/limits`` (``_count_write``; its days of
one batch together, ``_count_days``): its events past a hard cap end ``over_limit`` with the write that
counts the contribution. In a sparse batch its days join the batch's pending items once its counter moved
(``_share``, ``logic.limits.gate.share``).

Unknown customers or meters, events lacking the property their meter aggregates, and events holding a
number DynamoDB cannot store (``domain/numbers.py``) are parked as ``failed`` with a reason; once the
catalog (or the value) is fixed the event is sent again and ends as ``replay``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba import jsonutil
from neruba.dal.catalog import CatalogSnapshot
from neruba.dal.outcomes import attempt_id
from neruba.dal.pending import PENDING_MIN_DAYS, is_sparse, minute_of, pending_shard
from neruba.dal.transaction import Cancelled
from neruba.dal.usage import (
    DayWrite,
    GroupRef,
    GroupWrites,
    HistoryEntry,
    Recount,
    StoredEvent,
    UsageRepository,
)
from neruba.domain.ingest import (
    InvalidPropertyError,
    earlier_group_key,
    fingerprint,
    group_key,
    hour_bucket,
    matches_filters,
    meter_value,
    property_number_problems,
)
from neruba.domain.numbers import MESSAGES as NUMBER_RULES
from neruba.logic.ingest.advance import send_counted
from neruba.logic.ingest.cells import CellEvent, CellResult, count_cell
from neruba.logic.ingest.outcomes import Recorded, complete, of_stored
from neruba.models.catalog import Meter
from neruba.observability import logger
from neruba.timefmt import iso, parse_ts

OVER_LIMIT = "over_limit"  # an event refused over a hard cap (logic/limits)
SAMPLES = 20  # failed events named in an ingest.batch_failed event
# How long a batch holds the events it wrote before another batch may count them in its stead: longer
# than the worker's Timeout (30 s; a batch counts nothing past it) with room for writes still in flight,
# shorter than the ingest queue's VisibilityTimeout (180 s), so that a redelivery after a killed attempt
# adopts at once.
HOLD = timedelta(seconds=120)
PROCESSING_ERROR = "processing_error"  # an attempt that raised: recorded at every attempt
HOLDING = ("accepted", "replay")  # the outcomes of the copy that is the event (counted or refused)


class PendingItemTakenError(RuntimeError):
    """A batch's pending item exists before its put: the completion of one of its limited writes put it
    empty (``dal.limit_pending``), so its days are written as contributions."""


class MalformedMessageError(ValueError):
    """An ingest queue message that is not a queued event; it fails until it reaches the DLQ."""


@dataclass(slots=True)
class QueuedEvent:
    """One event as the ingest API queued it."""

    message_id: str
    request_id: str
    index: int
    received_at: str
    customer_id: str
    transaction_id: str
    code: str
    timestamp: str
    client_timestamp: str | None
    properties: dict[str, Any]

    @property
    def copy_id(self) -> str:
        return f"{self.request_id}:{self.index}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.customer_id, self.transaction_id)


def carried_history(old: StoredEvent) -> list[HistoryEntry]:
    """The outcomes of a failed item that a replay overwrites, kept in the new item's history."""
    first = HistoryEntry(
        "failed",
        old.request_id,
        old.copy_id,
        old.written_at,
        reason=old.reason,
        batch=(old.original_batch or old.batch) if old.attempt else None,
    )
    return [first, *old.history]


def _hold(old: StoredEvent) -> str | None:
    """When the batch holding a stored event began, or None if it gave the event back uncounted."""
    return None if old.released_by is not None and old.released_by == old.batch else old.written_at


def parse_message(message_id: str, body: str) -> QueuedEvent:
    """Read a queue message body written by ``neruba.logic.ingest.api``."""
    try:
        data = jsonutil.loads(body)
        event = data["e"]
        return QueuedEvent(
            message_id=message_id,
            request_id=str(data["rid"]),
            index=int(data["i"]),
            received_at=str(data["rt"]),
            customer_id=str(event["customer_id"]),
            transaction_id=str(event["transaction_id"]),
            code=str(event["code"]),
            timestamp=str(event["timestamp"]),
            client_timestamp=event.get("client_timestamp"),
            properties=dict(event.get("properties") or {}),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedMessageError(f"message {message_id} is not a queued event: {exc}") from exc


@dataclass(slots=True)
class _Counted:
    event: QueuedEvent
    meter: Meter
    value: Any
    late: bool
    old_batch: str | None = None  # set for a redelivered copy written by an earlier attempt
    held_since: str | None = None  # when that attempt began (the item's written_at)
    old_at: str | None = None  # the item's written_at, even once given back
    again_at: str | None = None  # written by an earlier attempt of this same batch, at that time


@dataclass
class IngestBatch:
    """The work of one SQS batch; ``begin``, then ``process_record`` per record, then ``finish``."""

    usage: UsageRepository
    lookup: Callable[[set[str], set[str]], CatalogSnapshot]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    deadline: datetime | None = None  # the invocation's end (its Timeout): nothing is counted after it
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    batch_id: str = ""
    parsed: dict[str, QueuedEvent] = field(default_factory=dict)
    catalog: CatalogSnapshot = field(default_factory=CatalogSnapshot)
    counted: list[_Counted] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed_messages: list[str] = field(default_factory=list)
    # the outcome of the copy this batch wrote as the event (accepted or replay), which a refusal over a
    # hard cap or a park moves; the batch's other copies of the id keep theirs (duplicate, conflict)
    written: dict[tuple[str, str], str] = field(default_factory=dict)
    refused: dict[tuple[str, str], str] = field(default_factory=dict)  # the code of each new failure
    alerts: int = 0  # usage alerts this batch fired (logic/limits)
    over: dict[tuple[str, str], str] = field(default_factory=dict)  # events refused over a hard cap
    advance_queue_url: str = ""  # where events of meters charged in advance go (the billing queue)
    recorded: list[Recorded] = field(default_factory=list)  # copies earlier attempts recorded

    @property
    def attempt(self) -> str:
        """This attempt's id: whose outcome counters count what it records (``dal/outcomes.py``)."""
        return attempt_id(self.batch_id, self.now)

    def begin(self, records: list[dict[str, Any]]) -> None:
        """Parse what parses, name the batch, write its journal, fetch the catalog it needs."""
        for record in records:
            try:
                self.parsed[record["messageId"]] = parse_message(record["messageId"], record["body"])
            except MalformedMessageError:
                continue  # process_record fails it, so it goes back to SQS and on to the DLQ
        ids = "\n".join(sorted(record["messageId"] for record in records))
        self.batch_id = hashlib.sha256(ids.encode()).hexdigest()[:24]
        events = list(self.parsed.values())
        self.usage.write_journal(self.batch_id, [e.key for e in events], self.now)
        self.catalog = self.lookup({e.customer_id for e in events}, {e.code for e in events})

    def process_record(self, record: dict[str, Any]) -> str:
        """Write one event; returns its outcome. Raising fails the record (SQS retries it)."""
        event = self.parsed.get(record["messageId"])
        if event is None:
            raise MalformedMessageError(f"message {record['messageId']} is not a queued event")
        try:
            outcome = self._write(event)
        except Exception as exc:
            if self._park(event, PROCESSING_ERROR, type(exc).__name__):
                self.outcomes["failed"] += 1
            raise
        if outcome:
            self.outcomes[outcome] += 1
            if outcome in HOLDING:  # a later copy's duplicate or conflict never replaces it
                self.written[event.key] = outcome
        return outcome or "redelivered"

    def _write(self, event: QueuedEvent) -> str | None:
        customer = self.catalog.customers.get(event.customer_id)
        meter = self.catalog.meters.get(event.code)
        if customer is None:
            return self._park(event, "unknown_customer", f"no customer {event.customer_id!r}")
        if customer.archived_at is not None and parse_ts(event.received_at) >= customer.archived_at:
            message = f"customer {event.customer_id!r} was archived before the event was sent"
            return self._park(event, "customer_archived", message)
        if meter is None:
            return self._park(event, "unknown_meter", f"no meter with code {event.code!r}")
        for name, code in property_number_problems(event.properties)[:1]:
            message = f"property {name!r}: {NUMBER_RULES[code]}"
            return self._park(event, code, message, uncounted=self._ref(event, meter))
        value: Any = None
        applies = matches_filters(meter.filters, event.properties)
        if applies:
            try:
                value = meter_value(
                    meter.aggregation, meter.field, event.properties, allow_negative=meter.allow_negative
                )
            except InvalidPropertyError as exc:
                return self._park(event, exc.code, str(exc))
        billed = self.catalog.billed_through.get(event.customer_id)
        late = billed is not None and parse_ts(event.timestamp) < billed
        put = self.usage.put_event(self._item(event, status="accepted", late=late))
        if put.written:
            if applies:
                self.counted.append(_Counted(event, meter, value, late))
            if put.old is None:
                return "accepted"
            self.usage.mark_replay(event.customer_id, event.transaction_id, carried_history(put.old))
            return "replay"
        old = put.old
        if old is not None and old.status == OVER_LIMIT and old.copy_id == event.copy_id:
            self._recorded_before(event, old)
            return None  # refused over a hard cap by an earlier attempt: recorded, never counted
        if old is not None and self._recorded_before(event, old, history_only=True):
            return None  # this copy's outcome is already recorded (a redelivery of a duplicate or conflict)
        if old is not None and old.copy_id == event.copy_id:
            self._recorded_before(event, old)
            if applies:  # a batch that already wrote its contribution is not counted twice (see count_group)
                earlier = None if old.batch == self.batch_id else str(old.batch)
                again = old.written_at if earlier is None and old.written_at != iso(self.now) else None
                counted = _Counted(
                    event,
                    meter,
                    value,
                    late,
                    old_batch=earlier,
                    held_since=_hold(old),
                    old_at=old.written_at,
                    again_at=again,
                )
                self.counted.append(counted)
            return None  # the same copy again (SQS redelivery): no new outcome
        if old is not None and old.fingerprint == self._fingerprint(event):
            self.usage.append_history(
                event.customer_id, event.transaction_id, self._entry(event, "duplicate")
            )
            return "duplicate"
        payload = {"code": event.code, "timestamp": event.client_timestamp, "properties": event.properties}
        entry = self._entry(event, "conflict", payload=jsonutil.dumps(payload))
        self.usage.append_history(event.customer_id, event.transaction_id, entry)
        return "conflict"

    def _park(
        self, event: QueuedEvent, reason: str, message: str, uncounted: GroupRef | None = None
    ) -> str | None:
        """Record a ``failed`` outcome without touching a counted event.

        With ``uncounted`` (the cell of an event that can never be counted), an ``accepted`` item this same
        copy wrote earlier whose batch never counted it (written before the rule, its cell failing since)
        is parked too: an event reads ``accepted`` only when it is counted or will be.
        """
        item = self._item(event, status="failed", late=False, reason=reason, message=message)
        put = self.usage.put_event(item, replace_failed=False)
        if put.old is not None and put.old.status == "accepted":
            self._recorded_before(event, put.old)
            old_batch = str(put.old.batch)
            if uncounted is None or put.old.copy_id != event.copy_id:
                return None  # an accepted copy stands; nothing to park
            written = {(uncounted, old_batch): [put.old.written_at] if put.old.written_at else []}
            if (uncounted, old_batch) in self.usage.counted([(uncounted, old_batch)], written):
                return None  # counted by its batch
            if self._still_held(_hold(put.old)):
                self.failed_messages.append(event.message_id)  # its batch may still count it: retried
                return None
            if not self.usage.park_uncounted(
                event.customer_id, event.transaction_id, old_batch, reason, message
            ):
                return None
            self._moved_to_failed(event.key, reason)
            return None  # the accepted outcome was recorded by the earlier attempt; now it is failed
        if put.old is not None:
            old = put.old
            again = old.copy_id == event.copy_id or any(e.copy_id == event.copy_id for e in old.history)
            if again and reason != PROCESSING_ERROR:  # each failed processing attempt is logged
                self._recorded_before(event, old)
                if old.copy_id == event.copy_id and old.batch == self.batch_id:
                    self.refused[event.key] = reason  # this batch again: its summary may not be sent yet
                return None  # this copy's failure is recorded (an SQS redelivery): no second outcome
            entry = self._entry(event, "failed", reason=reason)
            self.usage.append_history(event.customer_id, event.transaction_id, entry)
        self.refused[event.key] = reason
        return "failed"

    def threshold_customers(self) -> list[str]:
        """The customers of this batch's counted events that have an invoice threshold, their own or a
        plan version's (their threshold is checked after the batch; a customer without one costs nothing
        more)."""
        ids = {item.event.customer_id for item in self.counted}
        return sorted(c for c in ids if self.catalog.has_invoice_threshold(c, self.now))

    def finish(self) -> list[str]:
        """Count what was written; returns the message ids whose counting failed (to be retried).

        Each customer's meter and day is written on its own (one contribution holding its cells): one that
        fails never fails another. A transient failure (throttling, contention, a lost connection) fails
        its messages, so SQS retries them; any other failure isolates it (``logic.ingest.cells.count_cell``):
        its events are counted one by one and the one that cannot be written is parked ``failed`` with its
        reason. If counting raises, the whole batch fails: its events are given back first.
        """
        try:
            failed = self._count()
        except Exception:
            self._give_back()
            self._commit_outcomes()  # what it recorded stays recorded: counted now, not after its hold
            raise
        if not self.catalog.advance_meters or not self.advance_queue_url:
            return failed
        counted = [(c.event, c.meter.code, c.value) for c in self.counted]
        return failed + send_counted(
            self.advance_queue_url,
            counted,
            self.catalog.advance_meters,
            failed,
            {**self.refused, **self.over},
        )  # events of meters charged in advance, to billing (logic.ingest.advance)

    def _give_back(self) -> None:
        """Give back every event this batch wrote (best effort): it counts nothing more, and an event it
        did count is found counted by the next delivery (the adopting checks read its contribution)."""
        own = [c.event for c in self.counted if c.old_batch is None]
        for event in own:
            try:
                self.usage.release(event.customer_id, event.transaction_id, self.batch_id)
            except Exception:  # noqa: S112 - the hold then passes by itself
                continue

    def _count(self) -> list[str]:
        writes = GroupWrites(self.batch_id, self.usage.shards)
        members: dict[tuple[str, tuple[str, str, str]], list[CellEvent]] = defaultdict(list)
        adopted, waiting = self._uncounted_redeliveries()
        may_pend = self._may_pend()
        for item in self.counted:
            if not may_pend:
                item.again_at = None  # no attempt of this batch writes pending items: nothing to check
            if item.again_at is not None and self._still_held(item.held_since):
                # an earlier attempt of this batch may still write its pending item: SQS delivers it again
                self.failed_messages.append(item.event.message_id)
                continue
            if item.old_batch is not None and item.event.key in waiting:
                self.failed_messages.append(item.event.message_id)  # its holder may still count it
            if item.old_batch is not None and item.event.key not in adopted:
                continue
            event, meter = item.event, item.meter
            ref = self._ref(event, meter)
            recount = None
            if item.old_batch is not None:
                minute = minute_of(item.old_at) if item.old_at else None
                recount = Recount(event.customer_id, event.transaction_id, item.old_batch, minute)
            part = writes.add(
                ref,
                meter.aggregation,
                event.transaction_id,
                event.timestamp,
                item.value,
                late=item.late,
                recount=recount,
                rules=self.catalog.event_rules.get(meter.code),
                check=minute_of(item.again_at) if item.again_at else None,
            )
            held_by = recount.old_batch if recount is not None else part  # the event's bk until counted
            cell_event = CellEvent(
                ref, event.message_id, event.transaction_id, event.timestamp, item.value, item.late, held_by
            )
            members[(part, (ref.customer_id, ref.meter_code, ref.day))].append(cell_event)
        failed = list(self.failed_messages)
        direct = self._put_pending(writes, members, failed)
        for part, unit in self._units(direct):
            write = unit[0]
            events = [e for day in unit for e in members[(part, day.key)]]
            if self.deadline is not None and self.clock() >= self.deadline:
                result = CellResult(retry=[e.message_id for e in events])  # AWS would have killed it by now
            elif len(unit) > 1:
                result = self._count_days(part, [(day, members[(part, day.key)]) for day in unit])
            else:
                result = self._count_write(part, write, events)
            failed.extend(result.retry)
            if not result.held:
                self._release(write.customer_id, [e for e in events if e.message_id in set(result.retry)])
            for transaction_id in result.parked:
                self._moved_to_failed((write.customer_id, transaction_id))
        retry = complete(self.usage, self.recorded, self.attempt, self.clock, HOLD)
        failed.extend(m for m in dict.fromkeys(retry) if m not in failed)
        self._commit_outcomes()
        return failed

    def _commit_outcomes(self) -> None:
        """Write this attempt's outcome counts, once (none when it recorded nothing and has no summary to
        send: no copy names it). A redelivery of a batch killed before its counts records no outcome of its
        own (the killed attempt's copies are counted for it) but still owes the batch's summary."""
        summary = self._failures_event()
        counts = dict(self.outcomes)
        if not counts and not summary:
            return
        try:
            self.usage.add_outcomes(counts, self.attempt, summary)
        except Cancelled:
            if not summary:
                raise
            self.usage.add_outcomes(counts, self.attempt)  # an earlier attempt sent the summary

    def _recorded_before(self, event: QueuedEvent, old: StoredEvent, *, history_only: bool = False) -> bool:
        """Note a copy of ``event`` an earlier attempt recorded (its counters may need completing);
        True when it was found (with ``history_only``, among the later copies only)."""
        for entry in old.history:
            if entry.copy_id == event.copy_id:
                if entry.attempt is not None and entry.attempt != self.attempt:
                    self.recorded.append(Recorded(entry.attempt, event.copy_id, entry.outcome, None, None,
                                                  event.message_id))  # fmt: skip
                return True
        if history_only or old.copy_id != event.copy_id:
            return False
        found = of_stored(old, event.message_id)
        if found is not None and found.attempt != self.attempt:
            self.recorded.append(found)
        return True

    def _limited(self, write: DayWrite) -> bool:
        """Whether the customer has usage limits on the write's meter (``logic.limits``)."""
        from neruba.logic.limits import gate

        settings = self.catalog.limit_settings(write.customer_id, self.now)
        return gate.applies(settings, write.meter_code, write.aggregation)

    def _units(self, direct: list[tuple[str, DayWrite]]) -> list[tuple[str, list[DayWrite]]]:
        """The day writes to count, the days of one part for one customer's limited meter together (they
        share the meter's counter: ``logic.limits.gate.count_days``), every other day on its own."""
        units: dict[tuple[str, str, str] | int, tuple[str, list[DayWrite]]] = {}
        for n, (part, write) in enumerate(direct):
            key: tuple[str, str, str] | int = n
            if self._limited(write):
                key = (part, write.customer_id, write.meter_code)
            units.setdefault(key, (part, []))[1].append(write)
        return list(units.values())

    def _count_days(self, part: str, days: list[tuple[DayWrite, list[CellEvent]]]) -> CellResult:
        """Count several days of one customer's limited meter (``logic.limits.gate.count_days``)."""
        from neruba.logic.limits import gate

        customer_id = days[0][0].customer_id
        limits = self.catalog.limit_settings(customer_id, self.now)
        return self._noted(customer_id, gate.count_days(self.usage, limits, part, days, self.now))

    def _count_write(self, part: str, write: DayWrite, events: list[CellEvent]) -> CellResult:
        """Count one day write, through the customer's usage limits when it has some on the meter
        (``logic.limits.gate``); events refused over a hard cap move to ``over_limit``."""
        from neruba.logic.limits import gate

        limits = self.catalog.limit_settings(write.customer_id, self.now)
        if not gate.applies(limits, write.meter_code, write.aggregation):
            return count_cell(self.usage, part, write, events, self.now)
        return self._noted(
            write.customer_id, gate.count_write(self.usage, limits, part, write, events, self.now)
        )

    def _noted(self, customer_id: str, done: Any) -> CellResult:
        """Record the outcomes of a limited write (``logic.limits.gate.GateResult``): its events refused
        over a hard cap move to ``over_limit``, its alerts are counted."""
        for transaction_id in done.refused:
            key = (customer_id, transaction_id)
            self.over[key] = OVER_LIMIT
            self.outcomes[self.written.get(key, "accepted")] -= 1
            self.outcomes[OVER_LIMIT] += 1
        self.alerts += len(done.alerts)
        return done.cell  # type: ignore[no-any-return]

    def _may_pend(self) -> bool:
        """Whether an attempt of this batch may write pending items: its messages name at least
        ``PENDING_MIN_DAYS`` customer, meter and day (every attempt receives the same messages)."""
        days = set()
        for event in self.parsed.values():
            try:
                day = hour_bucket(parse_ts(event.timestamp))[:10]
            except ValueError:
                day = event.timestamp
            days.add((event.customer_id, event.code, day))
        return len(days) >= PENDING_MIN_DAYS

    def _put_pending(
        self,
        writes: GroupWrites,
        members: dict[tuple[str, tuple[str, str, str]], list[CellEvent]],
        failed: list[str],
    ) -> list[tuple[str, DayWrite]]:
        """Write the sparse days of this batch (every event written by this attempt, a few per customer's
        meter and day) as one pending item per pending shard; returns the days to write as contributions.

        A pending put that fails leaves its days to the contribution path, checked against the pending
        item (it may have landed): they are counted once either way."""
        minute = minute_of(iso(self.now))
        direct: list[tuple[str, DayWrite]] = []
        shards: dict[int, list[DayWrite]] = defaultdict(list)
        sparse = {id(w) for part, w in writes.parts() if part == self.batch_id and is_sparse(w)}
        if len(sparse) < PENDING_MIN_DAYS:
            sparse = set()
        limited: dict[tuple[str, str], list[DayWrite]] = defaultdict(list)
        for _, write in writes.parts():
            if id(write) in sparse and self._limited(write):
                limited[(write.customer_id, write.meter_code)].append(write)
        for part, write in writes.parts():
            if part == self.batch_id and id(write) not in sparse and self._limited(write):
                limited.pop((write.customer_id, write.meter_code), None)  # a day of it is not sparse
        records, usual = self._share(limited, members, minute, failed)
        for part, write in writes.parts():
            if id(write) in sparse and (write.customer_id, write.meter_code) in limited:
                continue  # a limited day: shared below, counted as usual or retried (``_share``)
            if id(write) in sparse and not self._limited(write):
                shards[pending_shard(write.customer_id)].append(write)
            else:
                direct.append((part, write))
        direct += [(self.batch_id, write) for write in usual]
        for key, recorded in records.items():
            for days, _ in recorded:
                shards[pending_shard(key[0])].extend(days)
        for shard, days in shards.items():
            units = dict.fromkeys((w.customer_id, w.meter_code) for w in days)
            shared = [one for k in units if k in records for one in records[k]]
            if self.deadline is not None and self.clock() >= self.deadline:
                for write in days:  # AWS would have killed it by now
                    events = members[(self.batch_id, write.key)]
                    failed.extend(e.message_id for e in events)
                    if (write.customer_id, write.meter_code) not in records:  # a counter records the others
                        self._release(write.customer_id, events)
                continue
            try:
                if not self.usage.pending.put(self.batch_id, minute, days, self.now):
                    raise PendingItemTakenError(f"pending item of shard {shard} exists")
            except Exception as exc:
                logger.warning(
                    "pending usage not written", extra={"batch_id": self.batch_id, "error": str(exc)}
                )
                for write in days:
                    if (write.customer_id, write.meter_code) not in records:
                        write.checks.add(minute)
                        direct.append((self.batch_id, write))
                self._finish_shared(shared, members, failed, landed=False)
                continue
            self._finish_shared(shared, members, failed, landed=True)
        return direct

    def _share(
        self,
        limited: dict[tuple[str, str], list[DayWrite]],
        members: dict[tuple[str, tuple[str, str, str]], list[CellEvent]],
        minute: str,
        failed: list[str],
    ) -> tuple[dict[tuple[str, str], list[tuple[list[DayWrite], Any]]], list[DayWrite]]:
        """Move the counters of the sparse limited days (``logic.limits.gate.share``); returns the writes
        whose counter records them by unit (their days go into the pending items) and the days to count as
        usual (``_units``); the days of a write retried are neither (its counter may record it: held,
        never given back). Notes what completing earlier records refused."""
        from neruba.logic.limits import gate

        if not limited:
            return {}, []
        keys = list(limited)
        units = []
        for customer_id, meter_code in keys:
            days = limited[(customer_id, meter_code)]
            events = [e for day in days for e in members[(self.batch_id, day.key)]]
            units.append((self.catalog.limit_settings(customer_id, self.now), days, events))
        results = gate.share(self.usage, self.batch_id, minute, units, self.now)
        records: dict[tuple[str, str], list[tuple[list[DayWrite], Any]]] = {}
        usual: list[DayWrite] = []
        for key, writes in zip(keys, results, strict=True):
            for done in writes:
                cell = self._noted(key[0], done.result)
                if done.record is not None:
                    records.setdefault(key, []).append((done.days, done.record))
                elif cell.retry:
                    failed.extend(cell.retry)
                else:
                    usual += done.days
        return records, usual

    def _finish_shared(
        self,
        shared: list[tuple[list[DayWrite], Any]],
        members: dict[tuple[str, tuple[str, str, str]], list[CellEvent]],
        failed: list[str],
        *,
        landed: bool,
    ) -> None:
        """After a pending item's put: the alerts of the limited writes it holds (``landed``), or, when the
        put failed (or may have), the completion of their records; then their spend steps
        (``logic.limits.gate.finish_shared``). A completion that fails leaves the record to the counter's
        next writer; the messages come again, their events still held."""
        from neruba.logic.limits import gate

        for days, record in shared:
            try:
                self.alerts += len(gate.finish_shared(record, landed=landed))
            except Exception as exc:
                logger.warning(
                    "limited write left pending on its counter",
                    extra={"batch_id": self.batch_id, "error": repr(exc)[:300]},
                )
                for day in days:
                    failed.extend(e.message_id for e in members[(self.batch_id, day.key)])

    def _failures_event(self) -> list[dict[str, Any]]:
        """The ``ingest.batch_failed`` outbox action and its once-mark keyed by the batch id (none when no
        event failed), committed with the batch's outcome counters: the same batch delivered again (after a
        crash before or after that commit) sends its summary once; a failed copy delivered again in another
        batch records no second outcome and is not summarized again."""
        failed = len(self.refused)
        if failed <= 0:
            return []
        from neruba.logic.webhooks.outbox import once_actions

        by_code: dict[str, int] = defaultdict(int)
        for code in self.refused.values():
            by_code[code] += 1
        samples = [
            {"customer_id": customer_id, "transaction_id": transaction_id, "code": code}
            for (customer_id, transaction_id), code in sorted(self.refused.items())[:SAMPLES]
        ]
        data = {
            "batch_id": self.batch_id,
            "received": len(self.parsed),
            "accepted": int(self.outcomes.get("accepted", 0)) + int(self.outcomes.get("replay", 0)),
            "failed": failed,
            "by_code": dict(sorted(by_code.items())),
            "samples": samples,
            "customer_ids": sorted({customer_id for customer_id, _ in self.refused})[:SAMPLES],
        }
        return once_actions("ingest.batch_failed", None, data, self.now, self.batch_id)

    def _release(self, customer_id: str, events: list[CellEvent]) -> None:
        """Give back the events of this batch it leaves uncounted (their messages fail, so SQS delivers them
        again): the batch that receives them may count them without waiting for this one's hold to pass.
        If a write reported failed did land, the adopting transaction finds it and counts nothing."""
        for event in events:
            if event.held_by == self.batch_id:
                self.usage.release(customer_id, event.transaction_id, self.batch_id)

    def _moved_to_failed(self, key: tuple[str, str], code: str = "uncountable") -> None:
        """An event parked after it was put ``accepted`` now counts as ``failed`` (a copy accepted by an
        earlier batch is moved in this minute's counters)."""
        self.refused.setdefault(key, code)
        outcome = self.written.get(key, "accepted")
        self.outcomes[outcome] -= 1
        self.outcomes["failed"] += 1

    @staticmethod
    def _ref(event: QueuedEvent, meter: Meter) -> GroupRef:
        hour = hour_bucket(parse_ts(event.timestamp))
        return GroupRef(event.customer_id, meter.code, hour, group_key(meter.group_by, event.properties))

    @staticmethod
    def _earlier_ref(event: QueuedEvent, meter: Meter) -> GroupRef:
        """The cell of the key an earlier version gave the event's group (its own cell when the same)."""
        ref = IngestBatch._ref(event, meter)
        earlier = earlier_group_key(meter.group_by, event.properties)
        return ref if earlier is None else GroupRef(ref.customer_id, ref.meter_code, ref.hour, earlier)

    def report(self, metrics: Any, logger: Any) -> None:
        """Metrics per outcome, batch size and ingest lag (seconds from API receipt to now)."""
        metrics.add_metric(name="IngestBatchSize", unit="Count", value=len(self.parsed))
        for outcome, count in self.outcomes.items():
            metrics.add_metric(name=f"IngestOutcome_{outcome}", unit="Count", value=count)
        if self.alerts:
            metrics.add_metric(name="UsageAlertTriggered", unit="Count", value=self.alerts)
        if self.parsed:
            oldest = min(parse_ts(e.received_at) for e in self.parsed.values())
            lag = max(0, int((self.now - oldest).total_seconds() * 1000))
            metrics.add_metric(name="IngestLagMs", unit="Milliseconds", value=lag)
        logger.info("ingest batch", extra={"batch_id": self.batch_id, "outcomes": dict(self.outcomes)})

    def _uncounted_redeliveries(self) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """Redelivered copies whose earlier batch never counted their cell: those this batch counts, and
        those it leaves to SQS to deliver again because their batch began less than ``HOLD`` ago.

        A batch still running (SQS handed its messages to a second worker: its visibility timeout passed,
        or a standard queue delivered a message twice) puts its contribution without reading its events
        again, so an event it holds may only be adopted once it can no longer count it.
        """
        candidates = [c for c in self.counted if c.old_batch is not None]
        if not candidates:
            return set(), set()
        cells = {c.event.key: (self._ref(c.event, c.meter), str(c.old_batch)) for c in candidates}
        # an earlier version may have counted it under the key it gave the group (domain.groups)
        earlier = {c.event.key: (self._earlier_ref(c.event, c.meter), str(c.old_batch)) for c in candidates}
        minutes: dict[tuple[GroupRef, str], set[str]] = defaultdict(set)
        for c in candidates:
            if c.old_at:
                for cell in (cells[c.event.key], earlier[c.event.key]):
                    minutes[cell].add(c.old_at)
        counted = self.usage.counted([*cells.values(), *earlier.values()], minutes)
        uncounted = {
            key for key, cell in cells.items() if cell not in counted and earlier[key] not in counted
        }
        waiting = {
            c.event.key for c in candidates if c.event.key in uncounted and self._still_held(c.held_since)
        }
        return uncounted - waiting, waiting

    def _still_held(self, since: str | None) -> bool:
        """Whether a batch that began at ``since`` (None: no hold) may still count the events it wrote."""
        return since is not None and self.clock() - parse_ts(since) < HOLD

    def _fingerprint(self, event: QueuedEvent) -> str:
        return fingerprint(event.customer_id, event.code, event.client_timestamp, event.properties)

    def _entry(
        self, event: QueuedEvent, outcome: str, *, reason: str | None = None, payload: str | None = None
    ) -> HistoryEntry:
        return HistoryEntry(
            outcome, event.request_id, event.copy_id, iso(self.now), reason, payload, self.batch_id
        )

    def _item(
        self,
        event: QueuedEvent,
        *,
        status: str,
        late: bool,
        reason: str | None = None,
        message: str | None = None,
    ) -> StoredEvent:
        return StoredEvent(
            customer_id=event.customer_id,
            transaction_id=event.transaction_id,
            meter_code=event.code,
            timestamp=event.timestamp,
            client_timestamp=event.client_timestamp,
            hour=hour_bucket(parse_ts(event.timestamp)),
            properties_json=jsonutil.dumps(event.properties),
            fingerprint=self._fingerprint(event),
            status=status,
            batch=self.batch_id,
            copy_id=event.copy_id,
            request_id=event.request_id,
            received_at=event.received_at,
            written_at=iso(self.now),
            late=late,
            reason=reason,
            reason_message=message,
            stamped="1",  # its batch and written_at name this attempt
        )
