"""Hard caps, soft caps and alerts decided by the ingest worker with the contribution that counts the
usage (logic/limits): never past a cap under parallel batches, one alert per level and period under
duplicate storms and redelivery, late events and the period's reset as docs/limits.md states."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from neruba import bootstrap
from neruba.logic.idempotency import Actor
from neruba.logic.limits.settings import get_limits, put_limits
from neruba.models.limits import UsageLimitsIn
from tests.functional.ingest.conftest import ev
from tests.functional.webhooks.sources import outbox
from tests.support.aws import queue_url
from tests.support.queues import receive_batch, run_batch

NOW = datetime.now(UTC)


def _limits(customer: str = "acme", **meters: dict[str, Any]) -> dict[str, Any]:
    body = UsageLimitsIn.model_validate(
        {"meters": [{"meter_code": code, **limits} for code, limits in meters.items()]}
    )
    return put_limits(customer, body, None, Actor("test"))


def _usage(meter: str = "api_calls", customer: str = "acme") -> Decimal:
    rows = {row["meter_code"]: row for row in get_limits(customer)["meters"]}
    return Decimal(rows[meter]["usage"])


def _statuses(read: Callable[..., Any], customer: str, ids: list[str]) -> dict[str, str]:
    found = {}
    for tx in ids:
        status, body = read(
            f"/v1/events/{tx}", query={"customer_id": customer}, path_parameters={"transaction_id": tx}
        )
        assert status == 200, body
        found[tx] = body["status"]
    return found


def _counted(meter: str = "api_calls", customer: str = "acme") -> int:
    from neruba.dal.usage import UsageRepository
    from neruba.settings import get_settings

    hour = NOW.replace(minute=0, second=0, microsecond=0)
    cells = UsageRepository(get_settings().usage_table).aggregates(
        customer, meter, (hour - timedelta(days=40)).strftime("%Y-%m-%dT%H"), (hour + timedelta(hours=2)).strftime("%Y-%m-%dT%H")
    )
    return sum(cell.usage.count for cell in cells)


def test_events_past_a_hard_cap_are_refused_over_limit_and_not_counted(
    send: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN acme may send 3 api_calls a period
    _limits(api_calls={"hard_cap": "3"})
    # WHEN 5 events arrive in one batch
    send(*(ev(f"t{i}", properties={}) for i in range(5)))
    process()
    # THEN the first 3 (by timestamp, then id) count; the last 2 are refused over_limit, uncounted
    statuses = _statuses(read, "acme", [f"t{i}" for i in range(5)])
    assert sorted(statuses.values()) == ["accepted"] * 3 + ["over_limit"] * 2
    assert _counted() == 3
    assert _usage() == 3
    # AND the outcome counters show them
    span = {"from": (NOW - timedelta(hours=1)).isoformat(), "to": (NOW + timedelta(hours=1)).isoformat()}
    status, body = read("/v1/ingest/outcomes", query=span)
    assert status == 200, body
    assert body["totals"]["accepted"] == 3 and body["totals"]["over_limit"] == 2
