"""Admin-scope writes: the catalog (customers, meters, plans, subscriptions), customers' usage limits, and
voids and amends of accepted events."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import catalog_admin, events_admin, limits_admin

app = build_resolver(catalog_admin.router, limits_admin.router, events_admin.router)
lambda_handler = make_handler(app)
