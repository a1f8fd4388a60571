"""Operations API (admin scope): the consistency sweep, sweep reports, dead-letter queues and redrives."""

from __future__ import annotations

from neruba.api.resolver import build_resolver, make_handler
from neruba.api.routes import dlq_admin, sweeps_admin

app = build_resolver(sweeps_admin.router, dlq_admin.router)
lambda_handler = make_handler(app)
