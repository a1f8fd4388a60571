"""``make run ARGS="--state-dir DIR"``: stop the local stack, start it again, and the keys, the catalog, the
messages waiting in a queue and the Stripe webhook secret are all still there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.stack import HTTP_TIMEOUT_S

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class Run:
    """One ``neruba local run`` process with the state directory, read from its banner."""

    def __init__(self, state: Path, *extra: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "infra"), str(ROOT / "layers" / "neruba")]),
        }
        env.pop("AWS_ENDPOINT_URL", None)
        command = [sys.executable, "-m", "neruba_tools.local.run", "--template", str(ROOT / "template.yaml")]
        command += ["--port", "0", "--moto-port", "0", "--quiet", "--no-schedules", "--state-dir", str(state)]
        command += list(extra)
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        self.banner: dict[str, str] = {}
        while "Ctrl-C" not in self.banner.get("_last", ""):
            line = self.process.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the stack exited early: {self.process.stderr.read()}"  # type: ignore[union-attr]
            name, _, value = line.partition(": ")
            self.banner[name.strip()] = value.strip()
            self.banner["_last"] = line

    def http(self, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.banner["Base URL"] + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
        )
        request.add_header("Authorization", f"Bearer {key}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def sqs(self) -> Any:
        endpoint = self.banner["Moto endpoint"].split(" ", 1)[0]
        return boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="t",
            aws_secret_access_key="t",
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=60) == 0, self.process.stderr.read()  # type: ignore[union-attr]


def _dlq_url(sqs: Any) -> str:
    return next(url for url in sqs.list_queues()["QueueUrls"] if url.endswith("IngestDLQ"))


def test_a_restarted_stack_keeps_keys_catalog_queued_messages_and_secrets(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Run(state)
    try:
        assert "in memory only" not in first.banner["State"]
        key = first.banner["API key"]
        status, _ = first.http(
            "POST", "/v1/customers", key, {"external_id": "kept", "name": "Kept", "currency": "EUR"}
        )
        assert status == 201
        first.sqs().send_message(QueueUrl=_dlq_url(first.sqs()), MessageBody='{"parked": true}')
        secret = first.banner["Stripe webhook secret"].split()[0]
    finally:
        first.stop()

    second = Run(state)
    try:
        # THEN the first run's key still works and the customer it created is there
        status, customer = second.http("GET", "/v1/customers/kept", key)
        assert status == 200 and customer["currency"] == "EUR"
        # AND the parked message waits in the DLQ, once
        messages = second.sqs().receive_message(QueueUrl=_dlq_url(second.sqs()), MaxNumberOfMessages=10)
        assert [m["Body"] for m in messages.get("Messages", [])] == ['{"parked": true}']
        # AND webhooks signed with the first run's secret still verify
        assert second.banner["Stripe webhook secret"].split()[0] == secret
        assert "restored" in second.banner["State"]
    finally:
        second.stop()


def test_without_a_state_dir_the_banner_says_nothing_is_kept() -> None:
    from types import SimpleNamespace

    from neruba_tools.local.run import banner

    stack = SimpleNamespace(base_url="http://h", moto_url="http://m", schedules={}, state_dir=None)
    assert any("in memory only" in line for line in banner(stack, None))


def test_a_restarted_stack_pays_an_invoice_its_local_stripe_received_before(tmp_path: Path) -> None:
    from tests.support.local_walk import http, synced_invoice, until

    state = tmp_path / "state"
    grace = ("--parameter", "BillingGraceSeconds=1")
    first = Run(state, *grace)
    try:
        # GIVEN an invoice pushed to the local Stripe before a restart
        key, base = first.banner["API key"], first.banner["Base URL"]
        invoice = synced_invoice(base, key)
    finally:
        first.stop()
    second = Run(state, *grace)
    try:
        # WHEN it is paid after the restart
        base = second.banner["Base URL"]
        status, paid = http(base, "POST", f"/_local/stripe/invoices/{invoice['id']}/pay")
        # THEN the local Stripe still has it (same ids) and the payment reaches our invoice
        assert status == 200, paid
        assert paid["stripe_invoice_id"] == invoice["stripe"]["invoice_id"]
        until(
            "the invoice to read paid",
            lambda: http(base, "GET", f"/v1/invoices/{invoice['id']}", key)[1]["status"] == "paid",
        )
    finally:
        second.stop()


def test_after_a_crash_the_queues_are_those_of_the_last_snapshot(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Run(state)
    try:
        first.sqs().send_message(QueueUrl=_dlq_url(first.sqs()), MessageBody='{"discarded": true}')
    finally:
        first.stop()  # a clean stop writes the DLQ with its one message

    second = Run(state, "--snapshot-seconds", "0.5")
    try:
        sqs = second.sqs()
        # WHEN the operator discards that message and another one is parked, then the stack is killed
        sqs.purge_queue(QueueUrl=_dlq_url(sqs))
        sqs.send_message(QueueUrl=_dlq_url(sqs), MessageBody='{"parked": "after"}')
        snapshot = state / "queues" / "IngestDLQ.jsonl"
        deadline = time.monotonic() + 30
        while "after" not in (snapshot.read_text() if snapshot.exists() else ""):
            assert time.monotonic() < deadline, "no queue snapshot while the stack runs"
            time.sleep(0.2)
        time.sleep(1)  # one more snapshot interval, so the purge is certainly in it
    finally:
        second.process.kill()
        second.process.wait(timeout=30)

    third = Run(state)
    try:
        # THEN the restarted stack has the queue as it was at the last snapshot: no discarded message back
        messages = third.sqs().receive_message(QueueUrl=_dlq_url(third.sqs()), MaxNumberOfMessages=10)
        assert [m["Body"] for m in messages.get("Messages", [])] == ['{"parked": "after"}']
    finally:
        third.stop()


def test_a_second_stack_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    # GIVEN a running stack that keeps its state in a directory
    state = tmp_path / "state"
    first = Run(state)
    try:
        key = first.banner["API key"]
        status, _ = first.http(
            "POST", "/v1/customers", key, {"external_id": "mine", "name": "Mine", "currency": "EUR"}
        )
        assert status == 201
        # WHEN a second stack is started on the same directory
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "infra"), str(ROOT / "layers" / "neruba")]),
        }
        second = subprocess.run(
            [sys.executable, "-m", "neruba_tools.local.run", "--template", str(ROOT / "template.yaml"),
             "--port", "0", "--moto-port", "0", "--quiet", "--no-schedules", "--state-dir", str(state)],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False,
        )  # fmt: skip
        # THEN it stops at once with one line naming the directory, and writes nothing there
        assert second.returncode == 2, second.stderr
        assert str(state) in second.stderr.strip().splitlines()[-1] and "Traceback" not in second.stderr
    finally:
        first.stop()
    # AND the first stack's last snapshot is whole: a restart has its customer
    third = Run(state)
    try:
        assert third.http("GET", "/v1/customers/mine", key)[0] == 200
    finally:
        third.stop()
