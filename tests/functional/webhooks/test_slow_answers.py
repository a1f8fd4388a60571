"""The 5-second limit is on the whole answer, not on each read: a receiver that trickles its status line,
headers or body a byte at a time is cut off at the limit, and its attempt is a failure, not a delivery."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from neruba.logic.webhooks import http

LOOPBACK = "127.0.0.1"
LIMIT = 0.6  # seconds, in place of the 5 s of a real attempt (kept short to keep the test quick)
STEP = 0.15  # each trickled piece comes well within the limit, the whole answer well after it


def trickle(pieces: list[bytes]) -> Iterator[str]:
    """A server that reads the request, then sends ``pieces`` one every ``STEP`` seconds."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            for piece in pieces:
                try:
                    conn.sendall(piece)
                except OSError:
                    return  # the client hung up: what the limit should make it do
                time.sleep(STEP)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/hooks"
    thread.join(timeout=10)
    server.close()


BODY_TRICKLE = [b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n", *[b"x"] * 30]
HEADER_TRICKLE = [b"HTTP/1.1 200 OK\r\n", *[b"X-Pad: %d\r\n" % n for n in range(30)], b"\r\n"]


@pytest.fixture(autouse=True)
def short_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "TIMEOUT_SECONDS", LIMIT)


@pytest.mark.parametrize("pieces", [BODY_TRICKLE, HEADER_TRICKLE], ids=["body", "headers"])
@pytest.mark.parametrize("pinned", [False, True], ids=["resolved", "pinned"])
def test_a_trickled_answer_is_cut_off_at_the_limit_and_is_not_delivered(
    pieces: list[bytes], pinned: bool
) -> None:
    for url in trickle(pieces):
        started = time.monotonic()
        answer = http.post(url, b"{}", {"Content-Type": "application/json"}, "127.0.0.1" if pinned else None)
        elapsed = time.monotonic() - started
        assert answer.status_code == 0, answer
        assert answer.error is not None and "within" in answer.error
        assert elapsed < LIMIT + 0.5  # not the 4.5 s the whole trickle takes


def test_a_quick_answer_is_still_delivered() -> None:
    for url in trickle([b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"]):
        answer = http.post(url, b"{}", {"Content-Type": "application/json"})
        assert answer.status_code == 204, answer
        assert answer.error is None


def _certificate(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (key and certificate files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), False)
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = tmp / "key.pem", tmp / "cert.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def test_a_trickled_answer_over_tls_is_cut_off_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file, cert_file = _certificate(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    monkeypatch.setattr(http.ssl, "create_default_context", lambda: trusting)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        raw, _ = server.accept()
        with server_context.wrap_socket(raw, server_side=True) as conn:
            conn.recv(65536)
            for piece in BODY_TRICKLE:
                try:
                    conn.sendall(piece)
                except OSError:
                    return
                time.sleep(STEP)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started = time.monotonic()
    answer = http.post(f"https://127.0.0.1:{port}/hooks", b"{}", {}, "127.0.0.1")
    assert answer.status_code == 0, answer
    assert time.monotonic() - started < LIMIT + 0.5
    thread.join(timeout=10)
    server.close()
