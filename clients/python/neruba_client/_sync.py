"""``Neruba``: the blocking client."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
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
from neruba_client._pagination import Paginator
from neruba_client._resource import Sync
from neruba_client.batcher import EventBatcher
from neruba_client.errors import error_from_response

T = TypeVar("T", bound=BaseModel)
I = TypeVar("I", bound=BaseModel)  # noqa: E741


class SyncTransport:
    def __init__(
        self,
        config: ClientConfig,
        http: httpx.Client,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.http = http
        self.sleep = sleep
        self.rng = rng or random.Random()

    def send(self, operation: Operation[T]) -> T:
        policy = self.config.retry
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self.http.send(build_request(self.http, operation))
                if response.status_code < 400:
                    return parse_success(operation, response)
                error: Exception = error_from_response(response)
            except httpx.TransportError as exc:
                error = exc
            if attempt >= policy.max_retries or not should_retry(operation, error):
                raise as_client_error(error) if isinstance(error, httpx.TransportError) else error
            self.sleep(policy.delay(attempt, response, self.rng))
            attempt += 1

    def paginate(self, operation: ListOperation[T, I]) -> Paginator[T, I]:
        return Paginator(self.send, operation)


class Neruba:
    """The Neruba API, blocking.

    ``Neruba(api_key, base_url=...)`` (or ``NERUBA_API_KEY`` / ``NERUBA_BASE_URL`` in the environment).
    ``timeout`` is in seconds (or an ``httpx.Timeout``); ``retry`` sets the backoff (``RetryPolicy``).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        http_transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = ClientConfig.build(api_key, base_url, timeout, retry)
        self._http = httpx.Client(
            base_url=self.config.base_url,
            headers=self.config.headers(),
            timeout=self.config.timeout,
            transport=http_transport,
        )
        self._transport = SyncTransport(self.config, self._http, sleep, rng)
        self.customers: resources.Customers[Sync] = resources.Customers(self._transport)
        self.events = SyncEvents(self._transport)
        self.meters: resources.Meters[Sync] = resources.Meters(self._transport)
        self.plans: resources.Plans[Sync] = resources.Plans(self._transport)
        self.subscriptions: resources.Subscriptions[Sync] = resources.Subscriptions(self._transport)
        self.invoices: resources.Invoices[Sync] = resources.Invoices(self._transport)
        self.admin: resources.Admin[Sync] = resources.Admin(self._transport)
        self.service: resources.Service[Sync] = resources.Service(self._transport)

    def send(self, operation: Operation[T]) -> T:
        """Run any ``Operation`` (a route without a method yet: build it with ``Operation(...)``)."""
        return self._transport.send(operation)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Neruba:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncEvents(resources.Events[Sync]):
    def batcher(self, **options: Any) -> EventBatcher:
        """An ``EventBatcher`` sending through this client (options: see ``EventBatcher``)."""
        return EventBatcher(self.send, **options)
