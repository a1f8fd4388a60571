"""What the sync and async clients share: the description of one call (``Operation``), the retry
policy, and turning an answer into a model or an exception. No I/O happens here."""

from __future__ import annotations

import email.utils
import os
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from neruba_client._version import __version__
from neruba_client.errors import APIError

T = TypeVar("T", bound=BaseModel)
I = TypeVar("I", bound=BaseModel)  # noqa: E741 - the item type of a list

DEFAULT_TIMEOUT = 30.0
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Operation(Generic[T]):
    """One API call: method, path, query, JSON body and the model of its success answer.

    ``retry_safe`` says whether sending it twice cannot do anything twice (reads, POSTs with an
    Idempotency-Key, events with their transaction ids); only those are retried after an error that
    may have reached the server (5xx, a dropped connection, a timeout). Every call is retried after a
    429 or a connection that was never made.
    """

    method: str
    path: str
    model: type[T]
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    idempotency_key: str | None = None
    retry_safe: bool = False

    def query(self) -> dict[str, Any]:
        return {k: _query_value(v) for k, v in self.params.items() if v is not None}


@dataclass(frozen=True, slots=True)
class ListOperation(Generic[T, I]):
    """A list route: the first page's operation and how to read the items of a page."""

    first: Operation[T]

    def page(self, cursor: str | None) -> Operation[T]:
        if cursor is None:
            return self.first
        return replace(self.first, params={**self.first.params, "starting_after": cursor})

    @staticmethod
    def items(page: Any) -> list[I]:
        return list(page.data)

    @staticmethod
    def next_cursor(page: Any) -> str | None:
        cursor = getattr(page, "next_cursor", None)
        return cursor if getattr(page, "has_more", False) and cursor else None


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: the wait before retry ``n`` (0-based) is uniform in
    ``[0, min(max_delay, base_delay * 2**n)]``; a ``Retry-After`` answer header (seconds or an HTTP
    date) is waited instead, up to ``max_retry_after`` seconds."""

    max_retries: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, response: httpx.Response | None, rng: random.Random) -> float:
        retry_after = parse_retry_after(response.headers.get("retry-after")) if response else None
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * (2**attempt)))


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def should_retry(operation: Operation[Any], error: Exception) -> bool:
    """Whether ``error`` (an ``APIError`` or an httpx transport error) is worth another attempt."""
    if isinstance(error, APIError):
        if error.status == 429:
            return True
        return operation.retry_safe and error.status in RETRYABLE_STATUSES
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return True  # the request never left: safe for every operation
    return operation.retry_safe and isinstance(error, httpx.TransportError)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    api_key: str
    base_url: str
    timeout: float | httpx.Timeout
    retry: RetryPolicy

    @classmethod
    def build(
        cls,
        api_key: str | None,
        base_url: str | None,
        timeout: float | httpx.Timeout | None,
        retry: RetryPolicy | None,
    ) -> ClientConfig:
        key = api_key or os.environ.get("NERUBA_API_KEY")
        url = base_url or os.environ.get("NERUBA_BASE_URL")
        if not key:
            raise ValueError("an API key is needed: pass api_key= or set NERUBA_API_KEY")
        if not url:
            raise ValueError("a base URL is needed: pass base_url= or set NERUBA_BASE_URL")
        return cls(
            key, url.rstrip("/"), DEFAULT_TIMEOUT if timeout is None else timeout, retry or RetryPolicy()
        )

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"neruba-client-python/{__version__}",
        }


def build_request(client: httpx.Client | httpx.AsyncClient, operation: Operation[Any]) -> httpx.Request:
    headers = {"Idempotency-Key": operation.idempotency_key} if operation.idempotency_key else {}
    return client.build_request(
        operation.method,
        operation.path,
        params=operation.query(),
        json=operation.body if operation.body is not None else None,
        headers=headers,
    )


def parse_success(operation: Operation[T], response: httpx.Response) -> T:
    """The model of a success answer; a body that is not JSON (a proxy's page) raises ``ServerError``."""
    from neruba_client.errors import ServerError

    try:
        data = response.json()
    except ValueError:
        raise ServerError(
            f"the answer is not JSON: {response.text[:200]!r}",
            status=response.status_code,
            code="invalid_answer",
            request_id=response.headers.get("x-request-id"),
            headers=response.headers,
        ) from None
    return operation.model.model_validate(data)


def as_client_error(error: httpx.TransportError) -> Exception:
    from neruba_client.errors import APIConnectionError, APITimeoutError

    kind = APITimeoutError if isinstance(error, httpx.TimeoutException) else APIConnectionError
    wrapped = kind(f"{type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped
