"""GET /v1/...: events, outcomes, usage, the catalog, usage limits and entitlements (read scope)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import catalog_read, limits_read, usage

app = build_resolver(usage.router, catalog_read.router, limits_read.router)
lambda_handler = make_handler(app)
