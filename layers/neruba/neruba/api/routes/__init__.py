"""Routers, one module per resource; each API function includes the routers it serves.

Every module here defines ``router``; :func:`all_routers` finds them all (for the OpenAPI document and the
docs page), so adding a route module needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil

from aws_lambda_powertools.event_handler.router import APIGatewayRouter


def all_routers() -> list[APIGatewayRouter]:
    """Every router of the package, in module-name order (system first)."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__))
    names.sort(key=lambda name: name != "system")
    routers = []
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIGatewayRouter):
            routers.append(router)
    return routers
