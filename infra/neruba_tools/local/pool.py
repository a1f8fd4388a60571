"""Lambda's concurrency model on the local stack: a bounded pool of execution environments per function.

On AWS, each concurrent invocation of a function runs in its own execution environment, with its own copy
of the handler module's globals (a Powertools resolver, a ``BatchProcessor``), and one environment runs one
invocation at a time. ``EnvironmentPool`` does the same in this process: an environment is the handler
module imported afresh under its own name, created on first need, reused afterwards; at most ``size``
exist, so at most ``size`` invocations of one function run at once. An invocation beyond the bound waits
for a free environment (AWS would throttle it instead: the local stack favours answering late over
answering 429 or 502).

The size is the function's ``ReservedConcurrentExecutions`` when the template sets one, else
``NERUBA_LOCAL_CONCURRENCY`` from the environment, else ``DEFAULT_CONCURRENCY``.

What environments of one process still share (the neruba package is imported once) is made safe in
``isolation.py``; see docs/local.md, "Concurrent invocations".

Example:
    >>> pool = EnvironmentPool(lambda number: (lambda event, context: number), size=2)
    >>> with pool.environment() as handler:
    ...     handler({}, None)
    0
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_CONCURRENCY = 4
CONCURRENCY_VARIABLE = "NERUBA_LOCAL_CONCURRENCY"
Handler = Callable[..., Any]


def pool_size(reserved: int | None) -> int:
    """How many environments a function may have: its reserved concurrency, else the local default.

    Example:
        >>> pool_size(2), pool_size(None) >= 1
        (2, True)
    """
    if reserved is not None and reserved > 0:
        return reserved
    configured = os.environ.get(CONCURRENCY_VARIABLE, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return DEFAULT_CONCURRENCY


class EnvironmentPool:
    """Up to ``size`` environments, each built by ``create(number)`` (0, 1, ...) on first need."""

    def __init__(self, create: Callable[[int], Handler], size: int) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one environment, not {size}")
        self.create, self.size = create, size
        self._idle: list[Handler] = []
        self._created = 0
        self._busy = 0
        self.peak = 0  # the most invocations that ran at once
        self._changed = threading.Condition()

    @property
    def created(self) -> int:
        return self._created

    def first(self) -> Handler:
        """An environment without running anything (the first one, created if need be)."""
        with self.environment() as handler:
            return handler

    @contextmanager
    def environment(self) -> Iterator[Handler]:
        """A free environment for one invocation: an idle one, a new one while fewer than ``size`` exist,
        else the first one another invocation hands back."""
        handler = self._acquire()
        try:
            yield handler
        finally:
            with self._changed:
                self._busy -= 1
                self._idle.append(handler)
                self._changed.notify()

    def _acquire(self) -> Handler:
        with self._changed:
            while not self._idle and self._created >= self.size:
                self._changed.wait()
            if self._idle:
                handler = self._idle.pop()
                self._busy += 1
                self.peak = max(self.peak, self._busy)
                return handler
            number = self._created
            self._created += 1  # reserved before the import, which runs outside the lock
        try:
            handler = self.create(number)
        except BaseException:
            with self._changed:
                self._created -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._busy += 1
            self.peak = max(self.peak, self._busy)
        return handler
