"""An amount cap reached fires its own alert, once per period (docs/limits.md, "The amount cap's alert").

Found over HTTP: a unit hard cap reached fires ``hard:N`` (kind ``hard_cap``) but an amount hard cap
reached exactly fired nothing. The rule: the meter's amount going from below ``hard_cap_amount_minor`` to
it fires ``alert.triggered`` kind ``hard_cap_amount`` (``alert`` ``hard_amount:{minor}``, ``threshold_minor``
and ``currency`` in the typed ``alerts_fired``), by the write that counts it, once per level and period,
under redelivery too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.functional.ingest.conftest import ev
from tests.functional.ingest.test_limit_amounts import NOW, _at, _limits, _put, priced
from tests.functional.ingest.test_limits import _batch, _run, _statuses
from tests.functional.webhooks.sources import outbox
from tests.support.aws import queue_url
from tests.support.queues import receive_batch

__all__ = ["priced"]


def _amount_alerts() -> list[dict[str, Any]]:
    return [e["data"] for e in outbox("alert.triggered") if e["data"]["kind"] == "hard_cap_amount"]


def test_an_amount_cap_reached_exactly_fires_one_alert_per_period(
    priced: Any, send: Any, process: Any, read: Any
) -> None:
    from neruba.models.limits import UsageLimits
    from neruba_client.models import AlertTriggeredData
    from neruba_client.models import UsageLimits as ClientLimits

    # GIVEN acme may spend 12.00 a month on gb_out (1.00 a GB up to 10, 0.50 above)
    status, body = _put({"meters": [{"meter_code": "gb_out", "hard_cap_amount_minor": 1200}]})
    assert status == 200, body
    # WHEN 8 and 6 GB arrive (8.00 then 12.00: exactly on the cap), sent twice and redelivered
    base = NOW - timedelta(minutes=5)
    events = [
        ev(f"g{i}", code="gb_out", timestamp=_at(base, i), properties={"gb": n}) for i, n in enumerate((8, 6))
    ]
    send(*events)
    send(*events)
    messages = receive_batch(queue_url("IngestQueue"), 10)
    first = _batch()
    assert _run(first, messages) == []
    assert _run(_batch(first.now + timedelta(seconds=200)), messages) == []
    process()
    assert _statuses(read, "acme", ["g0", "g1"]) == {"g0": "accepted", "g1": "accepted"}
    # AND one more event is refused over the cap
    send(ev("g2", code="gb_out", properties={"gb": "0.01"}))
    process()
    assert _statuses(read, "acme", ["g2"]) == {"g2": "over_limit"}
    # THEN one alert fired, in the current period, naming the cap in minor units
    limits = _limits()
    (alert,) = _amount_alerts()
    assert (alert["alert"], alert["meter_code"], alert["threshold"], alert["currency"]) == (
        "hard_amount:1200", "gb_out", "1200", "USD",
    )  # fmt: skip
    assert (alert["amount_minor"], alert["usage"], alert["late"]) == (1200, "14", False)
    assert (alert["period_start"], alert["period_end"]) == (limits["period_start"], limits["period_end"])
    AlertTriggeredData.model_validate(alert)
    # AND the typed read model shows it fired
    (row,) = limits["meters"]
    assert row["alerts_fired"] == [
        {
            "alert": "hard_amount:1200",
            "kind": "hard_cap_amount",
            "meter_code": "gb_out",
            "threshold": None,
            "threshold_minor": 1200,
            "currency": "USD",
            "period_start": limits["period_start"],
            "period_end": limits["period_end"],
        }
    ]
    UsageLimits.model_validate(limits)
    ClientLimits.model_validate(limits)
