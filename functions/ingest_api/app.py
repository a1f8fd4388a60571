"""POST /v1/events: validate usage events and queue the valid ones."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import ingest

app = build_resolver(ingest.router)
lambda_handler = make_handler(app)
