"""Per-invocation state that Powertools keeps process-wide, made per-thread for the local stack.

Powertools' event handler stores the request being resolved in class attributes
(``BaseRouter.current_event`` and ``BaseRouter.lambda_context``), shared by every resolver and router of
the process, and a router reads its resolver's ``context`` (where our scope middleware puts the caller's
principal) through ``router.api_resolver``, the resolver that included it *last*. On Lambda a process
runs one invocation at a time and builds one resolver, so that is harmless; the local stack runs several
invocations of an API function at once in one process, each environment with a resolver of its own
(``pool.py``), and a route would then read another request's event, or another environment's context
(an admin route would find no principal, or a concurrent caller's).

``isolate_resolver_state`` gives each thread its own value of the three: a data descriptor on
``BaseRouter`` answers reads and writes through instances (``self.context = {}`` in a resolver's
``__init__`` included), and one on a subclass of its metaclass answers reads and writes on the class
itself (``BaseRouter.current_event = ...``, what ``resolve`` does). A thread runs one invocation at a
time, so per thread is per invocation; a thread sees what it set, as a single-threaded process does. It
is installed once per process and stays.

Example:
    >>> isolate_resolver_state(); isolate_resolver_state()  # idempotent
"""

from __future__ import annotations

import threading
from typing import Any

_PER_THREAD = threading.local()
_installed = threading.Lock()
ATTRIBUTES = ("current_event", "lambda_context", "context")


class _PerThread:
    """A data descriptor whose value lives in ``_PER_THREAD`` under ``name`` (``context``: a thread's
    first read finds an empty dict, as a new resolver does)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        try:
            return getattr(_PER_THREAD, self.name)
        except AttributeError:
            if self.name == "context":
                setattr(_PER_THREAD, self.name, {})
                return getattr(_PER_THREAD, self.name)
            raise AttributeError(self.name) from None

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(_PER_THREAD, self.name, value)


def isolate_resolver_state() -> bool:
    """Make Powertools' current event and Lambda context per-thread; True if this call installed it."""
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

    with _installed:
        if getattr(type(BaseRouter), "_neruba_per_thread", False):
            return False
        for name in ATTRIBUTES:  # in the class dict first, for reads and writes through instances
            if name in BaseRouter.__dict__ and not isinstance(BaseRouter.__dict__[name], _PerThread):
                setattr(_PER_THREAD, name, BaseRouter.__dict__[name])
            setattr(BaseRouter, name, _PerThread(name))
        namespace: dict[str, Any] = {name: _PerThread(name) for name in ATTRIBUTES}
        namespace["_neruba_per_thread"] = True
        BaseRouter.__class__ = type("PerThreadRouterMeta", (type(BaseRouter),), namespace)
        return True
