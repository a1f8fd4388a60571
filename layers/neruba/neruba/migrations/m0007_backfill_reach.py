"""Record where the events of each backfill committed before the index may lie, per customer.

A rerun now finds the backfills whose events may lie in its window through the ``BFCUST#`` items of its
customer (``logic.billing.backfill_reach``; docs/billing.md, "Whose events a correction carries"), which
a commit writes before it counts anything. Backfills whose commit began before this release have none:
for each backfill that left ``open`` for a commit (committing, committed, reverting, reverted), its range
is recorded for each of its customers, and for a ``mode: replace`` one each event it superseded outside
its range (found through its copies' ``amends``, as its revert finds them).

Idempotent: the puts are unconditional and put the same items again; a commit running meanwhile puts
the same items too.
"""

from __future__ import annotations

from typing import Any

from neruba import bootstrap
from neruba.migrations import MigrationContext

STARTED = ("committing", "committed", "reverting", "reverted")


def apply(ctx: MigrationContext) -> dict[str, Any]:
    from neruba.logic.billing import backfill_reach
    from neruba.logic.billing.backfill_supersede import superseded_originals

    repo = bootstrap.billing_records().backfills
    usage = bootstrap.usage()
    backfills = events = 0
    for backfill in repo.all():
        if backfill.status not in STARTED:
            continue
        backfill_reach.record(repo, backfill.id, backfill.document)
        backfills += 1
        if backfill.document.get("mode") == "replace":
            for event in superseded_originals(usage, backfill.id, repo.held_events(backfill.id)):
                events += backfill_reach.record_event(repo, backfill.id, backfill.document, event)
    return {"backfills": backfills, "events_outside_range": events}
