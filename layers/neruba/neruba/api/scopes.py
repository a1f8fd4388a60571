"""Who is calling: the principal the authorizer attached to the request, and per-route scope checks.

Example:
    >>> from aws_lambda_powertools.event_handler.router import APIGatewayRouter
    >>> router = APIGatewayRouter()
    >>> @router.get("/v1/things", middlewares=[require_scope("read")])
    ... def list_things() -> dict[str, list[str]]:
    ...     return {"data": []}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, BaseRouter

from neruba.errors import AuthenticationError, PermissionDeniedError
from neruba.security.apikeys import Scope, parse_scopes

BEARER_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a request, as the authorizer described it."""

    key_id: str
    scopes: frozenset[Scope]

    @property
    def actor(self) -> str:
        """How audit records name this caller."""
        return f"key:{self.key_id}"


def principal_from_event(event: Mapping[str, Any]) -> Principal | None:
    """Read the authorizer context of an API Gateway REST proxy event."""
    context = (event.get("requestContext") or {}).get("authorizer") or {}
    key_id = context.get("key_id")
    if not key_id:
        return None
    return Principal(key_id=str(key_id), scopes=parse_scopes(str(context.get("scopes", ""))))


class ScopeMiddleware:
    """Route middleware that lets a request through only with the given scope."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.__name__ = f"require_{scope}_scope"  # Powertools names middleware frames

    def __call__(
        self, app: ApiGatewayResolver, next_middleware: Callable[..., Response[Any]]
    ) -> Response[Any]:
        principal = principal_from_event(app.current_event.raw_event)
        if principal is None:
            raise AuthenticationError("Send an API key as 'Authorization: Bearer KEY'.")
        if self.scope not in principal.scopes:
            raise PermissionDeniedError(f"This route needs an API key with the '{self.scope}' scope.")
        app.append_context(principal=principal)
        return next_middleware(app)


def require_scope(scope: Scope) -> Callable[..., Any]:
    """The middleware for a route that needs ``scope``."""
    return ScopeMiddleware(scope)


def find_route(app: Any, method: str, path: str) -> Any | None:
    """The route of ``app`` serving ``method path``, or None."""
    for route in [*app._static_routes, *app._dynamic_routes]:
        if route.method == method.upper() and route.rule.match(path):
            return route
    return None


def allowed_methods(app: Any, path: str) -> list[str]:
    """The methods ``app`` serves at ``path`` (empty when it serves none there)."""
    routes = [*app._static_routes, *app._dynamic_routes]
    return sorted({route.method for route in routes if route.rule.match(path)})


def route_scope(app: Any, method: str, path: str) -> Scope | None:
    """The scope the route matching ``method path`` requires, or None (public or no such route).

    The resolver validates a request against its schema before route middlewares run, so the handler
    checks the scope with this first: a key without the scope gets 403 before any validation detail of a
    route it may not call.
    """
    route = find_route(app, method, path)
    for middleware in route.middlewares if route is not None else ():
        if isinstance(middleware, ScopeMiddleware):
            return middleware.scope
    return None


def check_scope(app: Any, event: Mapping[str, Any]) -> None:
    """Raise AuthenticationError / PermissionDeniedError when the caller may not call this route."""
    scope = route_scope(app, str(event.get("httpMethod") or ""), str(event.get("path") or ""))
    if scope is None:
        return
    principal = principal_from_event(event)
    if principal is None:
        raise AuthenticationError("Send an API key as 'Authorization: Bearer KEY'.")
    if scope not in principal.scopes:
        raise PermissionDeniedError(f"This route needs an API key with the '{scope}' scope.")


def current_principal(app: BaseRouter) -> Principal:
    """The principal a ScopeMiddleware admitted (call only inside a scoped route)."""
    principal = app.context.get("principal")
    if not isinstance(principal, Principal):
        raise AuthenticationError("Send an API key as 'Authorization: Bearer KEY'.")
    return principal
