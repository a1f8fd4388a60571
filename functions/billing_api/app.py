"""GET /v1/invoices... (read scope); /admin/billing-runs, /admin/invoices/{id}/rerun and /admin/backfills
(admin scope)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import backfills_admin, billing_admin, discounts_admin, invoices

app = build_resolver(invoices.router, billing_admin.router, discounts_admin.router, backfills_admin.router)
lambda_handler = make_handler(app)
