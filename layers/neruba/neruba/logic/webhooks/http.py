"""One POST to an endpoint: 5 seconds at most for the whole exchange, redirects never followed, the
answer kept short.

The limit is on the whole attempt, not on each read: a socket timeout alone restarts with every byte, so
a receiver trickling its headers or body a byte at a time could hold a worker for minutes and still count
as delivered. A timer shuts the connection down when the limit passes, and an answer that completed only
after it is a failure.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
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


class _Deadline:
    """One attempt's limit: the sockets it opened are shut down when it passes (a blocked read ends)."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut_off = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self._cut_off:
                _shut(sock)

    def stop(self) -> None:
        self._timer.cancel()

    def _cut(self) -> None:
        with self._lock:
            self._cut_off = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to cut
        sock.shutdown(socket.SHUT_RDWR)


def _limited(base: type[http.client.HTTPConnection], deadline: _Deadline, address: str | None) -> Any:
    """A connection class of ``base``'s kind whose socket ``deadline`` watches; with ``address``, it
    connects there instead of resolving the host again (the Host header and, for https, SNI and the
    certificate check keep the URL's host)."""

    class Limited(base):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            if address is not None:

                def create(where: tuple[str, int], *args: Any, **kw: Any) -> socket.socket:
                    return socket.create_connection((address, where[1]), *args, **kw)

                self._create_connection = create
            super().connect()
            deadline.watch(self.sock)

    return Limited


class _Http(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline, address: str | None) -> None:
        super().__init__()
        self.deadline, self.address = deadline, address

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_limited(http.client.HTTPConnection, self.deadline, self.address), req)


class _Https(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline, address: str | None) -> None:
        super().__init__(context=ssl.create_default_context())
        self.deadline, self.address = deadline, address

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        context = self._context  # type: ignore[attr-defined]
        connection = _limited(http.client.HTTPSConnection, self.deadline, self.address)
        return self.do_open(connection, req, context=context)


def post(url: str, body: bytes, headers: dict[str, str], address: str | None = None) -> Answer:
    """POST ``body``; with ``address``, connect to it (an address checked for this attempt) rather than
    resolving the URL's host again."""
    started = time.monotonic()
    if not url.startswith(("https://", "http://")):  # endpoints are checked too (logic.webhooks.urls)
        return Answer(0, 0, "", "invalid_url")
    deadline = _Deadline(TIMEOUT_SECONDS)
    opener = urllib.request.build_opener(_NoRedirect, _Http(deadline, address), _Https(deadline, address))
    error: str | None = None
    try:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            text = response.read(EXCERPT_CHARS * 4).decode("utf-8", "replace")
            code = int(response.status)
    except urllib.error.HTTPError as exc:
        try:
            text = exc.read(EXCERPT_CHARS * 4).decode("utf-8", "replace") if exc.fp else ""
        except (OSError, http.client.HTTPException):
            text = ""  # cut off while reading the error's body
        code = int(exc.code)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # timeout, refused, reset, bad URL
        code, text, error = 0, "", f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS]
    finally:
        deadline.stop()
    elapsed = int((time.monotonic() - started) * 1000)
    if deadline.passed():
        return Answer(0, elapsed, "", f"no complete answer within {TIMEOUT_SECONDS:g} s")
    if error is not None:
        return Answer(0, elapsed, "", error)
    return Answer(code, elapsed, text[:EXCERPT_CHARS])
