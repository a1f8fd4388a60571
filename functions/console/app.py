"""The operator console: ``GET /console`` and its files (no API key; the page reads the API itself)."""

from __future__ import annotations

from pathlib import Path

from neruba.api.console import console_handler, console_router
from neruba.api.resolver import build_resolver

app = build_resolver(console_router(Path(__file__).resolve().parent / "static"))
lambda_handler = console_handler(app)
