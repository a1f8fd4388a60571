"""What the operator types wrong gets one readable line and exit code 2, in a shell that has nothing but a
PATH and a HOME (no region, no credentials, no ``NERUBA_*`` settings)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "neruba"), str(ROOT / "infra")]),
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "-m", "neruba_tools.cli", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def _one_line_usage_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    last = lines[-1]
    for word in words:
        assert word in last, (word, result.stderr)


@pytest.mark.parametrize("command", [["keys", "list"], ["migrate", "--list"], ["dlq", "list"]])
def test_aws_region_alone_is_enough_to_reach_aws(command: list[str]) -> None:
    # GIVEN only AWS_REGION (as docs/deploy.md exports it), no credentials
    result = _cli(*command, "--stack", "neruba-dev", AWS_REGION="us-east-1")
    # THEN the region is resolved: what stops it is the missing credentials, not the region
    assert "NoRegionError" not in result.stderr and "specify a region" not in result.stderr, result.stderr
    assert "credentials" in result.stderr.lower(), result.stderr


def test_no_region_at_all_says_which_variable_to_set() -> None:
    result = _cli("keys", "list", "--stack", "neruba-dev")
    _one_line_usage_error(result, "AWS_REGION")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["keys", "rotate", "4f9c2a1b7d3e", "--overlap", "99999999d"], ["--overlap", "at most"]),
        (["sweep", "--from", "garbage", "--to", "x"], ["--from", "ISO"]),
        (["sweep", "--from", "2026-01-01T00:00:00Z", "--to", "nope"], ["--to", "ISO"]),
        (["dlq", "redrive", "IngestDLQ", "--max", "-1"], ["--max", ">= 1"]),
        (["dlq", "redrive", "IngestDLQ", "--mover", "--max", "0"], ["--max", ">= 1"]),
        (["dlq", "redrive", "IngestDLQ", "--rate", "0"], ["--rate", "1", "500"]),
        (["dlq", "redrive", "IngestDLQ", "--rate", "501"], ["--rate", "1", "500"]),
        (["dlq", "show", "IngestDLQ", "--max", "0"], ["--max", ">= 1"]),
        (["keys", "list", "--endpoint-url", "notaurl"], ["--endpoint-url", "notaurl"]),
        (["dlq", "list", "--endpoint-url", "ftp://127.0.0.1:1"], ["--endpoint-url", "http"]),
        (["smoke", "--endpoint-url", "http://127.0.0.1:1", "--api-key", "k"], ["--base-url"]),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], words: list[str]) -> None:
    _one_line_usage_error(_cli(*args), *words)


@pytest.mark.parametrize("command", [["config", "check"], ["smoke", "--api-key", "k"]])
def test_every_operating_command_takes_stack(command: list[str]) -> None:
    # the README says each command takes --stack NAME: it is understood (and reaches AWS for the names)
    result = _cli(*command, "--stack", "neruba-dev", AWS_REGION="us-east-1")
    assert "unrecognized arguments" not in result.stderr, result.stderr
    assert "credentials" in result.stderr.lower(), result.stderr


@pytest.mark.parametrize("command", [["sweep"], ["sweep", "--json"], ["migrate"], ["migrate", "--list"]])
def test_a_command_without_stack_or_settings_says_what_to_give(command: list[str]) -> None:
    # GIVEN a region but neither --stack, a local --endpoint-url nor NERUBA_* settings
    result = _cli(*command, AWS_REGION="us-east-1")
    # THEN one line names the ways to point the CLI at a stack, in our words (no validator wording)
    _one_line_usage_error(result, "--stack", "--endpoint-url", "NERUBA_OPS_TABLE")
    assert "pydantic" not in result.stderr and "Field required" not in result.stderr, result.stderr
    assert result.stdout == "", result.stdout


def test_a_partial_environment_names_the_missing_settings() -> None:
    # GIVEN only the keys table in the environment (what an older README set)
    result = _cli("sweep", AWS_REGION="us-east-1", NERUBA_KEYS_TABLE="neruba-dev-KeysTable")
    # THEN the line names what is missing, and not what is set
    _one_line_usage_error(result, "NERUBA_OPS_TABLE", "NERUBA_LEDGER_TABLE")
    assert "NERUBA_KEYS_TABLE" not in result.stderr.strip().splitlines()[-1], result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "list", "--stack", "neruba-dev"],
        ["sweep", "--stack", "neruba-dev"],
        ["sweep"],
        ["keys", "list"],
    ],
)
def test_debug_shows_the_traceback_of_a_one_line_error(command: list[str]) -> None:
    # GIVEN a mistake that is normally one line (no credentials, no stack named)
    quiet = _cli(*command, AWS_REGION="us-east-1")
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr, quiet.stderr
    # WHEN it is run again with --debug (docs/deploy.md: "--debug shows a traceback")
    loud = _cli(*command, "--debug", AWS_REGION="us-east-1")
    # THEN the traceback comes first and the same one line ends the output, with the same exit code
    assert loud.returncode == 2, loud.stderr
    assert "Traceback (most recent call last)" in loud.stderr, loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == quiet.stderr.strip().splitlines()[-1]


def test_sweep_list_checks_json_prints_json() -> None:
    import json

    result = _cli("sweep", "--list-checks", "--json")
    assert result.returncode == 0, result.stderr
    names = json.loads(result.stdout)
    assert isinstance(names, list) and "usage" in names and names == sorted(names)


def test_an_endpoint_that_is_not_moto_says_which_endpoint_to_give() -> None:
    import http.server
    import threading

    # GIVEN something that answers HTTP but is no AWS endpoint (the local API's Base URL, say)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = _cli("keys", "list", "--endpoint-url", url)
    finally:
        server.shutdown()
    # THEN one line says it is not an AWS endpoint and where to find the right one
    _one_line_usage_error(result, url, "Moto endpoint")


def test_a_local_endpoint_where_nothing_listens_says_so() -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _cli("dlq", "list", "--endpoint-url", f"http://127.0.0.1:{port}")
    _one_line_usage_error(result, f"127.0.0.1:{port}", "make run")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"AWS_PROFILE": "nope", "AWS_REGION": "us-east-1"}, ["AWS_PROFILE", "nope"]),
        ({"AWS_REGION": "us east 1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}, ["AWS_REGION"]),
    ],
)
def test_a_wrong_profile_or_region_is_a_setup_line(env: dict[str, str], words: list[str]) -> None:
    result = _cli("keys", "list", "--stack", "neruba-dev", **env)
    _one_line_usage_error(result, *words)
    assert "--debug" not in result.stderr, result.stderr
