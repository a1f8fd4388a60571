"""Admin-scope writes: the catalog (customers, meters, plans, subscriptions) and customers' usage limits."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import catalog_admin, limits_admin

app = build_resolver(catalog_admin.router, limits_admin.router)
lambda_handler = make_handler(app)
