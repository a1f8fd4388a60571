"""Grants raising a metered entitlement's limit (plain Python; docs/limits.md, "Entitlement grants").

A grant adds ``amount`` (units of the feature's meter) to the feature's limit from ``starts_at`` until
``expires_at`` (exclusive): a check at ``at`` adds every grant of the feature in force then. A grant given
without an expiry ends with the limit period it was given in, so it raises that period's limit only.

Example:
    >>> from datetime import UTC, datetime
    >>> march, april = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    >>> g = Grant("egr_1", "calls", Decimal(5), march, april)
    >>> granted([g], "calls", datetime(2026, 3, 9, tzinfo=UTC)), granted([g], "calls", april)
    (Decimal('5'), Decimal('0'))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from neruba.domain.numbers import canonical_text, exact_sum


@dataclass(frozen=True, slots=True)
class Grant:
    """One grant: its id, the feature it raises, by how much, and over which span."""

    id: str
    feature: str
    amount: Decimal
    starts_at: datetime
    expires_at: datetime

    def holds(self, at: datetime) -> bool:
        return self.starts_at <= at < self.expires_at

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "feature": self.feature,
            "amount": canonical_text(self.amount),
            "starts_at": self.starts_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def granted(grants: Iterable[Grant], feature: str, at: datetime) -> Decimal:
    """What the grants of ``feature`` in force at ``at`` add to its limit."""
    return exact_sum(g.amount for g in grants if g.feature == feature and g.holds(at))


def parse(text: str | None) -> list[Grant]:
    """The grants as stored (None: none)."""
    if not text:
        return []
    return [
        Grant(
            str(d["id"]),
            str(d["feature"]),
            Decimal(str(d["amount"])),
            datetime.fromisoformat(d["starts_at"]),
            datetime.fromisoformat(d["expires_at"]),
        )
        for d in json.loads(text)
    ]


def stored(grants: Sequence[Grant], now: datetime) -> str | None:
    """The grants to store, those expired at ``now`` dropped (None: none left)."""
    kept = [g.to_doc() for g in grants if g.expires_at > now]
    return json.dumps(kept, sort_keys=True) if kept else None
