"""One POST to an endpoint: 5 seconds at most, redirects never followed, the answer kept short."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

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


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    started = time.monotonic()
    if not url.startswith(("https://", "http://")):  # endpoints are checked too (logic.webhooks.urls)
        return Answer(0, 0, "", "invalid_url")
    try:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
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
