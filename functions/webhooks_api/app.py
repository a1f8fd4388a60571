"""Webhooks API (admin scope): endpoints, secret rotation, events and their attempts, resend."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import webhooks_admin

app = build_resolver(webhooks_admin.router)
lambda_handler = make_handler(app)
