"""A webhook endpoint on 127.0.0.1 for tests: it keeps each raw body and its Stripe-Signature header."""

from __future__ import annotations

import threading
from typing import Any


class Receiver:
    """A webhook endpoint that keeps each raw body and its Stripe-Signature header."""

    def __init__(self, status: int = 200) -> None:
        from http.server import BaseHTTPRequestHandler, HTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((raw, self.headers["Stripe-Signature"]))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
