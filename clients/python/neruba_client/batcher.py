"""Event batchers: buffer events, send them 100 at a time, retry until the API has them.

Rules shared by ``EventBatcher`` (a background thread) and ``AsyncEventBatcher`` (an asyncio task):

- An event gets its transaction id when it is buffered (a new UUID when the caller gave none) and its
  timestamp (now, UTC) likewise; a retried batch therefore sends exactly the same events, and the API
  counts each once whatever number of times it arrives.
- A batch leaves when it holds ``batch_size`` events (at most 100), when its oldest event has waited
  ``flush_interval`` seconds, on ``flush()`` and on close.
- 429, 5xx and network errors (timeouts and dropped connections included) are retried without limit
  while the batcher runs, with exponential backoff and full jitter (the client's own retries come
  first); on close, retrying stops ``close_timeout`` seconds after the close began and what is left is
  reported as failed with code ``not_delivered``.
- Any other error answer (4xx) is not retried: every event of the batch is reported. A 202 answer that
  rejects some events reports those. Reports go to ``on_error(EventFailure)``; without a callback, to
  the ``neruba_client.batcher`` logger at WARNING.
- Memory is bounded: at most ``max_buffered`` events are held (waiting or in flight). When full,
  ``when_full="block"`` (the default) waits for room up to ``block_timeout`` seconds (``None``: as long
  as it takes) and then raises ``BatcherFullError``; ``when_full="raise"`` raises at once.
- The sync batcher flushes on exit: as a context manager, and at interpreter exit (``atexit``) if it
  was not closed. The async batcher flushes when its ``async with`` block ends or on ``await close()``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from neruba_client import models as m
from neruba_client import routes
from neruba_client.errors import APIConnectionError, APIError, BatcherFullError

logger = logging.getLogger("neruba_client.batcher")

MAX_BATCH = 100
MAX_BATCH_BYTES = 250_000  # under the API's 256 KiB body limit
_DETAIL_PARAM = re.compile(r"^events\.(\d+)(?:\.(.+))?$")


@dataclass(frozen=True, slots=True)
class EventFailure:
    """An event the API did not take: rejected in a 202 answer, refused with its batch (4xx), or not
    delivered before close. ``status`` is the HTTP status of a refused batch (None for the others)."""

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


def _log_failure(failure: EventFailure) -> None:
    logger.warning(
        "event %s not taken: %s %s (param %s, request_id %s)",
        failure.event.transaction_id,
        failure.code,
        failure.message,
        failure.param,
        failure.request_id,
    )


@dataclass
class _Core:
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

    def answered(self, batch: list[m.Event], answer: m.IngestResponse) -> None:
        self.stats.batches += 1
        self.stats.queued += answer.queued
        failures = [
            EventFailure(
                batch[s.index],
                s.error.code if s.error else "rejected",
                s.error.message if s.error else "",
                s.error.param if s.error else None,
                None,
                answer.request_id,
            )
            for s in answer.events
            if s.status == "rejected" and 0 <= s.index < len(batch)
        ]
        self.report(failures)

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
        self.report([EventFailure(e, "not_delivered", f"gave up at close: {error}") for e in batch])


def split_by_size(batch: list[m.Event], limit: int = MAX_BATCH_BYTES) -> list[list[m.Event]]:
    """Halve a batch until each part's body fits the API's size limit (one event stays alone)."""
    body = json.dumps(routes.send_events(batch).body)
    if len(body.encode()) <= limit or len(batch) == 1:
        return [batch]
    middle = len(batch) // 2
    return split_by_size(batch[:middle], limit) + split_by_size(batch[middle:], limit)


def _retryable(error: Exception) -> bool:
    if isinstance(error, APIConnectionError):
        return True
    return isinstance(error, APIError) and (error.status == 429 or error.status >= 500)


def _check_options(batch_size: int, max_buffered: int, when_full: str) -> None:
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
    if max_buffered < batch_size:
        raise ValueError("max_buffered must be at least batch_size")
    if when_full not in ("block", "raise"):
        raise ValueError("when_full must be 'block' or 'raise'")


class EventBatcher:
    """Buffers events and sends them from a background thread (see the module's rules).

    ``send`` posts one batch (``client.events.send``); ``client.events.batcher(...)`` passes it.
    """

    def __init__(
        self,
        send: SendEvents,
        *,
        batch_size: int = MAX_BATCH,
        flush_interval: float = 1.0,
        max_buffered: int = 10_000,
        when_full: Literal["block", "raise"] = "block",
        block_timeout: float | None = None,
        on_error: OnError | None = None,
        close_timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        _check_options(batch_size, max_buffered, when_full)
        self._send = send
        self._when_full = when_full
        self._block_timeout = block_timeout
        self._close_timeout = close_timeout
        self._core = _Core(
            batch_size, flush_interval, max_buffered, on_error or _log_failure, backoff_base, backoff_cap
        )
        self._cond = threading.Condition()
        self._close_deadline: float | None = None
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="neruba-event-batcher", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @property
    def stats(self) -> BatcherStats:
        return self._core.stats

    def add(
        self,
        customer_id: str | None = None,
        code: str | None = None,
        properties: Mapping[str, m.PropertyValue] | None = None,
        *,
        transaction_id: str | None = None,
        timestamp: datetime | None = None,
        event: m.Event | Mapping[str, Any] | None = None,
    ) -> str:
        """Buffer one event; returns its transaction id. Raises ``BatcherFullError`` per ``when_full``."""
        fields = {
            "customer_id": customer_id,
            "code": code,
            "properties": dict(properties) if properties is not None else None,
            "transaction_id": transaction_id,
            "timestamp": timestamp,
        }
        built = self._core.make_event(event, fields)
        with self._cond:
            if self._core.closing:
                raise RuntimeError("the batcher is closed")
            full = self._core.held() >= self._core.max_buffered
            if full and (
                self._when_full == "raise"
                or not self._cond.wait_for(
                    lambda: self._core.held() < self._core.max_buffered, self._block_timeout
                )
            ):
                raise BatcherFullError(f"{self._core.max_buffered} events are buffered")
            self._core.waiting.append((time.monotonic(), built))
            self._core.stats.buffered += 1
            self._cond.notify_all()
        return built.transaction_id

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered now; True when all of it got a final answer within ``timeout``."""
        with self._cond:
            self._core.flushers += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._core.held() == 0, timeout)
            finally:
                self._core.flushers -= 1

    def close(self) -> None:
        """Flush and stop the thread (retries stop ``close_timeout`` seconds from now)."""
        with self._cond:
            if self._core.closing:
                return
            self._core.closing = True
            self._close_deadline = time.monotonic() + self._close_timeout
            self._cond.notify_all()
        self._wake.set()
        self._thread.join()
        atexit.unregister(self.close)

    def __enter__(self) -> EventBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    due = self._core.due_in(time.monotonic())
                    if due == 0.0:
                        break
                    if due is None and self._core.closing:
                        return
                    self._cond.wait(due)
                batch = self._core.take()
            for part in split_by_size(batch):
                self._deliver(part)
            with self._cond:
                self._core.in_flight -= len(batch)
                self._cond.notify_all()

    def _deliver(self, batch: list[m.Event]) -> None:
        attempt = 0
        while True:
            self._core.stats.attempts += 1
            try:
                answer = self._send(batch)
            except (APIError, APIConnectionError) as error:
                if isinstance(error, APIError) and not _retryable(error):
                    with self._cond:
                        self._core.refused(batch, error)
                    return
                deadline = self._close_deadline
                if deadline is not None and time.monotonic() >= deadline:
                    with self._cond:
                        self._core.undelivered(batch, error)
                    return
                if attempt == 0:
                    self._core.stats.retried_batches += 1
                delay = self._core.backoff(attempt)
                if deadline is not None:
                    delay = min(delay, max(0.0, deadline - time.monotonic()))
                if self._close_deadline is None:
                    self._wake.wait(delay)  # close() cuts this wait short
                else:
                    time.sleep(delay)
                attempt += 1
                continue
            with self._cond:
                self._core.answered(batch, answer)
            return


class AsyncEventBatcher:
    """The asyncio batcher: ``async with client.events.batcher() as b: await b.add(...)``."""

    def __init__(
        self,
        send: SendEventsAsync,
        *,
        batch_size: int = MAX_BATCH,
        flush_interval: float = 1.0,
        max_buffered: int = 10_000,
        when_full: Literal["block", "raise"] = "block",
        block_timeout: float | None = None,
        on_error: OnError | None = None,
        close_timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        _check_options(batch_size, max_buffered, when_full)
        self._send = send
        self._when_full = when_full
        self._block_timeout = block_timeout
        self._close_timeout = close_timeout
        self._core = _Core(
            batch_size, flush_interval, max_buffered, on_error or _log_failure, backoff_base, backoff_cap
        )
        self._cond: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None
        self._close_deadline: float | None = None

    @property
    def stats(self) -> BatcherStats:
        return self._core.stats

    def _start(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
            self._task = asyncio.get_running_loop().create_task(self._run(self._cond))
        return self._cond

    async def add(
        self,
        customer_id: str | None = None,
        code: str | None = None,
        properties: Mapping[str, m.PropertyValue] | None = None,
        *,
        transaction_id: str | None = None,
        timestamp: datetime | None = None,
        event: m.Event | Mapping[str, Any] | None = None,
    ) -> str:
        """Buffer one event; returns its transaction id. Raises ``BatcherFullError`` per ``when_full``."""
        fields = {
            "customer_id": customer_id,
            "code": code,
            "properties": dict(properties) if properties is not None else None,
            "transaction_id": transaction_id,
            "timestamp": timestamp,
        }
        built = self._core.make_event(event, fields)
        cond = self._start()
        async with cond:
            if self._core.closing:
                raise RuntimeError("the batcher is closed")
            if self._core.held() >= self._core.max_buffered:
                if self._when_full == "raise":
                    raise BatcherFullError(f"{self._core.max_buffered} events are buffered")
                try:
                    await asyncio.wait_for(
                        cond.wait_for(lambda: self._core.held() < self._core.max_buffered),
                        self._block_timeout,
                    )
                except TimeoutError:
                    raise BatcherFullError(f"{self._core.max_buffered} events are buffered") from None
            self._core.waiting.append((time.monotonic(), built))
            self._core.stats.buffered += 1
            cond.notify_all()
        return built.transaction_id

    async def flush(self, timeout: float | None = None) -> bool:
        cond = self._start()
        async with cond:
            self._core.flushers += 1
            cond.notify_all()
            try:
                await asyncio.wait_for(cond.wait_for(lambda: self._core.held() == 0), timeout)
                return True
            except TimeoutError:
                return False
            finally:
                self._core.flushers -= 1

    async def close(self) -> None:
        if self._cond is None or self._task is None:
            self._core.closing = True
            return
        async with self._cond:
            self._core.closing = True
            self._close_deadline = time.monotonic() + self._close_timeout
            self._cond.notify_all()
        await self._task

    async def __aenter__(self) -> AsyncEventBatcher:
        self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, cond: asyncio.Condition) -> None:
        while True:
            async with cond:
                while True:
                    due = self._core.due_in(time.monotonic())
                    if due == 0.0:
                        break
                    if due is None and self._core.closing:
                        return
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(cond.wait(), due)
                batch = self._core.take()
            for part in split_by_size(batch):
                await self._deliver(part)
            async with cond:
                self._core.in_flight -= len(batch)
                cond.notify_all()

    async def _deliver(self, batch: list[m.Event]) -> None:
        attempt = 0
        while True:
            self._core.stats.attempts += 1
            try:
                answer = await self._send(batch)
            except (APIError, APIConnectionError) as error:
                if isinstance(error, APIError) and not _retryable(error):
                    self._core.refused(batch, error)
                    return
                deadline = self._close_deadline
                if deadline is not None and time.monotonic() >= deadline:
                    self._core.undelivered(batch, error)
                    return
                if attempt == 0:
                    self._core.stats.retried_batches += 1
                delay = self._core.backoff(attempt)
                if deadline is not None:
                    delay = min(delay, max(0.0, deadline - time.monotonic()))
                await asyncio.sleep(delay)
                attempt += 1
                continue
            self._core.answered(batch, answer)
            return
