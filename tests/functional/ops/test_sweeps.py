"""The consistency sweep through its entry points: POST/GET /admin/sweeps, `neruba sweep`, the schedule;
the check registry (one function per check)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from neruba.dal.usage import UsageRepository
from neruba.logic.sweeps import runner as sweeps
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.support.api import api_event, call
from tests.support.contract import FULL_Z, time_problems
from tests.support.lambda_context import FakeContext
from tests.support.usage import set_cell


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches count as settled at once (in production only after 15 minutes)."""
    from neruba.logic.sweeps import usage as sweep

    monkeypatch.setattr(sweep, "SETTLE", timedelta(0))


def _ops_api() -> Any:
    from functions.ops_api.app import lambda_handler

    return lambda_handler


def _corrupt_tokens_aggregate(value: int) -> None:
    usage = UsageRepository(get_settings().usage_table)
    item = usage.aggregates("acme", "tokens", "0000", "9999")[0]
    set_cell(item, s={"N": str(value)})  # its one batch


def _tokens_sum() -> Any:
    usage = UsageRepository(get_settings().usage_table)
    return sum(a.usage.total or 0 for a in usage.aggregates("acme", "tokens", "0000", "9999"))


def test_post_sweeps_repairs_drift_and_the_report_is_readable(send: Any, process: Any, settled: None) -> None:
    # GIVEN counted events whose aggregate drifted
    send(*[ev(f"d{i}", code="tokens", properties={"tokens": 4, "model": "m"}) for i in range(5)])
    process()
    _corrupt_tokens_aggregate(7)
    # WHEN an operator runs the usage check through the API
    status, report, _ = call(
        _ops_api(), api_event("POST", "/admin/sweeps", body={"checks": ["usage"]}, scopes="admin")
    )
    # THEN the drift is repaired, reported with its ids, and the aggregate holds the truth again
    assert status == 201, report
    assert report["trigger"] == "api" and report["actor"] == "key:0123456789ab"
    (check,) = report["checks"]
    assert (check["name"], check["found"], check["repaired"], check["error"]) == ("usage", 1, 1, None)
    repair = check["repairs"][0]
    assert repair["customer_id"] == "acme" and repair["meter"] == "tokens"
    assert repair["before"]["quantity"] == "7" and repair["after"]["quantity"] == "20"
    assert _tokens_sum() == 20
    # AND the report reads back by id and is listed first
    status, stored, _ = call(
        _ops_api(),
        api_event(
            "GET", f"/admin/sweeps/{report['id']}", path_parameters={"sweep_id": report["id"]}, scopes="admin"
        ),
    )
    assert status == 200 and stored == report
    status, listed, _ = call(_ops_api(), api_event("GET", "/admin/sweeps", scopes="admin"))
    assert status == 200 and listed["object"] == "list"
    assert listed["data"][0]["id"] == report["id"] and listed["data"][0]["repaired"] == 1
    # AND a second sweep finds nothing to repair
    status, again, _ = call(_ops_api(), api_event("POST", "/admin/sweeps", body={}, scopes="admin"))
    assert status == 201 and again["found"] == 0 and again["repaired"] == 0


def test_sweeps_need_the_admin_scope_a_known_check_and_a_bounded_window(aws: dict[str, str]) -> None:
    handler = _ops_api()
    status, body, _ = call(handler, api_event("POST", "/admin/sweeps", body={}, scopes="read ingest"))
    assert (status, body["error"]["code"]) == (403, "insufficient_scope")
    status, body, _ = call(handler, api_event("GET", "/admin/sweeps", scopes="read"))
    assert status == 403
    status, body, _ = call(
        handler, api_event("POST", "/admin/sweeps", body={"checks": ["nope"]}, scopes="admin")
    )
    assert (status, body["error"]["code"]) == (400, "unknown_check")
    wide = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T07:00:00Z"}
    status, body, _ = call(handler, api_event("POST", "/admin/sweeps", body=wide, scopes="admin"))
    assert (status, body["error"]["code"]) == (400, "window_too_large")
    backwards = {"from": "2026-01-01T02:00:00Z", "to": "2026-01-01T01:00:00Z"}
    status, body, _ = call(handler, api_event("POST", "/admin/sweeps", body=backwards, scopes="admin"))
    assert (status, body["error"]["code"]) == (400, "invalid_window")
    status, body, _ = call(
        handler, api_event("POST", "/admin/sweeps", body={"from": "2026-01-01T00:00:00"}, scopes="admin")
    )
    assert status == 422  # a time without a zone
    missing = "swp_" + "0" * 20
    status, body, _ = call(
        handler,
        api_event("GET", f"/admin/sweeps/{missing}", path_parameters={"sweep_id": missing}, scopes="admin"),
    )
    assert (status, body["error"]["code"]) == (404, "sweep_not_found")


def test_the_cli_sweep_adopts_uncounted_events(
    send: Any, worker: Any, settled: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN events written by a worker that died before counting them
    from neruba.logic.ingest import worker as ingest_worker
    from neruba_tools.cli import main
    from neruba_tools.local.pollers import build_sqs_event
    from tests.support.aws import queue_url
    from tests.support.queues import receive_batch

    send(*[ev(f"k{i}", code="tokens", properties={"tokens": 2, "model": "m"}) for i in range(3)])
    messages = receive_batch(queue_url("IngestQueue"), 10)

    def die(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("killed")

    with monkeypatch.context() as patch:
        patch.setattr(ingest_worker.IngestBatch, "finish", die)
        with pytest.raises(SystemExit):
            worker(build_sqs_event(messages, queue_arn="arn:aws:sqs:us-east-1:123456789012:q"), FakeContext())
    assert _tokens_sum() == 0
    # WHEN the operator runs `neruba sweep --check usage` over the last minutes
    start = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    code = main(["sweep", "--check", "usage", "--from", start, "--to", end])
    # THEN the three events are counted once and the printed report names what was repaired
    out = capsys.readouterr().out
    assert code == 0, out
    assert _tokens_sum() == 6
    assert "repaired 1" in out and '"kind": "uncounted"' in out and "k0" in out
    # AND it gives its times as the API does, in full UTC with Z (the window, each repair's cell hour)
    header = out.splitlines()[0].split()
    assert FULL_Z.match(header[2]) and FULL_Z.match(header[4].rstrip(":")), header
    repairs = [
        json.loads(line.split("repaired ", 1)[1]) for line in out.splitlines() if "    repaired " in line
    ]
    assert repairs and time_problems(repairs) == [], repairs


def test_a_check_is_one_registered_function_and_a_failing_check_does_not_hide_others(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two extra checks: one that repairs something, one that raises
    monkeypatch.setattr(sweeps, "_registered", {})

    def extra(ctx: sweeps.SweepContext) -> sweeps.CheckResult:
        return sweeps.CheckResult(
            "extra", checked={"postings": 3}, found=1, repaired=1, repairs=[{"posting_id": "p1"}]
        )

    def broken(ctx: sweeps.SweepContext) -> sweeps.CheckResult:
        raise RuntimeError("boom")

    sweeps.register_check("extra", extra)
    sweeps.register_check("broken", broken)
    assert sweeps.check_names() == [
        "billing",
        "broken",
        "corrections",
        "extra",
        "ledger",
        "notices",
        "receivable",
        "stripe",
        "thresholds",
        "usage",
        "voids",
    ]
    # WHEN the scheduled sweep runs every check
    from functions.sweeper.app import lambda_handler

    result = lambda_handler({}, FakeContext())
    # THEN each check is in the stored report; the failure is reported and the others ran
    from neruba.dal.ops import OpsRepository

    stored = OpsRepository(get_settings().ops_table).get_sweep_report(result["id"])
    assert stored is not None
    report = stored.document
    assert report["status"] == "failed" and report["trigger"] == "schedule"
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["broken"]["error"] == "RuntimeError: boom"
    assert by_name["extra"]["repairs"] == [{"posting_id": "p1"}] and report["repaired"] == 1
    assert all(
        by_name[name]["error"] is None for name in ("usage", "ledger", "billing", "stripe", "thresholds")
    )
