"""Counting one batch's usage of one customer's meter on one day (its cells: hours and groups), so that
a write that fails never takes other customers, meters, days or events down with it.

The day's cells are written in one conditional put (``UsageRepository.count_group``). If that fails:

- for a transient reason (``dal.dynamo.is_transient``: throttling, contention, a lost connection) the
  day's messages fail and SQS delivers them again;
- for any other reason (a sum DynamoDB cannot store, a refused write, a bug) the day is isolated: its
  events are counted one at a time, each in its own transaction named ``{part}.{n}`` that moves the
  event's ``bk`` there (as adopting an uncounted event does, so a redelivery never counts it twice). An
  event whose own write fails for a non-transient reason is parked ``failed`` with the reason
  ``write_refused`` (``aggregate_overflow`` if a figure of its own contribution is unstorable: never a
  storable event's sum, but a change's weighted figure, change x seconds into the hour, may be), and
  logged with its ids; the others count.

Example:
    >>> result = count_cell(usage, "b1", write, events, now)  # doctest: +SKIP
    >>> result.parked, result.retry  # doctest: +SKIP
    (['t7'], [])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from neruba.dal.dynamo import is_transient
from neruba.dal.usage import AggregateOverflowError, DayWrite, GroupRef, Recount, UsageRepository
from neruba.observability import logger


@dataclass(frozen=True, slots=True)
class CellEvent:
    """One event of a cell: what it adds, and the batch that holds it (its ``bk``) until counted."""

    ref: GroupRef
    message_id: str
    transaction_id: str
    at: str
    value: Any
    late: bool
    held_by: str


@dataclass(slots=True)
class CellResult:
    """Message ids to retry, transaction ids parked ``failed``, whether this call counted anything, the
    error that failed the cell (None when it was written at once), and whether the events to retry must
    stay held by their batch (``held``: a limit counter records their write, ``dal.limit_pending``)."""

    retry: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    counted: bool = False
    error: str | None = None
    held: bool = False  # the events are recorded pending on a limit counter: retried, never given back


def count_cell(
    usage: UsageRepository, part: str, write: DayWrite, events: list[CellEvent], now: datetime
) -> CellResult:
    """Count one batch's events of one customer's meter on one day (see the module docstring)."""
    try:
        return CellResult(counted=usage.count_group(part, write, now))
    except Exception as exc:
        ids = _ids(part, write)
        error = _describe(exc)
        if is_transient(exc):
            logger.warning("usage cell not counted, retried", extra={**ids, "error": error})
            return CellResult(retry=[e.message_id for e in events], error=error)
        logger.error("usage cell refused, isolating its events", extra={**ids, "error": error})
    result = CellResult(error=error)
    for n, event in enumerate(events):
        single = _single(write, event)
        try:
            result.counted = usage.count_group(f"{part}.{n}", single, now) or result.counted
        except Exception as exc:
            if is_transient(exc):
                result.retry.append(event.message_id)
                continue
            reason = "aggregate_overflow" if isinstance(exc, AggregateOverflowError) else "write_refused"
            extra = {**_ids(part, write), "transaction_id": event.transaction_id, "reason": reason}
            logger.error("usage event parked", extra={**extra, "error": _describe(exc)})
            parked = usage.park_uncounted(
                write.customer_id, event.transaction_id, event.held_by, reason, _describe(exc)
            )
            if parked:
                result.parked.append(event.transaction_id)
    return result


def _single(write: DayWrite, event: CellEvent) -> DayWrite:
    """One event of ``write`` as a write of its own, adopting it from the batch that holds it."""
    single = DayWrite(write.customer_id, write.meter_code, write.day, write.aggregation, rules=write.rules)
    cell = single.add(event.ref, event.transaction_id, event.at, event.value)
    cell.late = event.late
    cell.recounts.append(Recount(write.customer_id, event.transaction_id, event.held_by))
    return single


def _ids(part: str, write: DayWrite) -> dict[str, Any]:
    return {
        "batch_id": part,
        "customer_id": write.customer_id,
        "meter": write.meter_code,
        "day": write.day,
        "cells": sorted(ref.cell for ref in write.cells)[:20],
        "transaction_ids": write.transaction_ids[:20],
    }


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
