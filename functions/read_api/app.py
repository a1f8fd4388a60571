"""GET /v1/...: events, outcomes and usage (read scope)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import usage

app = build_resolver(usage.router)
lambda_handler = make_handler(app)
