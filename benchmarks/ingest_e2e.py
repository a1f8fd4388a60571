"""Events per second through the local stack end to end: HTTP POST /v1/events (batches of 100) ->
API function -> SQS (moto server) -> poller -> worker -> DynamoDB, until every event is accepted.

On the local stack every AWS call is an HTTP round trip to a moto server in the same process, so this
measures the code path, not AWS; compare runs on the same machine only.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

EVENTS = 1_000
ROOT = Path(__file__).resolve().parents[1]


def _post(base: str, key: str, events: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(  # noqa: S310 - a loopback URL of the local stack
        f"{base}/v1/events", data=json.dumps({"events": events}).encode(), method="POST"
    )
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        assert response.status == 202


def main() -> dict[str, Any]:
    from neruba.dal.usage import UsageRepository
    from neruba.settings import get_settings
    from neruba_tools.local.seed import seed_demo
    from neruba_tools.local.stack import LocalStack

    with LocalStack("template.yaml", ROOT, schedules=False, stack_name="neruba-bench") as stack:
        demo = seed_demo()
        events = [
            {
                "transaction_id": f"e2e-{i}",
                "customer_id": demo.customer_id,
                "code": demo.meter_code,
                "properties": {"value": 1},
            }
            for i in range(EVENTS)
        ]
        started = time.perf_counter()
        for start in range(0, EVENTS, 100):
            _post(stack.base_url, demo.api_key, events[start : start + 100])
        queued = time.perf_counter() - started
        usage = UsageRepository(get_settings().usage_table)
        from datetime import UTC, datetime, timedelta

        accepted = 0
        deadline = time.monotonic() + 600
        while accepted < EVENTS and time.monotonic() < deadline:
            rows = usage.outcomes(
                datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1)
            )
            accepted = sum(r.counts.get("accepted", 0) for r in rows)
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    return {
        "events": EVENTS,
        "accepted": accepted,
        "seconds_to_queue_all": round(queued, 2),
        "seconds_until_all_accepted": round(elapsed, 2),
        "events_per_second_end_to_end": round(accepted / elapsed, 1),
        "events_per_second_api_only": round(EVENTS / queued, 1),
    }
