"""405 for every method a path does not serve, on paths API Gateway would otherwise answer itself.

API Gateway (REST) routes by path and method: a method no event declares never reaches a function. Each
API path therefore also has an ``ANY`` event routed to one small function; API Gateway prefers a
resource's declared methods over its ``ANY``, so only the undeclared ones arrive here. The methods each
path serves come from ``allowed.json`` next to the handler, generated from template.yaml
(``neruba allowed-methods``; tests/infra fails when it differs from the template). Example (what
``functions/method_not_allowed/app.py`` does)::

    app = build_resolver(methods_router({"/v1/events": ["POST"]}))
    lambda_handler = make_handler(app)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba.errors import NotFoundError


def powertools_path(path: str) -> str:
    """``/v1/customers/{customer_id}`` -> ``/v1/customers/<customer_id>`` (the resolver's spelling)."""
    return path.replace("{", "<").replace("}", ">")


def methods_router(allowed: Mapping[str, Sequence[str]]) -> APIGatewayRouter:
    """A router declaring, for each path of ``allowed``, the methods it serves elsewhere.

    Only the other methods reach the function, and for those the resolver's own not-found handler answers
    405 ``method_not_allowed`` with ``Allow`` (the same answer a function gives for a path it serves). A
    declared method reaching this function would mean a routing fault: it answers 404 ``route_not_found``.
    """
    router = APIGatewayRouter()

    def elsewhere(**_params: str) -> None:
        event = router.current_event
        raise NotFoundError(f"No route {event.http_method} {event.path} here.", code="route_not_found")

    for path, methods in allowed.items():
        router.route(powertools_path(path), [m.upper() for m in methods], include_in_schema=False)(elsewhere)
    return router
