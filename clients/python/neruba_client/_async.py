"""``AsyncNeruba``: the asyncio client (same resources, every call awaited)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from neruba_client import resources
from neruba_client._core import (
    ClientConfig,
    ListOperation,
    Operation,
    RetryPolicy,
    as_client_error,
    build_request,
    parse_success,
    should_retry,
)
from neruba_client._pagination import AsyncPaginator
from neruba_client._resource import Async
from neruba_client.batcher import AsyncEventBatcher
from neruba_client.errors import error_from_response

T = TypeVar("T", bound=BaseModel)
I = TypeVar("I", bound=BaseModel)  # noqa: E741


class AsyncTransport:
    def __init__(
        self,
        config: ClientConfig,
        http: httpx.AsyncClient,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.http = http
        self.sleep = sleep
        self.rng = rng or random.Random()

    async def send(self, operation: Operation[T]) -> T:
        policy = self.config.retry
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self.http.send(build_request(self.http, operation))
                if response.status_code < 400:
                    return parse_success(operation, response)
                error: Exception = error_from_response(response)
            except httpx.TransportError as exc:
                error = exc
            if attempt >= policy.max_retries or not should_retry(operation, error):
                raise as_client_error(error) if isinstance(error, httpx.TransportError) else error
            await self.sleep(policy.delay(attempt, response, self.rng))
            attempt += 1

    def paginate(self, operation: ListOperation[T, I]) -> AsyncPaginator[T, I]:
        return AsyncPaginator(self.send, operation)


class AsyncNeruba:
    """The Neruba API for asyncio: ``await client.customers.retrieve(...)``.

    ``AsyncNeruba(api_key, base_url=...)`` (or ``NERUBA_API_KEY`` / ``NERUBA_BASE_URL`` in the environment).
    ``timeout`` is in seconds (or an ``httpx.Timeout``); ``retry`` sets the backoff (``RetryPolicy``).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = ClientConfig.build(api_key, base_url, timeout, retry)
        self._http = httpx.AsyncClient(
            base_url=self.config.base_url,
            headers=self.config.headers(),
            timeout=self.config.timeout,
            transport=http_transport,
        )
        self._transport = AsyncTransport(self.config, self._http, sleep, rng)
        self.customers: resources.Customers[Async] = resources.Customers(self._transport)
        self.events = AsyncEvents(self._transport)
        self.meters: resources.Meters[Async] = resources.Meters(self._transport)
        self.plans: resources.Plans[Async] = resources.Plans(self._transport)
        self.subscriptions: resources.Subscriptions[Async] = resources.Subscriptions(self._transport)
        self.invoices: resources.Invoices[Async] = resources.Invoices(self._transport)
        self.admin: resources.Admin[Async] = resources.Admin(self._transport)
        self.service: resources.Service[Async] = resources.Service(self._transport)

    async def send(self, operation: Operation[T]) -> T:
        """Run any ``Operation`` (a route without a method yet: build it with ``Operation(...)``)."""
        return await self._transport.send(operation)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncNeruba:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncEvents(resources.Events[Async]):
    def batcher(self, **options: Any) -> AsyncEventBatcher:
        """An ``AsyncEventBatcher`` sending through this client (options: see ``EventBatcher``)."""
        return AsyncEventBatcher(self.send, **options)
