"""How long a backfill's run may go on (``logic.billing.backfill_commit``, ``backfill_revert``,
``backfill_replace``): every long step takes a :class:`Budget` and stops between two units of work once
its deadline is past, everything it did kept (each step is repeatable: its writes are keyed or
conditional). A request gives it a few seconds; the billing worker the invocation's remaining time less a
reserve, and sends the backfill's message again when it is reached (docs/billing.md, "How long a
backfill's run goes on")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class CommitIncompleteError(Exception):
    """A step left work for a later run (counting deferred by the ingest worker's rules, an invoice
    changing under a rerun): the backfill stays ``committing``."""


class DeadlineReachedError(CommitIncompleteError):
    """The run reached its deadline between two units of work, all it did kept: the next run goes on."""

    def __init__(self, backfill_id: str) -> None:
        super().__init__(backfill_id)
        self.backfill_id = backfill_id


@dataclass
class Budget:
    """A run's time. A step calls :meth:`check` before each unit of work (an event to void or restore, a
    batch of events to count, an invoice to rerun) and :meth:`spent` after one that wrote something (a
    replayed one costs a read and is not counted). Past ``deadline`` (None: no limit), a run that did some
    work stops there: every run moves on by at least one unit, and none starts one past its deadline
    without having done one."""

    deadline: datetime | None = None
    worked: bool = False

    @classmethod
    def inline(cls, seconds: float) -> Budget:
        """The budget of a request: ``seconds`` from now."""
        return cls(datetime.now(UTC) + timedelta(seconds=seconds))

    def check(self, backfill_id: str) -> None:
        if self.deadline is not None and self.worked and datetime.now(UTC) >= self.deadline:
            raise DeadlineReachedError(backfill_id)

    def spent(self) -> None:
        self.worked = True
