"""What both event batchers share: the buffer and its counters, and how an answer becomes reports."""

from __future__ import annotations

import json
import logging
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from neruba_client import models as m
from neruba_client import routes
from neruba_client.errors import APIConnectionError, APIError

logger = logging.getLogger("neruba_client.batcher")

MAX_BATCH = 100
# per-event codes of a 202 that mean "not queued this time, send it again" (the API's queue refused it)
SEND_AGAIN = frozenset({"temporarily_unavailable"})
MAX_BATCH_BYTES = 250_000  # under the API's 256 KiB body limit
_DETAIL_PARAM = re.compile(r"^events\.(\d+)(?:\.(.+))?$")


@dataclass(frozen=True, slots=True)
class EventFailure:
    """An event the API did not take: rejected in a 202 answer, refused with its batch (4xx, including
    400 ``all_events_rejected``, whose details give each event its own code), or not delivered before
    close. ``param`` is the field at fault inside the event (``customer_id``, ``properties.tokens``): the
    API's body path ``events.{i}.`` less its prefix, since ``i`` is the position in a batch the caller
    never saw. ``status`` is the HTTP status of a refused batch (None for the others)."""

    event: m.Event
    code: str
    message: str
    param: str | None = None
    status: int | None = None
    request_id: str | None = None


@dataclass(slots=True)
class BatcherStats:
    buffered: int = 0  # events taken by add()
    queued: int = 0  # events the API answered "queued"
    failed: int = 0  # events reported to on_error
    batches: int = 0  # batches that got a final answer
    attempts: int = 0  # send attempts at the batcher level (each may hide client retries)
    retried_batches: int = 0


OnError = Callable[[EventFailure], None]
SendEvents = Callable[[list[m.Event]], m.IngestResponse]
SendEventsAsync = Callable[[list[m.Event]], Awaitable[m.IngestResponse]]


def log_failure(failure: EventFailure) -> None:
    logger.warning(
        "event %s not taken: %s %s (param %s, request_id %s)",
        failure.event.transaction_id,
        failure.code,
        failure.message,
        failure.param,
        failure.request_id,
    )


@dataclass
class Buffer:
    """The state both batchers share, guarded by the caller's lock."""

    batch_size: int
    flush_interval: float
    max_buffered: int
    on_error: OnError
    backoff_base: float
    backoff_cap: float
    waiting: deque[tuple[float, m.Event]] = field(default_factory=deque)
    in_flight: int = 0
    flushers: int = 0
    closing: bool = False
    stats: BatcherStats = field(default_factory=BatcherStats)
    rng: random.Random = field(default_factory=random.Random)

    def held(self) -> int:
        return len(self.waiting) + self.in_flight

    def make_event(self, event: m.Event | Mapping[str, Any] | None, fields: dict[str, Any]) -> m.Event:
        data: dict[str, Any] = dict(event) if isinstance(event, Mapping) else {}
        if isinstance(event, m.Event):
            built = event
        else:
            data.update({k: v for k, v in fields.items() if v is not None})
            built = routes.as_event(data)
        if built.timestamp is None:
            built = built.model_copy(update={"timestamp": datetime.now(UTC)})
        return built

    def due_in(self, now: float) -> float | None:
        """Seconds until the next batch is due (0: now), None when nothing waits."""
        if not self.waiting:
            return None
        if len(self.waiting) >= self.batch_size or self.flushers or self.closing:
            return 0.0
        return max(0.0, self.waiting[0][0] + self.flush_interval - now)

    def take(self) -> list[m.Event]:
        batch = [self.waiting.popleft()[1] for _ in range(min(self.batch_size, len(self.waiting)))]
        self.in_flight += len(batch)
        return batch

    def backoff(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def report(self, failures: list[EventFailure]) -> None:
        self.stats.failed += len(failures)
        for failure in failures:
            try:
                self.on_error(failure)
            except Exception:  # a failing callback must not stop the batcher
                logger.exception("on_error raised for event %s", failure.event.transaction_id)

    def answered(self, batch: list[m.Event], answer: m.IngestResponse) -> list[m.Event]:
        """Count and report the answer; returns the events to send again (rejected with a code of
        :data:`SEND_AGAIN`), which are not reported."""
        self.stats.batches += 1
        self.stats.queued += answer.queued
        again = [
            batch[s.index]
            for s in answer.events
            if s.status == "rejected" and s.error and s.error.code in SEND_AGAIN and 0 <= s.index < len(batch)
        ]
        failures = [
            EventFailure(
                batch[s.index],
                s.error.code if s.error else "rejected",
                s.error.message if s.error else "",
                field_in_event(s.error.param) if s.error else None,
                None,
                answer.request_id,
            )
            for s in answer.events
            if s.status == "rejected"
            and 0 <= s.index < len(batch)
            and not (s.error and s.error.code in SEND_AGAIN)
        ]
        self.report(failures)
        return again

    def refused(self, batch: list[m.Event], error: APIError) -> None:
        self.stats.batches += 1
        per_event: dict[int, EventFailure] = {}
        for detail in error.details:
            match = _DETAIL_PARAM.match(str(detail.get("param") or ""))
            if match and int(match.group(1)) < len(batch):
                index = int(match.group(1))
                per_event[index] = EventFailure(
                    batch[index],
                    str(detail.get("code") or error.code),
                    str(detail.get("message") or error.message),
                    match.group(2),
                    error.status,
                    error.request_id,
                )
        self.report(
            [
                per_event.get(i)
                or EventFailure(event, error.code, error.message, error.param, error.status, error.request_id)
                for i, event in enumerate(batch)
            ]
        )

    def undelivered(self, batch: list[m.Event], error: Exception) -> None:
        code = error.code if isinstance(error, NotQueuedError) else "not_delivered"
        self.report([EventFailure(e, code, f"gave up at close: {error}") for e in batch])


class NotQueuedError(Exception):
    """The API answered 202 but could not queue these events: they are sent again, as after a 5xx."""

    code = "temporarily_unavailable"


def field_in_event(param: str | None) -> str | None:
    """``events.3.customer_id`` -> ``customer_id``; ``events.3`` -> None; a path without the
    ``events.{i}`` prefix (as older servers sent in a 202) is kept as it is."""
    if param is None:
        return None
    match = _DETAIL_PARAM.match(param)
    return match.group(2) if match else param


def split_by_size(batch: list[m.Event], limit: int = MAX_BATCH_BYTES) -> list[list[m.Event]]:
    """Halve a batch until each part's body fits the API's size limit (one event stays alone)."""
    body = json.dumps(routes.send_events(batch).body)
    if len(body.encode()) <= limit or len(batch) == 1:
        return [batch]
    middle = len(batch) // 2
    return split_by_size(batch[:middle], limit) + split_by_size(batch[middle:], limit)


def retryable(error: Exception) -> bool:
    if isinstance(error, APIConnectionError):
        return True
    return isinstance(error, APIError) and (error.status == 429 or error.status >= 500)


def check_options(batch_size: int, max_buffered: int, when_full: str) -> None:
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
    if max_buffered < batch_size:
        raise ValueError("max_buffered must be at least batch_size")
    if when_full not in ("block", "raise"):
        raise ValueError("when_full must be 'block' or 'raise'")
