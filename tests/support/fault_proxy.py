"""A local HTTP proxy that injects faults between a client and the local stack.

Each request gets a fault drawn from ``random.Random(f"{seed}:{n}")`` where ``n`` is its arrival number,
so a client that sends its requests one after another meets the same faults on every run:

- ``error_before``: answer 500 without forwarding (the stack never sees the request);
- ``error_after``: forward, then answer 500 instead of the stack's answer (the stack did the work);
- ``drop_before`` / ``drop_after``: close the connection without an answer, before or after forwarding;
- ``delay``: forward, then hold the answer ``delay_seconds`` (past the client's timeout) before sending it;
- ``pass``: forward and relay the answer.

Only requests whose method and path match ``faulty`` (default: POST /v1/events) meet faults; the others
are forwarded as they are.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}


@dataclass(frozen=True, slots=True)
class FaultPlan:
    seed: int = 19
    error_before: float = 0.08
    error_after: float = 0.08
    drop_before: float = 0.05
    drop_after: float = 0.08
    delay: float = 0.06
    delay_seconds: float = 3.0

    def fault(self, number: int) -> str:
        draw = random.Random(f"{self.seed}:{number}").random()
        for name in ("error_before", "error_after", "drop_before", "drop_after", "delay"):
            draw -= getattr(self, name)
            if draw < 0:
                return name
        return "pass"


def _events_post(method: str, path: str) -> bool:
    return method == "POST" and path.split("?")[0] == "/v1/events"


class FaultProxy:
    def __init__(
        self, upstream: str, plan: FaultPlan, faulty: Callable[[str, str], bool] = _events_post
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.plan = plan
        self.faulty = faulty
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._arrivals = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_fault(self, method: str, path: str) -> str:
        if not self.faulty(method, path):
            fault = "untouched"
        else:
            with self._lock:
                self._arrivals += 1
                number = self._arrivals
            fault = self.plan.fault(number)
        with self._lock:
            self.counts[fault] += 1
        return fault

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                fault = proxy._next_fault(self.command, self.path)
                if fault in ("drop_before", "error_before"):
                    if fault == "drop_before":
                        self._drop()
                    else:
                        self._answer(500, [], self._error_body())
                    return
                status, answer_headers, answer = proxy._forward(self.command, self.path, headers, body)
                if fault == "drop_after":
                    self._drop()
                elif fault == "error_after":
                    self._answer(500, [], self._error_body())
                else:
                    if fault == "delay":
                        time.sleep(proxy.plan.delay_seconds)
                    self._answer(status, answer_headers, answer)

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)

            @staticmethod
            def _error_body() -> bytes:
                error = {
                    "type": "api_error",
                    "code": "internal_error",
                    "message": "injected fault",
                    "request_id": None,
                }
                return json.dumps({"error": error}).encode()

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                try:
                    self._write(status, headers, body)
                except OSError:  # the client gave up waiting (its timeout) and closed the connection
                    self.close_connection = True

            def _write(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                if not any(n.lower() == "content-type" for n, _ in headers):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        return Handler
