"""What many routes share: scope middlewares, common parameters and the documented error answers.

Example::

    from neruba.api.params import ADMIN, CustomerId, IdempotencyKey, answer, scoped_responses

    ERRORS = scoped_responses("admin", {404: {"description": "No customer"}})

    @router.post("/admin/customers/<customer_id>/things", middlewares=ADMIN,
                 responses={201: answer(Thing, "Created"), **ERRORS})

    def create_thing(customer_id: CustomerId, idempotency_key: IdempotencyKey = None) -> ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from neruba.api.scopes import require_scope
from neruba.models.errors import ErrorResponse
from neruba.models.fields import EXTERNAL_ID_PATTERN, PlainInteger
from neruba.security.apikeys import Scope

READ: list[Callable[..., Any]] = [require_scope("read")]
ADMIN: list[Callable[..., Any]] = [require_scope("admin")]

CustomerId = Annotated[str, Path(pattern=EXTERNAL_ID_PATTERN)]
Limit = Annotated[int, PlainInteger, Query(ge=1, le=100)]
CURSOR_PARAMS = frozenset({"starting_after"})
"""The query parameters that hold a cursor: any text there that fails the schema (empty, over 2048
characters, not an id where the list's cursor is one) is 400 ``invalid_cursor`` like a cursor the list
never handed out (``neruba.api.resolver``), never a 422 and never read as no cursor."""
Cursor = Annotated[str | None, Query(min_length=1, max_length=2048)]
# 1 to 255 printable ASCII characters (space to tilde): a key is matched as written, never shown altered.
IDEMPOTENCY_KEY_PATTERN = r"^[ -~]{1,255}$"
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN)
]


def only_query(*allowed: str) -> Callable[..., Any]:
    """A middleware answering 400 ``unknown_parameter`` when the query names a parameter the route does
    not take (a misspelt filter would otherwise be ignored and widen the list silently)."""

    def middleware(app: Any, next_middleware: Callable[..., Any]) -> Any:
        from neruba.errors import InvalidRequestError

        names = sorted(set(app.current_event.query_string_parameters or {}) - set(allowed))
        if names:
            raise InvalidRequestError(
                f"'{names[0]}' is not a parameter of this route (it takes {', '.join(allowed)}).",
                code="unknown_parameter",
                param=names[0],
            )
        return next_middleware(app)

    return middleware


def answer(model: Any, description: str) -> OpenAPIResponse:
    """A documented JSON answer whose body is ``model`` (a pydantic model; the route still serialises its
    own body: the model describes it, and the API tests check every answer against it)."""
    return {"description": description, "content": {"application/json": {"model": model}}}


def errors_only(specific: dict[int, str]) -> dict[int, OpenAPIResponse]:
    """Error answers (status -> description), each with the one error shape as its body."""
    return {status: answer(ErrorResponse, text) for status, text in sorted(specific.items())}


def scoped_responses(scope: Scope, specific: dict[int, OpenAPIResponse]) -> dict[int, OpenAPIResponse]:
    """The answers every route of ``scope`` can give (400, 401, 403, 413, 415, 422, 500), plus the route's
    own ones (a route's own description of a shared status replaces the common one). Every error answer
    (4xx, 5xx) has the one error shape as its body; success answers come from :func:`answer`."""
    common: dict[int, OpenAPIResponse] = {
        400: {"description": "The body is not JSON or names a key twice (duplicate_key)"},
        401: {"description": "Missing or unknown API key"},
        403: {"description": f"The key lacks the {scope} scope"},
        413: {"description": "The body is over the size limit (payload_too_large)"},
        415: {"description": "The body is declared as another media type than JSON (unsupported_media_type)"},
        422: {"description": "A parameter or the body does not match the schema (validation_error)"},
        500: {"description": "Something went wrong on our side (internal_error); quote the request_id"},
    }
    merged = {**common, **specific}
    return {
        status: answer(ErrorResponse, response["description"])
        if status >= 400 and "content" not in response
        else response
        for status, response in sorted(merged.items())
    }
