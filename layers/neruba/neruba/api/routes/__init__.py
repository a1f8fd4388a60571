"""Routers, one module per resource; each API function includes the routers it serves."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter


def all_routers() -> list[APIGatewayRouter]:
    """Every router, for the OpenAPI document and the docs page."""
    from neruba.api.routes import catalog_admin, catalog_read, ingest, system, usage

    return [system.router, ingest.router, usage.router, catalog_read.router, catalog_admin.router]
