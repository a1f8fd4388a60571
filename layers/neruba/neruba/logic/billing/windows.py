"""Billing windows of a subscription (plain Python, no AWS).

A subscription anchored at ``A`` with interval ``I`` has periods ``P_k = [A + k*I, A + (k+1)*I)`` (from
``domain.periods.add_interval``: days, weeks, and months, quarters and years whose end-of-month days
clamp, all in UTC). Its windows are numbered by ``seq``:

- ``seq 0`` is the *opening*: the advance fee of the first period, billed at the start (due at ``A``),
  keyed ``{subscription}:{start}:opening``;
- ``seq k >= 1`` is the usage of period ``P_{k-1}``, billed in arrears when it closes (due at
  ``A + k*I``), keyed ``{subscription}:{start}:usage``.

A window never extends past the subscription's end (``ended_at``, or the end of the period in which it was
canceled with ``cancel_at_period_end``); windows starting at or after it do not exist. A window clipped at
``ended_at`` is still rated over its whole period (``domain.phases.rating_period``).

The interval arithmetic is a parameter (``add_interval``) so tests can run days-long periods of a monthly
plan through the same code; production always passes ``domain.periods.add_interval`` with the plan's
interval.

Example:
    >>> from datetime import datetime, UTC
    >>> from neruba.domain.periods import add_interval
    >>> anchor = datetime(2026, 1, 31, tzinfo=UTC)
    >>> w = window_at("sub_1", anchor, "month", 2, add_interval)
    >>> (w.kind, w.start.date().isoformat(), w.end.date().isoformat())
    ('usage', '2026-02-28', '2026-03-31')
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from neruba.domain import phases
from neruba.timefmt import parse_ts, ts

if TYPE_CHECKING:
    from neruba.dal.billing import BillingState

AddInterval = Callable[[datetime, str, int], datetime]
WindowKind = Literal["opening", "usage"]
MAX_CATCH_UP = 400  # windows enqueued per subscription and run (33 years of monthly periods)
LATE_EVENTS = timedelta(days=36)  # the default: ingest refuses events older than 35 days (IngestMaxAgeDays)
LATE_LOOKBACK = 2  # usage windows re-rated for late events at least, whatever the interval


@dataclass(frozen=True, slots=True)
class Window:
    """One billing window: what is billed, for which span, and when it falls due."""

    subscription_id: str
    seq: int
    kind: WindowKind
    start: datetime
    end: datetime
    due_at: datetime

    @property
    def window_id(self) -> str:
        """``{subscription}:{start}:{kind}``: the identity an invoice is derived from."""
        return f"{self.subscription_id}:{ts(self.start)}:{self.kind}"

    @property
    def invoice_id(self) -> str:
        """The invoice of this window: the same id however often the job runs."""
        return invoice_id_for(self.window_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "seq": self.seq,
            "kind": self.kind,
            "start": ts(self.start),
            "end": ts(self.end),
            "due_at": ts(self.due_at),
            "window_id": self.window_id,
        }


def invoice_id_for(window_id: str) -> str:
    """``in_`` + 24 hex digits of SHA-256 of the window id.

    Example:
        >>> invoice_id_for("sub_1:2026-01-01T00:00:00.000000Z:usage")[:3]
        'in_'
    """
    return "in_" + hashlib.sha256(window_id.encode()).hexdigest()[:24]


def window_at(
    subscription_id: str,
    anchor: datetime,
    interval: str,
    seq: int,
    add_interval: AddInterval,
    ends_at: datetime | None = None,
) -> Window | None:
    """Window ``seq`` of a subscription, or None when it starts at or after the subscription's end."""
    if seq < 0:
        raise ValueError("window numbers start at 0")
    if seq == 0:
        start, end = anchor, add_interval(anchor, interval, 1)
        kind: WindowKind = "opening"
        due = anchor
    else:
        start, end = add_interval(anchor, interval, seq - 1), add_interval(anchor, interval, seq)
        kind = "usage"
        due = end
    if ends_at is not None:
        if start >= ends_at:
            return None
        if end > ends_at:
            end = ends_at
            due = end if kind == "usage" else due
    return Window(subscription_id, seq, kind, start, end, due)


def due_windows(
    subscription_id: str,
    anchor: datetime,
    interval: str,
    next_seq: int,
    now: datetime,
    add_interval: AddInterval,
    ends_at: datetime | None = None,
    limit: int = MAX_CATCH_UP,
) -> list[Window]:
    """Every window from ``next_seq`` on that is due at ``now``, oldest first (the catch-up list)."""
    found: list[Window] = []
    seq = next_seq
    while len(found) < limit:
        window = window_at(subscription_id, anchor, interval, seq, add_interval, ends_at)
        if window is None or window.due_at > now:
            break
        found.append(window)
        seq += 1
    return found


def late_lookback(
    anchor: datetime, interval: str, seq: int, add_interval: AddInterval, horizon: timedelta = LATE_EVENTS
) -> list[int]:
    """The earlier usage windows that billing usage window ``seq`` re-rates for late events, newest first:
    the ``LATE_LOOKBACK`` before it, and every older one whose period ended less than ``horizon`` before
    window ``seq`` starts. ``horizon`` is a day more than ingest's maximum event age (35 days by default,
    so 36), so every period is re-rated by a window billed after the last late event it can receive (two
    windows for monthly plans, six for weekly ones, 36 for daily ones with the default).

    Example:
        >>> from datetime import UTC
        >>> from neruba.domain.periods import add_interval
        >>> a = datetime(2026, 1, 1, tzinfo=UTC)
        >>> [len(late_lookback(a, i, 50, add_interval)) for i in ("day", "week", "month")]
        [36, 6, 2]
    """
    start = add_interval(anchor, interval, seq - 1)
    found: list[int] = []
    for earlier in range(seq - 1, 0, -1):
        if len(found) >= LATE_LOOKBACK and add_interval(anchor, interval, earlier) <= start - horizon:
            break
        found.append(earlier)
    return found


def subscription_end(subscription: phases.Terms, add_interval: AddInterval) -> datetime | None:
    """When billing of a subscription stops: ``ended_at``, or the end of the period it was canceled in
    (``domain.phases.subscription_end`` with this interval arithmetic)."""
    return phases.subscription_end(subscription, add_interval)


def state_windows(state: BillingState, now: datetime, add_interval: AddInterval) -> list[Window]:
    """The due windows of a stored billing state (``BST#`` item) at ``now``, oldest first."""
    return due_windows(
        state.subscription_id,
        parse_ts(state.anchor),
        state.interval,
        state.next_seq,
        now,
        add_interval,
        parse_ts(state.ends_at) if state.ends_at else None,
    )
