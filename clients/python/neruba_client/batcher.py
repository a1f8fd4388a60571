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
- Any other error answer (4xx) is not retried: every event of the batch is reported, with its own code
  when the answer's details name it (400 ``all_events_rejected``: every event refused, one detail per
  event). A 202 answer that rejects some events reports those, except events the API could not queue
  (per-event ``temporarily_unavailable``): those are sent again, alone, with the same ids and the same
  backoff as a 5xx (on close they are reported with that code when ``close_timeout`` runs out).
  ``EventFailure.param`` is the field
  inside the event (the API's ``events.{i}.`` prefix dropped). Reports go to ``on_error(EventFailure)``;
  without a callback, to the ``neruba_client.batcher`` logger at WARNING.
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
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from neruba_client import models as m
from neruba_client._batching import (
    MAX_BATCH,
    BatcherStats,
    Buffer,
    EventFailure,
    NotQueuedError,
    OnError,
    SendEvents,
    SendEventsAsync,
    check_options,
    log_failure,
    retryable,
    split_by_size,
)
from neruba_client.errors import APIConnectionError, APIError, BatcherFullError

__all__ = ["AsyncEventBatcher", "BatcherStats", "EventBatcher", "EventFailure", "split_by_size"]


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
        check_options(batch_size, max_buffered, when_full)
        self._send = send
        self._when_full = when_full
        self._block_timeout = block_timeout
        self._close_timeout = close_timeout
        self._core = Buffer(
            batch_size, flush_interval, max_buffered, on_error or log_failure, backoff_base, backoff_cap
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
            error: Exception
            try:
                answer = self._send(batch)
            except (APIError, APIConnectionError) as failed:
                if isinstance(failed, APIError) and not retryable(failed):
                    with self._cond:
                        self._core.refused(batch, failed)
                    return
                error = failed
            else:
                with self._cond:
                    again = self._core.answered(batch, answer)
                if not again:
                    return
                batch, error = again, NotQueuedError(f"{len(again)} events not queued")
            # retry the batch (or the events not queued) until the close deadline
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
        check_options(batch_size, max_buffered, when_full)
        self._send = send
        self._when_full = when_full
        self._block_timeout = block_timeout
        self._close_timeout = close_timeout
        self._core = Buffer(
            batch_size, flush_interval, max_buffered, on_error or log_failure, backoff_base, backoff_cap
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
            error: Exception
            try:
                answer = await self._send(batch)
            except (APIError, APIConnectionError) as failed:
                if isinstance(failed, APIError) and not retryable(failed):
                    self._core.refused(batch, failed)
                    return
                error = failed
            else:
                again = self._core.answered(batch, answer)
                if not again:
                    return
                batch, error = again, NotQueuedError(f"{len(again)} events not queued")
            # retry the batch (or the events not queued) until the close deadline
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
