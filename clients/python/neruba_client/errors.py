"""Exceptions: every error answer of the API becomes an ``APIError`` subclass chosen by its ``type``.

Hierarchy::

    NerubaError
    ├── APIConnectionError          the request got no answer (connection refused or dropped)
    │   └── APITimeoutError         no answer within the timeout
    ├── APIError                    an error answer: status, type, code, message, param, request_id
    │   ├── InvalidRequestError     type invalid_request_error (400, 404, 409, 413, 415, 422)
    │   │   └── RateLimitError      429
    │   ├── AuthenticationError     type authentication_error (401)
    │   ├── PermissionDeniedError   type permission_error (403)
    │   ├── IdempotencyError        type idempotency_error (409 idempotency_conflict, ...)
    │   └── ServerError             type api_error, or any 5xx
    └── BatcherFullError            the event batcher holds its maximum number of events
"""

from __future__ import annotations

from typing import Any

import httpx


class NerubaError(Exception):
    """The base of every exception this package raises."""


class APIConnectionError(NerubaError):
    """The request got no answer: the connection failed or was dropped."""


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout."""


class BatcherFullError(NerubaError):
    """The event batcher holds ``max_buffered`` events and could not take one more in time."""


class APIError(NerubaError):
    """An error answer of the API, in its one error shape."""

    error_type: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        error_type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.type = error_type or self.error_type
        self.param = param
        self.request_id = request_id
        self.details = details or []
        self.headers = headers if headers is not None else httpx.Headers()

    def __str__(self) -> str:
        where = f" (param {self.param})" if self.param else ""
        return f"{self.status} {self.code}: {self.message}{where} [request_id {self.request_id}]"


class InvalidRequestError(APIError):
    error_type = "invalid_request_error"


class RateLimitError(InvalidRequestError):
    """429: the API asks to slow down (the client retries it, honouring Retry-After)."""


class AuthenticationError(APIError):
    error_type = "authentication_error"


class PermissionDeniedError(APIError):
    error_type = "permission_error"


class IdempotencyError(APIError):
    error_type = "idempotency_error"


class ServerError(APIError):
    error_type = "api_error"


_BY_TYPE: dict[str, type[APIError]] = {
    cls.error_type: cls
    for cls in (
        InvalidRequestError,
        AuthenticationError,
        PermissionDeniedError,
        IdempotencyError,
        ServerError,
    )
}


def _class_for(status: int, error_type: str | None) -> type[APIError]:
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    if error_type in _BY_TYPE:
        return _BY_TYPE[error_type]
    return {401: AuthenticationError, 403: PermissionDeniedError}.get(status, InvalidRequestError)


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error answer; a body outside the error shape (a proxy's 502 page, say)
    still gives one, with code ``http_<status>``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    request_id = response.headers.get("x-request-id")
    if not isinstance(error, dict):
        return _class_for(response.status_code, None)(
            f"unexpected answer: {response.text[:200]!r}",
            status=response.status_code,
            code=f"http_{response.status_code}",
            request_id=request_id,
            headers=response.headers,
        )
    error_type = error.get("type") if isinstance(error.get("type"), str) else None
    details = error.get("details")
    return _class_for(response.status_code, error_type)(
        str(error.get("message", "")),
        status=response.status_code,
        code=str(error.get("code", f"http_{response.status_code}")),
        error_type=error_type,
        param=error.get("param"),
        request_id=error.get("request_id") or request_id,
        details=details if isinstance(details, list) else None,
        headers=response.headers,
    )
