"""Write units per accepted event with usage limits (a hard cap and alert levels on every customer's meter)
against the same workload without limits, in the same run, through the real ingest worker on moto; and the
time from a batch's start to the ``alert.triggered`` it writes (the alert commits in the batch's own
transaction, so this is the batch's time on the local emulator).

    python -m benchmarks.limits            # writes benchmarks/results/limits.json

Besides the two shapes (every customer limited, with a hard cap), two variants of the 10-customer shape
measure where the extra cost goes: half the customers limited (the others keep the unlimited path), and
alert levels and a soft cap without a hard cap. The sizes of the stored counters and limited contributions
are reported too (a write unit per started KB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from benchmarks.capacity import Meter, item_size
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


@dataclass(frozen=True, slots=True)
class Variant:
    """Which customers of a shape have limits, and whether they include a hard cap."""

    name: str
    limited_every: int = 1  # customers c with c % limited_every == 0 have limits
    hard_cap: bool = True


EVERY = Variant("every customer limited")
VARIANTS = [
    (HEADLINE, EVERY),
    (SHAPES[0], EVERY),
    (HEADLINE, Variant("half the customers limited", limited_every=2)),
    (HEADLINE, Variant("alerts and soft cap only, no hard cap", hard_cap=False)),
]


def _limits(customers: int, variant: Variant) -> int:
    """A hard cap no event reaches (unless the variant has none) and three alert levels the workload
    crosses, on the variant's customers; returns how many customers have limits."""
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    meter: dict[str, Any] = {"meter_code": "tokens", "soft_cap": "500", "alerts": ["100", "300"]}
    if variant.hard_cap:
        meter["hard_cap"] = "1000000"
    body = UsageLimitsIn.model_validate({"meters": [meter]})
    limited = [c for c in range(customers) if c % variant.limited_every == 0]
    for c in limited:
        put_limits(f"cust-{c}", body, None, Actor("bench"))
    return len(limited)


def _run(with_limits: bool, shape: Shape = HEADLINE, variant: Variant = EVERY) -> dict[str, Any]:
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
        _setup_catalog(customers)
        if with_limits:
            _limits(customers, variant)
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
        sizes = _sizes(get_settings().usage_table)
    return {
        "write_units": meter.total_write_units,
        "write_units_per_event": round(meter.total_write_units / EVENTS, 3),
        "requests_per_event": round(meter.dynamodb_requests / EVENTS, 3),
        "write_units_by_item": dict(sorted(meter.write_units.items())),
        "requests_by_operation": dict(sorted(meter.requests.items())),
        "seconds_on_moto": round(elapsed, 2),
        "alerts_written": alerts,
        "seconds_batch_start_to_first_alert": first_alert_seconds,
        "largest_bytes": sizes,
    }


def _sizes(usage_table: str) -> dict[str, int]:
    """The largest stored counter and contribution, in bytes (DynamoDB's item size rule)."""
    largest = {"counter": 0, "contribution": 0}
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=usage_table)
    for item in (i for page in pages for i in page["Items"]):
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        kind = (
            "counter"
            if pk.startswith("LIM#")
            else "contribution"
            if pk.startswith("AGG#") and "!" in sk
            else None
        )
        if kind:
            largest[kind] = max(largest[kind], item_size(item))
    return largest


def _alerts(ops_table: str) -> int:
    items = boto3.client("dynamodb").scan(TableName=ops_table)["Items"]
    return sum(1 for i in items if i["pk"]["S"].startswith("WHOUT#") and "alert.triggered" in i["doc"]["S"])


def main() -> dict[str, Any]:
    """The headline shape (10 customers per batch) and one customer per batch, limits off then on, then the
    variants of the headline shape (``VARIANTS``; limits off is measured once per shape)."""
    shapes = []
    offs: dict[str, dict[str, Any]] = {}
    for shape, variant in VARIANTS:
        off = offs.get(shape.name) or _run(False, shape)
        offs[shape.name] = off
        on = _run(True, shape, variant)
        extra = round(on["write_units_per_event"] - off["write_units_per_event"], 3)
        shapes.append(
            {
                "shape": shape.name if variant is EVERY else f"{shape.name}, {variant.name}",
                "variant": variant.name,
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
    (RESULTS / "limits.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    argparse.ArgumentParser(
        prog="python -m benchmarks.limits",
        description="Write units per accepted event with usage limits on against off, in the same run; "
        "writes benchmarks/results/limits.json (takes several minutes on moto).",
    ).parse_args()
    from tests.conftest import TEST_ENVIRONMENT

    for key, value in {**TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR"}.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    print(json.dumps(main(), indent=2, default=str))
