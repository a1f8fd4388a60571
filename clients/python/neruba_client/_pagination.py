"""Lazy iterators over list routes: a page is fetched only when the items before it are used up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from pydantic import BaseModel

from neruba_client._core import ListOperation, Operation

T = TypeVar("T", bound=BaseModel)
I = TypeVar("I", bound=BaseModel)  # noqa: E741


class Paginator(Generic[T, I]):
    """``for item in client.customers.list(): ...`` walks every page; ``.pages()`` yields the pages."""

    def __init__(self, send: Callable[[Operation[T]], T], operation: ListOperation[T, I]) -> None:
        self._send = send
        self._operation = operation

    def pages(self) -> Iterator[T]:
        cursor: str | None = None
        while True:
            page = self._send(self._operation.page(cursor))
            yield page
            cursor = self._operation.next_cursor(page)
            if cursor is None:
                return

    def __iter__(self) -> Iterator[I]:
        for page in self.pages():
            yield from self._operation.items(page)


class AsyncPaginator(Generic[T, I]):
    """``async for item in client.customers.list(): ...``; ``.pages()`` yields the pages."""

    def __init__(self, send: Callable[[Operation[T]], Awaitable[T]], operation: ListOperation[T, I]) -> None:
        self._send = send
        self._operation = operation

    async def pages(self) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            page = await self._send(self._operation.page(cursor))
            yield page
            cursor = self._operation.next_cursor(page)
            if cursor is None:
                return

    async def __aiter__(self) -> AsyncIterator[I]:
        async for page in self.pages():
            for item in self._operation.items(page):
                yield item
