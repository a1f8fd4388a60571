"""Completeness on every invoice: the hours of the window closed for late events when it was finalized,
the hours still open (until ``closes_at``), and each late difference recorded since with the invoice that
billed it (the next window invoice here)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, subscribe_real
from tests.functional.billing.helpers import day, schedule, work
from tests.support.api import api_event, call


@pytest.fixture
def api(real: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=real.ctx)
    return lambda_handler


def _bill(world: World, at: Any, monkeypatch: Any) -> None:
    schedule(world, at)
    work(world, at, monkeypatch)


def _completeness(api: Any, invoice_id: str) -> Any:
    path = f"/v1/invoices/{invoice_id}/completeness"
    status, body = call(api, api_event("GET", path, path_parameters={"invoice_id": invoice_id}))[:2]
    assert status == 200, body
    return body


def test_open_hours_at_finalization_and_the_late_events_billed_on_the_next_invoice(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN day 0 billed (12 calls) and finalized an hour after the window
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    assert first["status"] == "finalized"

    # THEN at finalization none of its 24 hours was closed: late events may arrive for 36 days
    before = _completeness(api, first["id"])
    horizon = timedelta(hours=before["late_event_horizon_hours"])
    assert before["late_event_horizon_hours"] == int(real.ctx.late_events / timedelta(hours=1))
    assert before["at_finalization"]["complete_hours"] == 0
    assert before["at_finalization"]["open_hours"] == 24
    closes = datetime.fromisoformat(before["period_end"]) + horizon
    assert datetime.fromisoformat(before["closes_at"]) == closes
    assert before["late_events"] == [] and before["late_amount_minor"] == 0
    assert horizon > timedelta(days=1)

    # WHEN 5 late calls land in day 0 and day 1 is billed
    real.usage("acme", START + day(0, 4), 17)
    _bill(real, START + day(2, 1), monkeypatch)

    # THEN the late difference is listed, applied to day 1's invoice
    second = real.invoices("acme")[2]
    after = _completeness(api, first["id"])
    assert [(e["line_id"], e["quantity"], e["amount_minor"], e["status"]) for e in after["late_events"]] == [
        ("usage:api_calls::0", "5", 500, "applied")
    ]
    assert after["late_events"][0]["applied_to"]["invoice_id"] == second["id"]
    assert after["late_amount_minor"] == 500


def test_hours_older_than_the_horizon_were_complete() -> None:
    from neruba.logic.billing.completeness import hour_ranges
    from neruba.timefmt import parse_ts

    start, end = parse_ts("2026-03-01T00:00:00Z"), parse_ts("2026-03-02T00:00:00Z")
    ranges = hour_ranges(start, end, parse_ts("2026-03-01T10:30:00Z"))
    assert [(r["start"], r["end"], r["hours"]) for r in ranges["complete"]] == [
        ("2026-03-01T00:00:00+00:00", "2026-03-01T10:00:00+00:00", 10)
    ]
    assert [r["hours"] for r in ranges["open"]] == [14]
    assert hour_ranges(start, end, end + timedelta(days=1))["open"] == []
    assert hour_ranges(start, end, start - timedelta(days=1))["complete"] == []
