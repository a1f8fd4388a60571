"""ANY on every API path: the methods API Gateway routes nowhere else answer 405 with ``Allow``."""

from __future__ import annotations

import json
from pathlib import Path

from neruba.api.methods import methods_router
from neruba.api.resolver import build_resolver, make_handler

ALLOWED = json.loads((Path(__file__).resolve().parent / "allowed.json").read_text(encoding="utf-8"))

app = build_resolver(methods_router(ALLOWED))
lambda_handler = make_handler(app)
