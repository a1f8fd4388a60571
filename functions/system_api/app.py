"""/health, /ready, and when enabled /docs and /openapi.json (documenting every route of every API function)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import all_routers

app = build_resolver(*all_routers(), docs=True)
lambda_handler = make_handler(app)
