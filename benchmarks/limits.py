"""Write units per accepted event with usage limits (a hard cap and alert levels on every customer's meter)
against the same workload without limits, in the same run, through the real ingest worker on moto; and the
time from a batch's start to the ``alert.triggered`` it writes (the alert commits in the batch's own
transaction, so this is the batch's time on the local emulator).

    python -m benchmarks.limits            # writes benchmarks/results/limits.json
    python -m benchmarks.limits amounts    # adds the amounts run (an amount cap and spend alerts) to it

The amounts run prices usage, which a grouped meter does not allow (docs/limits.md, "Which prices take an
amount"): both of its sides use an ungrouped ``tokens`` meter charged by a graduated plan, once without
limits and once with an amount cap no event reaches and two spend alert levels on every customer.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from typing import Any

import boto3

from benchmarks.capacity import Meter
from benchmarks.ingest_writes import (
    BATCH,
    EVENTS,
    HEADLINE,
    RESULTS,
    SHAPES,
    Shape,
    _Context,
    _events,
    _records,
    _setup_catalog,
)

TARGET_EXTRA_WRITE_UNITS = 0.2


def _limits(customers: int) -> None:
    """A hard cap no event reaches and three alert levels the workload crosses, on every customer."""
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    body = UsageLimitsIn.model_validate(
        {
            "meters": [
                {"meter_code": "tokens", "hard_cap": "1000000", "soft_cap": "500", "alerts": ["100", "300"]}
            ]
        }
    )
    for c in range(customers):
        put_limits(f"cust-{c}", body, None, Actor("bench"))


def _priced_catalog(customers: int) -> None:
    """Customers, an ungrouped ``tokens`` meter, a graduated plan on it and a subscription per customer
    since the start of last month."""
    from datetime import timedelta

    from neruba import bootstrap
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Customer, PlanCreate, SubscriptionCreate
    from neruba.models.catalog import Meter as MeterModel

    plans = bootstrap.plans()
    for c in range(customers):
        plans.create_customer(Customer(external_id=f"cust-{c}", name=f"Customer {c}", currency="USD"))
    plans.create_meter(MeterModel(code="tokens", name="Tokens", aggregation="sum", field="tokens"))
    tiers = [{"up_to": "100", "unit_price": "0.01"}, {"up_to": None, "unit_price": "0.005"}]
    plan = {
        "code": "bench",
        "name": "Bench",
        "currency": "USD",
        "interval": "month",
        "charges": [{"meter_code": "tokens", "model": "graduated", "tiers": tiers}],
    }
    create_plan(plans, PlanCreate.model_validate(plan))
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (month - timedelta(days=1)).replace(day=1)
    for c in range(customers):
        body = SubscriptionCreate(customer_id=f"cust-{c}", plan_code="bench", start_at=start)
        create_subscription(plans, body, f"bench-{c}", now=start)


def _amount_limits(customers: int) -> None:
    """An amount cap no event reaches on tokens, and spend alerts at 1.00 and 3.00, on every customer."""
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    body = UsageLimitsIn.model_validate(
        {
            "meters": [{"meter_code": "tokens", "hard_cap_amount_minor": 10**9}],
            "spend_alerts_minor": [100, 300],
        }
    )
    for c in range(customers):
        put_limits(f"cust-{c}", body, None, Actor("bench"))


def _run(with_limits: bool, shape: Shape = HEADLINE, amounts: bool = False) -> dict[str, Any]:
    from moto import mock_aws

    from functions.ingest_worker import app
    from neruba import bootstrap
    from neruba.dal.clients import client
    from neruba.settings import get_settings
    from tests.support.aws import create_resources

    customers = shape.customers_per_batch
    with mock_aws():
        bootstrap.reset()
        create_resources()
        if amounts:
            _priced_catalog(customers)
        else:
            _setup_catalog(customers)
        if with_limits:
            (_amount_limits if amounts else _limits)(customers)
        records = _records(_events(shape))
        meter = Meter()
        meter.attach(client("dynamodb"), boto3.client("dynamodb"))
        first_alert_seconds = None
        started = time.perf_counter()
        for start in range(0, len(records), BATCH):
            batch_started = time.perf_counter()
            response = app.lambda_handler({"Records": records[start : start + BATCH]}, _Context())
            assert response["batchItemFailures"] == [], response
            if with_limits and first_alert_seconds is None and _alerts(get_settings().ops_table):
                first_alert_seconds = round(time.perf_counter() - batch_started, 3)
        elapsed = time.perf_counter() - started
        alerts = _alerts(get_settings().ops_table) if with_limits else 0
    return {
        "write_units": meter.total_write_units,
        "write_units_per_event": round(meter.total_write_units / EVENTS, 3),
        "requests_per_event": round(meter.dynamodb_requests / EVENTS, 3),
        "write_units_by_item": dict(sorted(meter.write_units.items())),
        "requests_by_operation": dict(sorted(meter.requests.items())),
        "seconds_on_moto": round(elapsed, 2),
        "alerts_written": alerts,
        "seconds_batch_start_to_first_alert": first_alert_seconds,
    }


def _alerts(ops_table: str) -> int:
    items = boto3.client("dynamodb").scan(TableName=ops_table)["Items"]
    return sum(1 for i in items if i["pk"]["S"].startswith("WHOUT#") and "alert.triggered" in i["doc"]["S"])


def main() -> dict[str, Any]:
    """The headline shape (10 customers per batch) and one customer per batch, limits off then on."""
    shapes = []
    for shape in (HEADLINE, SHAPES[0]):
        off, on = _run(False, shape), _run(True, shape)
        extra = round(on["write_units_per_event"] - off["write_units_per_event"], 3)
        shapes.append(
            {
                "shape": shape.name,
                "events_per_limited_write": BATCH // shape.customers_per_batch,
                "limits_off": off,
                "limits_on": on,
                "extra_write_units_per_event": extra,
            }
        )
    headline = shapes[0]
    result = {
        "benchmark": "usage limits write cost",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()} Python {platform.python_version()}",
        "workload": {"events": EVENTS, "batch": BATCH, "customers": HEADLINE.customers_per_batch},
        **{k: headline[k] for k in ("limits_off", "limits_on", "extra_write_units_per_event")},
        "shapes": shapes,
        "target_extra_write_units_at_most": TARGET_EXTRA_WRITE_UNITS,
        "within_target": headline["extra_write_units_per_event"] <= TARGET_EXTRA_WRITE_UNITS,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "limits.json"
    if path.exists() and "amounts" in (before := json.loads(path.read_text())):
        result["amounts"] = before["amounts"]  # measured on its own (``amounts``)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def amounts() -> dict[str, Any]:
    """The headline shape on a priced, ungrouped meter: no limits, then an amount cap and spend alerts;
    added to ``results/limits.json`` under ``amounts`` (the other runs are kept)."""
    off, on = _run(False, HEADLINE, amounts=True), _run(True, HEADLINE, amounts=True)
    extra = round(on["write_units_per_event"] - off["write_units_per_event"], 3)
    section = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "shape": HEADLINE.name,
        "events_per_limited_write": BATCH // HEADLINE.customers_per_batch,
        "limits_off": off,
        "limits_on": on,
        "extra_write_units_per_event": extra,
    }
    path = RESULTS / "limits.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result["amounts"] = section
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return section


if __name__ == "__main__":
    import sys

    from tests.conftest import TEST_ENVIRONMENT

    for key, value in {**TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR"}.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    print(json.dumps(amounts() if sys.argv[1:] == ["amounts"] else main(), indent=2, default=str))
