"""``neruba smoke`` prints each failure on one line, also when the URL answers something that is not the
API (an XML or HTML page: the moto endpoint, a proxy), and then says which URL to give."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from neruba_tools.smoke import Smoke, SmokeFailure

PAGE = b'<?xml version="1.0"?>\n<Error>\n  <Code>NoSuchBucket</Code>\n  <Message>none</Message>\n</Error>\n'


class _NotTheApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "application/xml")
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_the_api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotTheApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_page_that_is_not_the_api_is_one_line_naming_the_base_url(not_the_api: str) -> None:
    smoke = Smoke(base_url=not_the_api, api_key="k", customer="c", meter="m")
    with pytest.raises(SmokeFailure) as failure:
        smoke.expect("GET", "/health", 200, key=False)
    text = str(failure.value)
    assert "\n" not in text and "404" in text and "NoSuchBucket" in text, text
    assert "--base-url" in text, text
