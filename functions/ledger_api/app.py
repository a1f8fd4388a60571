"""Balances, ledger and credit grants (read scope); operator money actions and audit (admin scope)."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import ledger_admin, ledger_read

app = build_resolver(ledger_read.router, ledger_admin.router)
lambda_handler = make_handler(app)
