"""Operations API (admin scope): run the consistency sweep now and read sweep reports."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import sweeps_admin

app = build_resolver(sweeps_admin.router)
lambda_handler = make_handler(app)
