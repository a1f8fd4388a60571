"""``neruba keys`` against the local stack from a clean shell: no region, no credentials, no ``NERUBA_*``
settings; ``--endpoint-url`` anywhere on the line; one-line errors; rotation with an overlap."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from neruba.dal.keys import KeysRepository
from tests.support.stack import HTTP_TIMEOUT_S

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a shell that has nothing but a PATH and a HOME (as on a fresh machine)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "neruba"), str(ROOT / "infra")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "neruba_tools.cli", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def _status(base: str, key: str) -> int:
    request = urllib.request.Request(base + "/admin/billing-runs", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _field(out: str, name: str) -> str:
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(name + ": "))


def test_first_admin_key_from_a_clean_shell_and_its_rotation(local_stack: Any) -> None:
    moto = local_stack.moto_url
    # WHEN an operator creates the first admin key, --endpoint-url after the subcommand
    created = _cli(
        "keys", "create", "--scope", "admin", "--name", "ops", "--stack", "neruba-it", "--endpoint-url", moto
    )
    assert created.returncode == 0, created.stderr
    key = _field(created.stdout, "API key")
    # THEN it works over HTTP at once
    assert _status(local_stack.base_url, key) == 200

    # WHEN it is rotated with a one-hour overlap, using the prefix that `keys list` shows
    listed = _cli("--endpoint-url", moto, "keys", "list", "--stack", "neruba-it")
    assert listed.returncode == 0, listed.stderr
    key_id = _field(created.stdout, "Key id")
    prefix = next(line.split()[0] for line in listed.stdout.splitlines() if key_id in line)
    rotated = _cli(
        "keys", "rotate", prefix, "--overlap", "1h", "--stack", "neruba-it", "--endpoint-url", moto
    )
    assert rotated.returncode == 0, rotated.stderr
    new_key = _field(rotated.stdout, "API key")
    # THEN both keys work during the overlap, and the listing says until when the old one does
    repo = KeysRepository(local_stack.resources["KeysTable"])
    assert repo.authenticate(key) is not None and repo.authenticate(new_key) is not None
    assert _status(local_stack.base_url, new_key) == 200
    listed = _cli("--endpoint-url", moto, "keys", "list", "--stack", "neruba-it").stdout
    assert "active until" in next(line for line in listed.splitlines() if key_id in line)
    # AND revoking the old one by its prefix ends the overlap now
    revoked = _cli("keys", "revoke", prefix, "--stack", "neruba-it", "--endpoint-url", moto)
    assert revoked.returncode == 0, revoked.stderr
    assert repo.authenticate(key) is None and repo.authenticate(new_key) is not None


def test_mistakes_are_one_readable_line(local_stack: Any) -> None:
    moto = local_stack.moto_url
    unknown = _cli("keys", "create", "--scope", "write", "--stack", "neruba-it", "--endpoint-url", moto)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: unknown scope write; scopes are ingest, read, admin"
    nowhere = _cli("keys", "list")
    assert nowhere.returncode == 2 and len(nowhere.stderr.strip().splitlines()) == 1, nowhere.stderr
    assert "--stack" in nowhere.stderr and not nowhere.stdout
    down = _cli("keys", "list", "--endpoint-url", "http://127.0.0.1:9")
    assert down.returncode == 2 and len(down.stderr.strip().splitlines()) == 1, down.stderr
    assert "Traceback" not in down.stderr and "make run" in down.stderr
    debug = _cli("keys", "list", "--endpoint-url", "http://127.0.0.1:9", "--debug")
    assert "Traceback" in debug.stderr
    bad_id = _cli("keys", "revoke", "not-a-key", "--stack", "neruba-it", "--endpoint-url", moto)
    assert bad_id.returncode == 2 and "not a key id" in bad_id.stderr


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_sweep_json_prints_only_json_on_standard_output(local_stack: Any, debug: list[str]) -> None:
    import json

    # with --debug the shared code's JSON logs go to standard error, never between the reports
    done = _cli("sweep", "--json", "--stack", "neruba-it", "--endpoint-url", local_stack.moto_url, *debug)
    assert done.returncode in (0, 1), done.stderr  # 1: a check found something, still a report
    report = json.loads(done.stdout)
    assert {check["name"] for check in report["checks"]} >= {"usage", "ledger", "billing", "stripe"}


def test_a_stack_name_the_local_endpoint_does_not_have_is_one_line(local_stack: Any) -> None:
    result = _cli("keys", "list", "--endpoint-url", local_stack.moto_url, "--stack", "nosuchstack")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "ResourceNotFoundException" not in result.stderr
    assert "--stack" in result.stderr and "does not exist" in result.stderr


def test_config_check_reads_the_stack_it_is_pointed_at(local_stack: Any) -> None:
    result = _cli("config", "check", "--endpoint-url", local_stack.moto_url, "--stack", "neruba-it")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration OK" in result.stdout
