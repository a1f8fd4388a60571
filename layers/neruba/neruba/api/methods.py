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

import json
from collections.abc import Mapping, Sequence

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba.api.resolver import request_id_of
from neruba.errors import MethodNotAllowedError

# every method API Gateway's ANY passes on
ANY_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def powertools_path(path: str) -> str:
    """``/v1/customers/{customer_id}`` -> ``/v1/customers/<customer_id>`` (the resolver's spelling)."""
    return path.replace("{", "<").replace("}", ">")


def methods_router(allowed: Mapping[str, Sequence[str]]) -> APIGatewayRouter:
    """A router answering 405 ``method_not_allowed`` with ``Allow`` on every path of ``allowed``."""
    router = APIGatewayRouter()

    def route_for(path: str, methods: Sequence[str]) -> None:
        allow = ", ".join(sorted(methods))

        def refuse(**_params: str) -> Response[str]:
            event = router.current_event
            error = MethodNotAllowedError(f"{path} answers {allow}, not {event.http_method}.")
            body = error.to_body(request_id_of(router))
            return Response(error.status, "application/json", json.dumps(body), headers={"Allow": allow})

        refuse.__name__ = f"refuse_{path.strip('/').replace('/', '_')}"
        router.route(powertools_path(path), list(ANY_METHODS), include_in_schema=False)(refuse)

    for path, methods in allowed.items():
        route_for(path, methods)
    return router

