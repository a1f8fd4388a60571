"""GET/POST /admin/stripe-events...: inspect and replay stored Stripe events (admin scope)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import stripe_admin

app = build_resolver(stripe_admin.router)
lambda_handler = make_handler(app)
