"""``neruba events void|amend``: the request each command sends, the key a rerun reuses, the exit codes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from neruba_tools.cli import main


@pytest.fixture
def api() -> Iterator[tuple[str, list[dict[str, Any]], list[tuple[int, Any]]]]:
    """A local HTTP server recording each request and answering the queued answers in order."""
    seen: list[dict[str, Any]] = []
    answers: list[tuple[int, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status, answer = answers.pop(0)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen, answers
    server.shutdown()
    server.server_close()


def test_void_and_amend_send_their_body_and_a_key_a_rerun_reuses(api: Any, capsys: Any) -> None:
    url, seen, answers = api
    common = ["--customer", "acme", "--reason", "dup", "--ticket", "T-1", "--base-url", url, "--api-key", "k"]
    answers += [(200, {"status": "voided"})] * 3
    assert main(["events", "void", "tx/1", *common]) == 0
    assert main(["events", "void", "tx/1", *common]) == 0
    assert main(["events", "amend", "tx/1", *common, "--properties", '{"tokens": 1.50}']) == 0
    first, again, amend = seen
    assert first["path"] == "/admin/events/tx%2F1/void"
    assert first["body"] == {"customer_id": "acme", "reason": "dup", "ticket": "T-1"}
    assert first["headers"]["Authorization"] == "Bearer k"
    assert first["headers"]["Idempotency-Key"] == again["headers"]["Idempotency-Key"]
    assert amend["path"] == "/admin/events/tx%2F1/amend"
    assert amend["body"]["properties"] == {"tokens": 1.5}
    assert amend["headers"]["Idempotency-Key"] != first["headers"]["Idempotency-Key"]
    assert '"voided"' in capsys.readouterr().out


def test_a_refusal_prints_its_code_and_exits_1(api: Any, capsys: Any) -> None:
    url, _, answers = api
    answers.append((409, {"error": {"code": "event_already_voided", "message": "The event is voided."}}))
    args = ["events", "void", "t", "--customer", "a", "--reason", "r", "--ticket", "t", "--base-url", url]
    assert main([*args, "--api-key", "k"]) == 1
    assert "event_already_voided" in capsys.readouterr().err


def test_the_base_url_comes_from_nerub_base_url_as_for_every_api_command(
    api: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen, answers = api
    monkeypatch.setenv("NERUBA_BASE_URL", url)
    monkeypatch.setenv("NERUBA_API_KEY", "k")
    answers += [(200, {"status": "voided"})] * 2
    args = ["--customer", "acme", "--reason", "dup", "--ticket", "T-1"]
    assert main(["events", "void", "tx1", *args]) == 0
    assert main(["events", "amend", "tx1", *args]) == 0
    assert [s["path"] for s in seen] == ["/admin/events/tx1/void", "/admin/events/tx1/amend"]


@pytest.mark.parametrize(
    "argv",
    [
        ["events", "void", "t", "--customer", "a", "--reason", "r", "--ticket", "t", "FLAG"],
        ["backfill", "show", "bf_1", "FLAG"],
        ["credit-notes", "FLAG", "show", "cn_1"],
        ["smoke", "FLAG"],
    ],
)
def test_every_api_command_resolves_its_url_the_same_way(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba_tools import api_target
    from neruba_tools.cli import build_parser

    def parsed(*flag: str) -> Any:
        at = argv.index("FLAG")
        return build_parser().parse_args([*argv[:at], *flag, *argv[at + 1 :]])

    monkeypatch.setenv("NERUBA_BASE_URL", "http://from-env.test")
    assert api_target.base_url(parsed()) == "http://from-env.test"
    assert api_target.base_url(parsed("--base-url", "http://flag.test")) == "http://flag.test"
    monkeypatch.delenv("NERUBA_BASE_URL")
    with pytest.raises(Exception, match="NERUBA_BASE_URL"):
        api_target.base_url(parsed())


@pytest.mark.parametrize(
    "argv",
    [
        ["events", "void", "tx1", "--customer", "a", "--reason", "r", "--ticket", "T-1"],
        ["credit-notes", "create", "in_1", "--reason", "r", "--ticket", "T-1"],
        ["backfill", "cancel", "bf_1", "--reason", "r"],
    ],
    ids=["events", "corrections", "backfill"],
)
def test_every_api_command_prints_a_refusal_in_one_shape(argv: list[str], api: Any, capsys: Any) -> None:
    # GIVEN an API refusing with a code, a message and details
    url, _, answers = api
    detail = {"param": "invoice", "code": "dispute_open", "message": "in_9 is disputed"}
    error = {"code": "invoice_conflict", "message": "Wait.", "param": "invoice_id", "details": [detail]}
    answers.append((409, {"error": error}))
    # WHEN any command that calls the API is refused
    code = main([*argv, "--base-url", url, "--api-key", "k"])
    # THEN it exits 1 and prints the same lines: status, code and message, then the details as JSON
    err = capsys.readouterr().err
    assert code == 1
    assert "refused: HTTP 409 invoice_conflict: Wait. (param: invoice_id)\n" in err
    assert json.loads(err[err.index("[") :]) == [detail]
