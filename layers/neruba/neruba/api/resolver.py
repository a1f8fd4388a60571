"""One resolver factory for every API function: routes, the one error shape, docs posture.

Example (what ``functions/read_api/app.py`` does)::

    from neruba.api.resolver import build_resolver, make_handler
    from neruba.api.routes import events_read

    app = build_resolver(events_read.router)
    lambda_handler = make_handler(app)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, BaseRouter
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba import jsonutil
from neruba.api.media import json_body_event
from neruba.api.scopes import allowed_methods, check_scope
from neruba.errors import (
    AuthenticationError,
    InvalidCursorError,
    InvalidRequestError,
    MethodNotAllowedError,
    NerubaError,
    PayloadTooLargeError,
    PermissionDeniedError,
    error_body,
)
from neruba.observability import logger, metrics
from neruba.security.apikeys import bearer_token
from neruba.settings import get_settings
from neruba.timefmt import answer_times
from neruba.validation import describe, param_path

API_TITLE = "Neruba API"
API_DESCRIPTION = (
    "Usage billing: send usage events, read usage, balances and invoices; operators manage the catalog, "
    "credits, billing runs and Stripe events. Errors share one shape: {error: {type, code, message, param?, "
    "details?, request_id}}."
)


def security_schemes() -> dict[str, Any]:
    """The OpenAPI security schemes (built on demand: the OpenAPI models cost ~40 ms to import, which only
    the docs and ``neruba openapi`` should pay)."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    return {"bearerAuth": HTTPBearer(description="Authorization: Bearer KEY (scopes: ingest, read, admin)")}


def request_id_of(app: BaseRouter) -> str | None:
    """The API Gateway request id of the request being handled."""
    context = app.current_event.raw_event.get("requestContext") or {}
    value = context.get("requestId")
    return str(value) if value else None


def _error_response(status: int, body: dict[str, Any], request_id: str | None) -> Response[str]:
    """An error answer; its details' times in UTC with ``Z``, as every answer (``timefmt.answer_times``)."""
    headers = {"X-Request-Id": request_id} if request_id else {}
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(answer_times(body)),
        headers=headers,
    )


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = []
    for problem in describe(errors, drop=("body",)):
        if problem.code == "json_invalid":  # its location is a character position, not a field
            details.append({"code": problem.code, "message": "The body is not valid JSON."})
        else:
            details.append({"param": problem.param, "code": problem.code, "message": problem.message})
    return details


def _invalid_cursor(param: str) -> InvalidRequestError:
    """The one answer to a cursor a list did not hand out for this query (edited, of another list or other
    filters, or text that cannot be a cursor): 400 ``invalid_cursor``."""
    return InvalidRequestError(
        f"{param} is not a cursor this list returned for these filters; pass the next_cursor of the "
        "previous page.",
        code="invalid_cursor",
        param=param,
    )


def _cursor_problem(errors: Sequence[Any]) -> str | None:
    """The cursor parameter (``api.params.CURSOR_PARAMS``) the schema refused, if any: a text that cannot
    be a cursor is ``invalid_cursor`` as any cursor the list never handed out is."""
    from neruba.api.params import CURSOR_PARAMS

    for error in errors:
        loc = tuple(error.get("loc") or ())
        if len(loc) >= 2 and loc[0] == "query" and loc[1] in CURSOR_PARAMS:
            return str(loc[1])
    return None


def parse_body(text: str) -> Any:
    """The request body as JSON (exact numbers); a key named twice in one object is 400 duplicate_key."""
    try:
        return jsonutil.loads_untrusted(text)
    except jsonutil.NonFiniteNumberError as exc:
        raise InvalidRequestError(
            f"The body is not valid JSON: {exc.msg}.",
            code="invalid_json",
            param=param_path(exc.key) if exc.key else None,
        ) from exc
    except jsonutil.DuplicateKeyError as exc:
        raise InvalidRequestError(
            f"The body names '{exc.key}' twice in one object.",
            code="duplicate_key",
            param=param_path(exc.key) if exc.key else None,
        ) from exc


def _register_error_handlers(app: APIGatewayRestResolver) -> None:
    def answer(exc: NerubaError) -> Response[str]:
        request_id = request_id_of(app)
        return _error_response(exc.status, exc.to_body(request_id), request_id)

    @app.exception_handler(NerubaError)
    def neruba_error(exc: NerubaError) -> Response[str]:
        return answer(exc)

    @app.exception_handler(InvalidCursorError)
    def invalid_cursor(exc: InvalidCursorError) -> Response[str]:
        return answer(_invalid_cursor("starting_after"))

    @app.exception_handler(RequestValidationError)
    def validation_error(exc: RequestValidationError) -> Response[str]:
        request_id = request_id_of(app)
        cursor = _cursor_problem(exc.errors())
        if cursor is not None:
            return answer(_invalid_cursor(cursor))
        details = _validation_details(exc.errors())
        invalid_json = any(d["code"] == "json_invalid" for d in details)
        code, message = (
            ("invalid_json", "The body is not valid JSON.")
            if invalid_json
            else ("validation_error", "The request does not match the schema; see details.")
        )
        status = HTTPStatus.BAD_REQUEST if invalid_json else HTTPStatus.UNPROCESSABLE_ENTITY
        body = error_body("invalid_request_error", code, message, request_id, details=details)
        return _error_response(status, body, request_id)

    @app.not_found
    def route_not_found(exc: Exception) -> Response[str]:
        request_id = request_id_of(app)
        event = app.current_event
        allowed = allowed_methods(app, event.path)
        if allowed:
            error = MethodNotAllowedError(
                f"{event.path} answers {', '.join(allowed)}, not {event.http_method}."
            )
            response = _error_response(error.status, error.to_body(request_id), request_id)
            response.headers["Allow"] = ", ".join(allowed)
            return response
        message = f"No route {event.http_method} {event.path}."
        body = error_body("invalid_request_error", "route_not_found", message, request_id)
        return _error_response(HTTPStatus.NOT_FOUND, body, request_id)

    @app.exception_handler(Exception)
    def unexpected_error(exc: Exception) -> Response[str]:
        request_id = request_id_of(app)
        logger.exception("unhandled error", extra={"request_id": request_id})
        body = error_body("api_error", "internal_error", "Something went wrong on our side.", request_id)
        return _error_response(HTTPStatus.INTERNAL_SERVER_ERROR, body, request_id)


def _request_id_header(
    app: ApiGatewayResolver, next_middleware: Callable[..., Response[Any]]
) -> Response[Any]:
    response = next_middleware(app)
    request_id = request_id_of(app)
    if request_id:
        response.headers.setdefault("X-Request-Id", request_id)
    return response


def caller_key_scopes(headers: Mapping[str, str]) -> frozenset[str] | None:
    """The scopes of the API key in ``Authorization`` on a route API Gateway does not authorize (docs,
    readiness); None when no valid key was sent."""
    from neruba import bootstrap

    token = bearer_token(headers.get("Authorization") or headers.get("authorization"))
    key = bootstrap.keys().authenticate(token) if token else None
    return None if key is None else frozenset(key.scopes)


def _docs_guard(app: ApiGatewayResolver, next_middleware: Callable[..., Response[Any]]) -> Response[Any]:
    """In prod, docs (when enabled at all) need an admin key; local and dev serve them openly."""
    if get_settings().docs_require_admin:
        scopes = caller_key_scopes(app.current_event.headers)
        if scopes is None:
            raise AuthenticationError("The API docs need an admin API key here.")
        if "admin" not in scopes:
            raise PermissionDeniedError("The API docs need an API key with the 'admin' scope here.")
    _include_documented(app)
    return next_middleware(app)


def enable_docs(app: APIGatewayRestResolver) -> None:
    """Serve Swagger UI at /docs (``?format=json``: the document it shows) and the OpenAPI document at
    /openapi.json, both behind the docs guard. The document's server is the stage the request came in
    under (none behind a custom domain or on the local stack), so "Try it out" reaches the routes."""

    @app.get("/docs", include_in_schema=False, middlewares=[_docs_guard])
    def swagger_ui() -> Response[str]:
        from pathlib import Path

        from aws_lambda_powertools.event_handler.openapi import swagger_ui as bundle
        from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

        spec = openapi_document(app, server=app._get_base_path() or "/")
        query = app.current_event.query_string_parameters or {}
        if query.get("format") == "json":
            return Response(200, "application/json", spec)
        folder = Path(bundle.__file__).parent
        script = (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
        style = (folder / "swagger-ui.min.css").read_text(encoding="utf-8")
        html = generate_swagger_html(spec.replace("</", "<\\/"), script, style, "", None)
        return Response(200, "text/html", html)

    @app.get("/openapi.json", include_in_schema=False, middlewares=[_docs_guard])
    def openapi_json() -> Response[str]:
        return Response(200, "application/json", openapi_document(app, server=app._get_base_path() or "/"))


def openapi_document(app: APIGatewayRestResolver, server: str = "/") -> str:
    """The OpenAPI 3.1 document of ``app`` as JSON text (tidied: ``neruba.api.reference``)."""
    from aws_lambda_powertools.event_handler.openapi.models import Server

    from neruba.api.reference import tidy

    text = app.get_openapi_json_schema(
        title=API_TITLE,
        description=API_DESCRIPTION,
        version="1.0.0",
        servers=[Server(url=server)],
        security_schemes=security_schemes(),
    )
    return json.dumps(with_webhooks(tidy(json.loads(text))))


def with_webhooks(spec: dict[str, Any]) -> dict[str, Any]:
    """Add OpenAPI 3.1's ``webhooks``: one POST per event type Neruba sends, its body's schema and the
    signature header (the generator has no notion of outgoing requests; docs/webhooks.md)."""
    from neruba.models.webhook_events import PAYLOADS
    from neruba.models.webhooks import EVENT_MODELS

    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    hooks: dict[str, Any] = {}
    for event_type, model in EVENT_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        payload, summary = PAYLOADS[event_type]
        example = {
            "id": "evt_5f0c2a9d13e84b7aa1c2d3e4",
            "object": "event",
            "type": event_type,
            "created": "2026-03-01T12:00:00Z",
            "customer_id": "acme",
            "sequence": 7,
            "data": {"object": (payload.model_json_schema().get("examples") or [{}])[0]},
        }
        hooks[event_type] = {
            "post": {
                "summary": f"{event_type}: {summary}",
                "parameters": [
                    {
                        "name": "Neruba-Signature",
                        "in": "header",
                        "required": True,
                        "description": (
                            "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<raw body>'> (docs/webhooks.md)"
                        ),
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{model.__name__}"},
                            "example": example,
                        }
                    },
                },
                "responses": {"2XX": {"description": "Delivered (any 2xx within 5 seconds)"}},
            }
        }
    spec["webhooks"] = hooks
    return spec


_SERVED: dict[int, tuple[APIGatewayRouter, ...]] = {}
_PENDING_DOCUMENTED: dict[int, Callable[[], Sequence[APIGatewayRouter]]] = {}


def _document(app: APIGatewayRestResolver, routers: Sequence[APIGatewayRouter]) -> None:
    for router in routers:
        if router in _SERVED.get(id(app), ()):
            continue
        owner = router.api_resolver
        app.include_router(router)
        router.api_resolver = owner


def _include_documented(app: ApiGatewayResolver) -> None:
    """Add the routers that ``app`` only documents, on the first docs request (none carry middlewares,
    exception handlers or context, so including them later changes nothing else the app serves)."""
    pending = _PENDING_DOCUMENTED.pop(id(app), None)
    if pending is not None and isinstance(app, APIGatewayRestResolver):
        _document(app, pending())


def build_resolver(
    *routers: APIGatewayRouter,
    docs: bool = False,
    documented: Sequence[APIGatewayRouter] | Callable[[], Sequence[APIGatewayRouter]] = (),
) -> APIGatewayRestResolver:
    """A REST resolver with request validation, the error handlers and ``routers`` included.

    ``docs=True`` adds /docs and /openapi.json when the settings enable docs. ``documented`` routers are
    added to the OpenAPI document only: their routes are registered, but each router keeps answering to
    the resolver that serves it (a Powertools router hands its request state to the last resolver that
    included it, which must never be the docs resolver when several functions share one process, as in
    the local stack and the tests). Given as a callable (``routes.all_routers``), they are imported and
    added on the first docs request only, so that /health and /ready never import every route module.
    """
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_body)
    app.use(middlewares=[_request_id_header])
    for router in routers:
        app.include_router(router)
    _SERVED[id(app)] = tuple(routers)
    if callable(documented):
        _PENDING_DOCUMENTED[id(app)] = documented
    else:
        _document(app, documented)
    _register_error_handlers(app)
    if docs and get_settings().docs_enabled:
        enable_docs(app)
    return app


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise InvalidRequestError("The body is not valid base64.", code="invalid_body") from exc
    return str(body).encode("utf-8", "surrogatepass")


# Set on every answer a handler gives (routes, errors, early refusals): the API answers with account data
# to a key, and no browser or proxy cache may keep any of it.
NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store"}


def with_headers(response: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """``response`` (an API Gateway proxy answer) with ``headers`` set, replacing any of the same name."""
    multi = response.get("multiValueHeaders")
    if isinstance(multi, dict):
        multi.update({name: [value] for name, value in headers.items()})
    if isinstance(response.get("headers"), dict) or not isinstance(multi, dict):
        response["headers"] = {**(response.get("headers") or {}), **headers}
    return response


def make_handler(
    app: APIGatewayRestResolver,
    on_rejected: Callable[[NerubaError], None] | None = None,
    headers: Mapping[str, str] = NO_STORE,
) -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    """The Lambda entry point for ``app``: logging context, metrics flush, the route's scope (checked
    before the body is read or validated), the body size limit, and ``headers`` on every answer."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return with_headers(_answer(event, context), headers)

    def _answer(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        limit = get_settings().max_body_bytes
        try:
            check_scope(app, event)
            raw = _raw_body(event)
            if len(raw) > limit:
                raise PayloadTooLargeError(f"The body is over {limit} bytes.")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRequestError("The body is not UTF-8 text.", code="invalid_body") from exc
            event = json_body_event(app, event, raw)
        except NerubaError as error:
            if on_rejected is not None:
                on_rejected(error)
            request_id = (event.get("requestContext") or {}).get("requestId")
            return {
                "statusCode": error.status,
                "headers": {"Content-Type": "application/json", "X-Request-Id": request_id or ""},
                "body": json.dumps(error.to_body(request_id)),
                "isBase64Encoded": False,
            }
        for router in _SERVED.get(id(app), ()):
            router.api_resolver = app  # the routers answer to the resolver now serving them
        return app.resolve(event, context)

    return lambda_handler
