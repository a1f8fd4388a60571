"""/health, /ready, and when enabled /docs and /openapi.json (which document every route)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import all_routers

app = build_resolver(*all_routers(), docs=True)
lambda_handler = make_handler(app)
