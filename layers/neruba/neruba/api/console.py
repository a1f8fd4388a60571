"""The operator console's files: ``GET /console`` (the page) and ``GET /console/{asset}`` (its scripts
and styles), served without an API key. The page holds no data: the browser reads everything through the
API with the key the operator types in, which stays in the tab's ``sessionStorage``.

Every answer, errors included (an unknown file, another method: 405 with ``Allow``), carries a
Content-Security-Policy that allows scripts, styles and requests from this origin only (no inline
script, no ``eval``), and is never framed. Example (what ``functions/console/app.py`` does)::

    app = build_resolver(console_router(Path(__file__).parent / "static"))
    lambda_handler = console_handler(app)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba.api.resolver import make_handler
from neruba.errors import NotFoundError

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
PAGE = "index.html"
SHOWN_NAME = 64  # a 404 names at most this many characters of what was asked for


def security_headers() -> dict[str, str]:
    """The headers of every console answer."""
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


def assets_in(folder: Path) -> dict[str, Path]:
    """The files the console serves from ``folder``, by name (only known media types, no subfolders)."""
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in MEDIA_TYPES}


def console_router(folder: Path) -> APIGatewayRouter:
    """A router serving the page and the files of ``folder`` (read once, when the function starts)."""
    files = {
        name: (path.read_text(encoding="utf-8"), MEDIA_TYPES[path.suffix])
        for name, path in assets_in(folder).items()
    }
    router = APIGatewayRouter()

    def answer(name: str, page: bool = False) -> Response[str]:
        found = files.get(name) if page or name != PAGE else None
        if found is None:
            shown = name if len(name) <= SHOWN_NAME else name[:SHOWN_NAME] + "…"
            raise NotFoundError(f"The console has no file '{shown}'.", code="not_found", param="asset")
        body, media_type = found
        return Response(200, media_type, body)

    @router.get("/console", include_in_schema=False)
    def page() -> Response[str]:
        return answer(PAGE, page=True)

    @router.get("/console/<asset>", include_in_schema=False)
    def asset(asset: str) -> Response[str]:
        return answer(asset)

    return router


def console_handler(app: Any) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The console function's entry point: ``make_handler(app)`` with the security headers on every
    answer it gives (pages, files, and errors from any layer: 404, 405, 413, 500)."""
    return make_handler(app, headers=security_headers())
