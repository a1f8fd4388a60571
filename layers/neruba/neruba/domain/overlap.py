"""What a subscription charges, and when: its *claims*, and the overlap rule between subscriptions.

A claim is one thing a subscription bills over a half-open time range ``[start, end)``: each meter its
phase's plan charges (``meter:{code}``), and the plan itself (``plan:{code}``, so two subscriptions to one
plan never both bill its fixed fee). Two subscriptions of one customer overlap when they claim the same
thing in ranges that intersect; a range that ends when the other starts does not intersect it. A meter's
usage is kept per hour and an hour is billed whole by one subscription (the one ending in it bills it to
its end, the one starting in it from its start), so a meter claim holds whole hours: from the hour it
starts in to the end of the hour it ends in (``Claim.span``). Plain Python, no AWS.

Example:
    >>> from datetime import UTC, datetime
    >>> sub = {"id": "sub_a", "phases": [{"plan_code": "pro", "plan_version": 1,
    ...        "start_at": "2026-01-01T00:00:00+00:00", "end_at": None}]}
    >>> mine = claims(sub, lambda code, version: ["api_calls"], end=datetime(2026, 2, 1, tzinfo=UTC))
    >>> [(c.key, c.end.month) for c in mine]
    [('meter:api_calls', 2), ('plan:pro', 2)]
    >>> phase = {**sub["phases"][0], "start_at": "2026-02-01T00:00:00+00:00"}
    >>> later = {**sub, "id": "sub_b", "phases": [phase]}
    >>> first_overlap(claims(later, lambda code, version: ["api_calls"], end=None), mine) is None
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from neruba.domain.phases import Terms, hour_after, hour_of, timeline

MeterCodes = Callable[[str, int], Iterable[str]]  # (plan code, version) -> the meters it charges


@dataclass(frozen=True, slots=True)
class Claim:
    """A subscription bills ``key`` over ``[start, end)`` (``end`` None: open-ended)."""

    subscription_id: str
    key: str
    start: datetime
    end: datetime | None
    plan_code: str
    plan_version: int

    @property
    def meter_code(self) -> str | None:
        return self.key.removeprefix("meter:") if self.key.startswith("meter:") else None

    def span(self) -> tuple[datetime, datetime | None]:
        """What the claim holds: its range, or for a meter the whole hours it touches."""
        if self.meter_code is None:
            return self.start, self.end
        return hour_of(self.start), None if self.end is None else hour_after(self.end)

    def overlaps(self, other: Claim) -> bool:
        (start, end), (their_start, their_end) = self.span(), other.span()
        return (
            self.key == other.key
            and (their_end is None or start < their_end)
            and (end is None or their_start < end)
        )


def claims(subscription: Terms, meters: MeterCodes, end: datetime | None) -> list[Claim]:
    """The claims of each phase, cut at the subscription's ``end`` (None while it has none)."""
    terms = timeline(subscription)
    found: list[Claim] = []
    for phase in terms.phases:
        start, stop = phase.start, phase.end
        if end is not None and (stop is None or end < stop):
            stop = end
        if stop is not None and stop <= start:
            continue
        code, version = phase.plan_code, phase.plan_version
        keys = [f"meter:{m}" for m in sorted(set(meters(code, version)))] + [f"plan:{code}"]
        found += [Claim(str(terms.id), key, start, stop, code, version) for key in keys]
    return found


def first_overlap(mine: Iterable[Claim], others: Iterable[Claim]) -> tuple[Claim, Claim] | None:
    """The first of ``mine`` that overlaps a claim of another subscription, with that claim."""
    theirs = list(others)
    for claim in mine:
        for other in theirs:
            if other.subscription_id != claim.subscription_id and claim.overlaps(other):
                return claim, other
    return None
