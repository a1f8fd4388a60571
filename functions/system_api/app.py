"""/health, /ready, and when enabled /docs and /openapi.json (which document every route)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import all_routers, system

# every route module is imported on the first docs request only, never for /health or /ready
app = build_resolver(system.router, docs=True, documented=all_routers)
lambda_handler = make_handler(app)
