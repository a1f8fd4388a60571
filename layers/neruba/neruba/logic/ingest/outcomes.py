"""Completing the outcome counters of a killed worker attempt, copy by copy, exactly once.

A worker attempt records one outcome per copy (the event it writes, or an entry of its history), then
writes its counts as one item (``dal/outcomes.py``). Killed in between, its copies are recorded and not
counted; SQS delivers them again, and the delivery finds each one recorded by that attempt. For each such
copy this module asks whether the attempt's counts were written; if not, and the attempt can no longer
write them (its hold has passed: ``worker.HOLD``, longer than the worker's timeout), it counts the copy
once (a put keyed by attempt and copy); if the attempt may still be running, the copy's message is sent
back to come again later.

Which outcome a copy counts: what its attempt recorded (accepted, replay, failed, duplicate, conflict),
moved to ``over_limit`` or ``failed`` only when the move was made by that same attempt (its counts held
the move, and were lost with it) or by another attempt that was killed before its own counts. A move by
an attempt whose counts were written was counted there, so the copy counts its first outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from neruba.dal import outcomes as stored
from neruba.dal.usage import StoredEvent, UsageRepository


@dataclass(frozen=True, slots=True)
class Recorded:
    """A copy a delivery found recorded by an earlier attempt."""

    attempt: str
    copy_id: str
    first: str  # the outcome the attempt recorded
    moved: str | None = None  # what it was moved to since (over_limit, failed)
    moved_by: str | None = None  # the attempt that moved it (None: not stamped)
    message_id: str = ""


def of_stored(event: StoredEvent, message_id: str) -> Recorded | None:
    """The stored copy of ``event`` as its attempt recorded it (None: written before attempts were
    stamped, counted by that version)."""
    if event.attempt is None or event.copy_id is None:
        return None
    status = event.status
    if status == "failed" and event.moved_by is None:
        return Recorded(event.attempt, event.copy_id, "failed", message_id=message_id)
    first = "replay" if event.first_outcome == "replay" else "accepted"
    moved = status if status in ("over_limit", "failed") else None
    return Recorded(event.attempt, event.copy_id, first, moved, event.moved_by, message_id)


def complete(
    usage: UsageRepository,
    found: list[Recorded],
    own: str,
    clock: Callable[[], datetime],
    hold: timedelta,
) -> list[str]:
    """Count the copies in ``found`` whose attempt never wrote its counts; returns the message ids to
    send back (their attempt, or the attempt that moved them, may still write its counts)."""
    table, shards = usage.table_name, usage.shards
    known: dict[str, bool] = {own: True}

    def done(attempt: str) -> bool:
        if attempt not in known:
            known[attempt] = stored.committed(table, attempt, shards)
        return known[attempt]

    def running(attempt: str) -> bool:
        return clock() - stored.started_at(attempt) < hold

    retry: list[str] = []
    for copy in found:
        if done(copy.attempt):
            continue
        outcome = copy.first
        if copy.moved is not None:
            mover = copy.moved_by
            if mover is None or mover == copy.attempt:
                outcome = copy.moved
            elif not done(mover):
                if running(mover):
                    retry.append(copy.message_id)
                    continue
                outcome = copy.moved  # its mover was killed before counting the move
        if running(copy.attempt):
            retry.append(copy.message_id)
            continue
        stored.complete_copy(table, copy.attempt, shards, copy.copy_id, outcome)
    return retry
