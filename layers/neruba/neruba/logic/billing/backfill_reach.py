"""Where a backfill's events may lie, per customer: the index a rerun finds its candidate backfills in
(``logic.billing.correction_sources.candidates``; items ``BFCUST#``, ``dal.backfills``).

A backfill's events lie in its range, except the stored events a ``mode: replace`` commit supersedes
(``logic.billing.backfill_supersede``), wherever their timestamp is. So, for each of its customers, the
range is recorded when its commit's steps begin (:func:`record`, before anything is counted or voided:
a backfill whose events a rerun may find is always recorded), and each superseded event outside the
range is recorded as a span of its own just before the amend that voids it (:func:`record_event`). The
puts are unconditional and put the same items again on a retry; nothing is ever taken out (a reverted
backfill is still a candidate while its parts on an invoice do not net to zero). A rerun reads the spans
of its customer ending after its window's start (a key range: the key begins with the span's end,
a storage timestamp, whose text order is time order) and keeps those overlapping the window
(:func:`reaching`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from neruba.dal.transaction import LIMIT, Transaction, commit
from neruba.timefmt import parse_ts, ts

if TYPE_CHECKING:
    from neruba.dal.backfills import BackfillsRepository
    from neruba.dal.usage import StoredEvent


def record(repo: BackfillsRepository, backfill_id: str, doc: dict[str, Any]) -> None:
    """Record the backfill's range for each of its customers (in transactions of at most ``LIMIT``)."""
    customers = list(doc["customer_ids"])
    puts = repo.reach_items(backfill_id, customers, str(doc["start"]), str(doc["end"]))
    for first in range(0, len(puts), LIMIT):
        commit(Transaction(puts[first : first + LIMIT]))


def record_event(
    repo: BackfillsRepository, backfill_id: str, doc: dict[str, Any], event: StoredEvent
) -> bool:
    """Record that an event the backfill supersedes lies outside its range (nothing when inside: False)."""
    at = parse_ts(event.timestamp)
    if parse_ts(str(doc["start"])) <= at < parse_ts(str(doc["end"])):
        return False
    span = (ts(at), ts(at + timedelta(microseconds=1)))
    commit(Transaction(repo.reach_items(backfill_id, [event.customer_id], *span)))
    return True


def reaching(repo: BackfillsRepository, customer_id: str, start: str, end: str) -> set[str]:
    """The backfills whose events may lie in ``[start, end)`` for ``customer_id``."""
    low, high = parse_ts(start), parse_ts(end)
    found = set()
    for backfill_id, first, last in repo.reaching(customer_id, ts(low)):
        if parse_ts(first) < high and parse_ts(last) > low:
            found.add(backfill_id)
    return found
