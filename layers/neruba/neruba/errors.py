"""The one error shape of every Neruba response.

Every error, whatever raised it (a handler, request validation, the authorizer through the API Gateway
responses in template.yaml), reaches the client as::

    {"error": {"type": "invalid_request_error", "code": "customer_not_found",
               "message": "No customer with external_id 'acme'.", "param": "customer_id",
               "request_id": "c0ffee-..."}}

``code`` is machine-readable and stable; ``message`` is for people; ``param`` names the input at fault
when there is one; ``details`` lists per-item problems (for example per-event validation errors).

Example:
    >>> raise NotFoundError("No customer 'acme'.", code="customer_not_found")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

ErrorType = Literal[
    "invalid_request_error", "authentication_error", "permission_error", "api_error", "idempotency_error"
]


class NerubaError(Exception):
    """Base of every error that becomes a clean 4xx/5xx response."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "invalid_request"
    error_type: ClassVar[ErrorType] = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.details = details

    def to_body(self, request_id: str | None) -> dict[str, Any]:
        """The response body for this error."""
        return error_body(
            self.error_type, self.code, self.message, request_id, param=self.param, details=self.details
        )


class InvalidRequestError(NerubaError):
    """The request is malformed or breaks a rule (400)."""


class AuthenticationError(NerubaError):
    """No API key, or one that is unknown or revoked (401)."""

    status = 401
    default_code = "unauthorized"
    error_type = "authentication_error"


class PermissionDeniedError(NerubaError):
    """The API key is valid but lacks the scope the route needs (403)."""

    status = 403
    default_code = "insufficient_scope"
    error_type = "permission_error"


class NotFoundError(NerubaError):
    """The resource does not exist (404)."""

    status = 404
    default_code = "not_found"


class ConflictError(NerubaError):
    """The request conflicts with the current state, e.g. a unique key already taken (409)."""

    status = 409
    default_code = "conflict"


class MethodNotAllowedError(NerubaError):
    """The path exists but not with this method (405; the response lists the methods in ``Allow``)."""

    status = 405
    default_code = "method_not_allowed"


class UnsupportedMediaTypeError(NerubaError):
    """The body is declared as something other than JSON (415)."""

    status = 415
    default_code = "unsupported_media_type"


class PayloadTooLargeError(NerubaError):
    """The request body is over the configured limit (413)."""

    status = 413
    default_code = "payload_too_large"


class ServiceUnavailableError(NerubaError):
    """A dependency is not reachable right now (503)."""

    status = 503
    default_code = "not_ready"
    error_type = "api_error"


def error_body(
    error_type: str,
    code: str,
    message: str,
    request_id: str | None,
    *,
    param: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the one error body.

    Example:
        >>> error_body("invalid_request_error", "bad", "Bad.", "r1")["error"]["code"]
        'bad'
    """
    error: dict[str, Any] = {"type": error_type, "code": code, "message": message, "request_id": request_id}
    if param is not None:
        error["param"] = param
    if details:
        error["details"] = details
    return {"error": error}


class InvalidCursorError(ValueError):
    """A pagination cursor that this API did not hand out for the query it is sent with. Raised where
    cursors are read (``dal.cursors.decode_cursor``); the API resolver answers every one 400
    ``invalid_cursor`` (it is not a ``NerubaError``: the storage layer says what is wrong, not how the
    API answers it)."""
