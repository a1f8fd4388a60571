"""GET /v1/invoices... (read scope); /admin/billing-runs and /admin/invoices/{id}/rerun (admin scope)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import billing_admin, discounts_admin, invoices

app = build_resolver(invoices.router, billing_admin.router, discounts_admin.router)
lambda_handler = make_handler(app)
