"""Resources and their endpoints, declared once for both clients.

A resource class lists its routes as descriptors: ``retrieve = endpoint(routes.get_customer)``. Read
through a sync client's resource, an endpoint is a plain method returning the answer's model; through
an async client's, a coroutine function; ``paginated`` endpoints return a lazy iterator over every item
of every page. Adding a route is one builder in ``routes.py`` and one line in its resource.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from pydantic import BaseModel

from neruba_client._core import ListOperation, Operation

if TYPE_CHECKING:
    from neruba_client._pagination import AsyncPaginator, Paginator

P = ParamSpec("P")
T = TypeVar("T", bound=BaseModel)
I = TypeVar("I", bound=BaseModel)  # noqa: E741


class Sync:
    """Marks a resource read through ``Neruba``."""


class Async:
    """Marks a resource read through ``AsyncNeruba``."""


M = TypeVar("M", Sync, Async)


class Resource(Generic[M]):
    def __init__(self, transport: Any) -> None:
        self._transport = transport


class endpoint(Generic[P, T]):
    def __init__(self, build: Callable[P, Operation[T]]) -> None:
        self.build = build

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> endpoint[P, T]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build, transport = self.build, obj._transport

        def call(*args: P.args, **kwargs: P.kwargs) -> Any:
            return transport.send(build(*args, **kwargs))

        call.__doc__ = build.__doc__
        return call


class paginated(Generic[P, T, I]):
    def __init__(self, build: Callable[P, ListOperation[T, I]]) -> None:
        self.build = build

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> paginated[P, T, I]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type[Any]) -> Callable[P, Paginator[T, I]]: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type[Any]) -> Callable[P, AsyncPaginator[T, I]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build, transport = self.build, obj._transport

        def call(*args: P.args, **kwargs: P.kwargs) -> Any:
            return transport.paginate(build(*args, **kwargs))

        call.__doc__ = build.__doc__
        return call
