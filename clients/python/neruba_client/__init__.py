"""Python client of the Neruba usage-billing API."""

from neruba_client._async import AsyncNeruba
from neruba_client._core import ListOperation, Operation, RetryPolicy
from neruba_client._pagination import AsyncPaginator, Paginator
from neruba_client._sync import Neruba
from neruba_client._version import __version__
from neruba_client.batcher import AsyncEventBatcher, BatcherStats, EventBatcher, EventFailure
from neruba_client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BatcherFullError,
    IdempotencyError,
    InvalidRequestError,
    NerubaError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from neruba_client.models import Event
from neruba_client.webhooks import SignatureVerificationError, sign, verify

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncEventBatcher",
    "AsyncNeruba",
    "AsyncPaginator",
    "AuthenticationError",
    "BatcherFullError",
    "BatcherStats",
    "Event",
    "EventBatcher",
    "EventFailure",
    "IdempotencyError",
    "InvalidRequestError",
    "ListOperation",
    "Neruba",
    "NerubaError",
    "Operation",
    "Paginator",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "SignatureVerificationError",
    "__version__",
    "sign",
    "verify",
]
