"""One POST to an endpoint: 5 seconds at most, redirects never followed, the answer kept short."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TIMEOUT_SECONDS = 5.0
EXCERPT_CHARS = 500


@dataclass(frozen=True)
class Answer:
    status_code: int  # 0 when no HTTP answer came
    latency_ms: int
    excerpt: str
    error: str | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx is the answer itself: not delivered, and never followed


_opener = urllib.request.build_opener(_NoRedirect)


def _pinned(connection: type[http.client.HTTPConnection], address: str) -> Callable[..., Any]:
    """A connection class of ``connection``'s kind that connects to ``address`` instead of resolving
    the host again (the Host header and, for https, SNI and the certificate check keep the URL's host)."""

    def make(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = connection(host, **kwargs)

        def create(where: tuple[str, int], *args: Any, **kw: Any) -> socket.socket:
            return socket.create_connection((address, where[1]), *args, **kw)

        conn._create_connection = create  # type: ignore[attr-defined]
        return conn

    return make


class _PinnedHttp(urllib.request.HTTPHandler):
    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_pinned(http.client.HTTPConnection, self.address), req)


class _PinnedHttps(urllib.request.HTTPSHandler):
    def __init__(self, address: str) -> None:
        super().__init__(context=ssl.create_default_context())
        self.address = address

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        context = self._context  # type: ignore[attr-defined]
        return self.do_open(_pinned(http.client.HTTPSConnection, self.address), req, context=context)


def post(url: str, body: bytes, headers: dict[str, str], address: str | None = None) -> Answer:
    """POST ``body``; with ``address``, connect to it (an address checked for this attempt) rather than
    resolving the URL's host again."""
    started = time.monotonic()
    if not url.startswith(("https://", "http://")):  # endpoints are checked too (logic.webhooks.urls)
        return Answer(0, 0, "", "invalid_url")
    opener = _opener
    if address is not None:
        opener = urllib.request.build_opener(_NoRedirect, _PinnedHttp(address), _PinnedHttps(address))
    try:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            text = response.read(EXCERPT_CHARS * 4).decode("utf-8", "replace")
            code = int(response.status)
    except urllib.error.HTTPError as exc:
        text = exc.read(EXCERPT_CHARS * 4).decode("utf-8", "replace") if exc.fp else ""
        code = int(exc.code)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # timeout, refused, reset, bad URL
        elapsed = int((time.monotonic() - started) * 1000)
        return Answer(0, elapsed, "", f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS])
    elapsed = int((time.monotonic() - started) * 1000)
    return Answer(code, elapsed, text[:EXCERPT_CHARS])
