"""Move usage contributions of the previous layout into the usage partition read by billing.

Until this version a batch wrote one contribution per (customer, meter, hour, group) cell under
``USE#{customer}#{meter}``; now it writes one per (customer, meter, day) in ``AGG#{customer}#{meter}``,
holding the day's cells, and readers query that one partition. This migration writes every ``USE#``
item's batch as a day contribution (``UsageRepository.move_cell_contributions``). Idempotent: each day
contribution is put only when absent, so a second run, or a batch the new worker already counted again,
changes nothing; the ``USE#`` items are left in place and still prove their batches counted.
"""

from __future__ import annotations

from typing import Any

from neruba import bootstrap
from neruba.migrations import MigrationContext


def apply(ctx: MigrationContext) -> dict[str, Any]:
    return bootstrap.usage().move_cell_contributions()
