"""A ``period_anchor`` in the future fixes the phase of the limit periods, as a past one does.

Found over HTTP: PUT .../limits with period_anchor 2027-06-15 (interval month) while now is 2026-12-01 made
a "first period" 2027-06-15..2027-07-15 that does not hold now; events counted into it, alerts were
recorded in it and entitlements answered resets_at 2027-07-15. The rule (docs/limits.md, "A period anchor
in the future"): the periods run before the anchor as after it, so the period holding now is the one of
the anchor's phase around now (here the 15th of a month to the 15th of the next)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from neruba.domain.periods import add_interval
from tests.functional.api.test_limits_api import LIMITS, _get, _put
from tests.functional.webhooks.sources import outbox
from tests.support.api import api_event, call


def test_a_future_anchor_gives_the_period_holding_now_for_caps_alerts_and_entitlements(catalog: Any) -> None:
    from functions.ingest_api.app import lambda_handler as ingest
    from functions.ingest_worker.app import lambda_handler as worker
    from tests.support.aws import queue_url
    from tests.support.queues import drain

    now = datetime.now(UTC)
    anchor = (now + timedelta(days=200)).replace(day=15, hour=0, minute=0, second=0, microsecond=0)
    # GIVEN limits anchored on the 15th of a month about 200 days ahead, a cap of 2 and a metered feature
    body = {
        "interval": "month",
        "period_anchor": anchor.isoformat().replace("+00:00", "Z"),
        "meters": [{"meter_code": "api_calls", "hard_cap": "2"}],
        "features": [{"feature": "calls", "kind": "metered", "meter_code": "api_calls", "limit": "5"}],
    }
    status, answer = _put(body)
    assert status == 200, answer
    # THEN the period shown is the one of the anchor's phase that holds now
    start, end = datetime.fromisoformat(answer["period_start"]), datetime.fromisoformat(answer["period_end"])
    assert start <= now < end, answer
    assert (start.day, end.day) == (15, 15) and add_interval(start, "month", 1) == end
    assert answer["period_anchor"] == body["period_anchor"]
    # WHEN three events arrive now
    calls = [{"transaction_id": f"t{i}", "customer_id": "acme", "code": "api_calls"} for i in range(3)]
    assert call(ingest, api_event("POST", "/v1/events", body={"events": calls}))[0] == 202
    drain(worker, queue_url("IngestQueue"))
    # THEN two count in the period holding now (the third is over the cap) and the cap's alert is in it
    status, read = _get(LIMITS, customer_id="acme")
    assert status == 200 and read["period_start"] == answer["period_start"], read
    assert read["meters"][0]["usage"] == "2"
    alerts = [e["data"] for e in outbox("alert.triggered")]
    assert [(a["kind"], a["period_start"], a["period_end"]) for a in alerts] == [
        ("hard_cap", answer["period_start"], answer["period_end"])
    ]
    # AND the entitlement resets at the end of that period
    status, one = _get("/v1/customers/acme/entitlements/calls", customer_id="acme", feature="calls")
    assert status == 200, one
    assert (one["usage"], one["resets_at"]) == ("2", answer["period_end"])
