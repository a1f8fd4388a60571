"""Write units per accepted event with usage limits (a hard cap and alert levels on every customer's meter)
against the same workload without limits, in the same run, through the real ingest worker on moto; and the
time from a batch's start to the ``alert.triggered`` it writes (the alert commits in the batch's own
transaction, so this is the batch's time on the local emulator).

    python -m benchmarks.limits            # writes benchmarks/results/limits.json
    python -m benchmarks.limits amounts    # adds the amounts run (an amount cap and spend alerts) to it
    python -m benchmarks.limits sparse     # adds the sparse cases (``SPARSE_CASES``) to it

The amounts run prices usage, which a grouped meter does not allow (docs/limits.md, "Which prices take an
amount"): both of its sides use an ungrouped ``tokens`` meter charged by a graduated plan, once without
limits and once with an amount cap no event reaches and two spend alert levels on every customer.

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
from collections import Counter
from dataclasses import dataclass, replace
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
# Transaction ids as clients send them: the sequential benchmark ids compress very well, these do not.
ID_SHAPES = [
    replace(shape, name=f"{shape.name}, {label} transaction ids", transaction_ids=ids)
    for ids, label in (("uuid4", "uuid4"), ("random64", "64-character random"))
    for shape in (HEADLINE, SHAPES[0])
]
# Sparse batches: one event per customer, meter and hour cell (100 customers per batch); without limits
# their days are written as pending items and folded later; with limits too, once their counter moved.
SPARSE = SHAPES[2]
SPARSE_SHAPES = [
    SPARSE,
    *(
        replace(SPARSE, name=f"{SPARSE.name}, {label} transaction ids", transaction_ids=ids)
        for ids, label in (("uuid4", "uuid4"), ("random64", "64-character random"))
    ),
]
VARIANTS = [
    (HEADLINE, EVERY),
    (SHAPES[0], EVERY),
    (HEADLINE, Variant("half the customers limited", limited_every=2)),
    (HEADLINE, Variant("alerts and soft cap only, no hard cap", hard_cap=False)),
    *((shape, EVERY) for shape in ID_SHAPES),
    *((shape, EVERY) for shape in SPARSE_SHAPES),
]


@dataclass(frozen=True, slots=True)
class SparseCase:
    """A sparse workload (one event per customer's meter and day in each batch) whose customers have the
    limits ``kinds[c % len(kinds)]`` (``_case_limits``); ``layout``: ``one`` (the sparse shape: 100
    customers, one event each in the current hour), ``two days`` (50 customers, one event on each of two
    past days) or ``one day`` (50 customers, two events four hours apart on one past day)."""

    name: str
    kinds: tuple[str, ...]
    layout: str = "one"

    @property
    def customers(self) -> int:
        return 100 if self.layout == "one" else 50

    @property
    def priced(self) -> bool:
        return any(kind in ("amount", "spend") for kind in self.kinds)


# Every shape of a sparse limited batch: the one measured above (every event fits a hard cap), then each
# kind of write that did not take the batch's shared pending items (docs/performance.md), then a mix.
SPARSE_CASES = [
    SparseCase("every event fits its hard cap", ("cap",)),
    SparseCase("half the customers refused by their cap after a few batches", ("cap", "refused")),
    SparseCase("amount caps (priced meter, no event reaches its cap)", ("amount",)),
    SparseCase("spend alerts crossing (priced meter, three levels)", ("spend",)),
    SparseCase("two limit periods in one batch (daily periods, two days)", ("daily",), "two days"),
    SparseCase("two limit periods within one day (daily periods from noon)", ("noon",), "one day"),
    SparseCase(
        "a mix: caps, refusals, amount caps, spend alerts, daily periods",
        ("cap", "refused", "amount", "spend", "daily"),
        "two days",
    ),
]


CASE_EVENTS = 1_000  # 10 batches of 100 per case (the shapes above: 2,000)


class _LongContext(_Context):
    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _base_day() -> datetime:
    """Midnight UTC yesterday: the past days of the two-event layouts are this day and the one before."""
    from datetime import timedelta

    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


def _case_events(case: SparseCase) -> list[dict[str, Any]]:
    from datetime import timedelta

    if case.layout == "one":
        return _events(SPARSE)
    base, padding = _base_day(), "x" * 560
    events = []
    for i in range(EVENTS):
        if case.layout == "two days":
            at = base + timedelta(hours=10, minutes=30) - timedelta(days=i % 2)
        else:  # two events of one day, on each side of noon
            at = base + timedelta(hours=9 + 4 * (i % 2), minutes=30)
        events.append(
            {
                "transaction_id": f"bench-{i:08d}-0f8fad5b-d9cb-469f-a165-70867728950e",
                "customer_id": f"cust-{(i // 2) % case.customers}",
                "code": "tokens",
                "timestamp": at.isoformat(),
                "properties": {"tokens": 1 + i % 7, "model": "model-0", "note": padding},
            }
        )
    return events


def _case_limits(case: SparseCase) -> None:
    """Per customer, by kind: ``cap`` a hard cap no event reaches, a soft cap and two alert levels (the
    sparse rows above); ``refused`` a hard cap of 20 tokens (reached after a few batches: its later events
    are refused); ``amount`` an amount cap no event reaches; ``spend`` spend alerts at 0.20, 0.40 and 0.60
    (each crossed); ``daily`` and ``noon`` a hard cap no event reaches on daily periods from midnight or
    from noon. Monthly periods start three days before the past days, so both fall in one period."""
    from datetime import timedelta

    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    base = _base_day()
    month = {"interval": "month", "period_anchor": (base - timedelta(days=3)).isoformat()}
    bodies: dict[str, dict[str, Any]] = {
        "cap": {
            "meters": [
                {"meter_code": "tokens", "hard_cap": "1000000", "soft_cap": "500", "alerts": ["100", "300"]}
            ],
            **month,
        },
        "refused": {"meters": [{"meter_code": "tokens", "hard_cap": "20"}], **month},
        "amount": {"meters": [{"meter_code": "tokens", "hard_cap_amount_minor": 10**9}], **month},
        "spend": {
            "meters": [{"meter_code": "tokens", "hard_cap": "1000000"}],
            "spend_alerts_minor": [20, 40, 60],
            **month,
        },
        "daily": {
            "meters": [{"meter_code": "tokens", "hard_cap": "1000000"}],
            "interval": "day",
            "period_anchor": base.isoformat(),
        },
        "noon": {
            "meters": [{"meter_code": "tokens", "hard_cap": "1000000"}],
            "interval": "day",
            "period_anchor": (base + timedelta(hours=12)).isoformat(),
        },
    }
    for c in range(case.customers):
        body = UsageLimitsIn.model_validate(bodies[case.kinds[c % len(case.kinds)]])
        put_limits(f"cust-{c}", body, None, Actor("bench"))


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


def _run(
    with_limits: bool,
    shape: Shape = HEADLINE,
    variant: Variant = EVERY,
    amounts: bool = False,
    case: SparseCase | None = None,
) -> dict[str, Any]:
    from moto import mock_aws

    from functions.ingest_worker import app
    from neruba import bootstrap
    from neruba.dal.clients import client
    from neruba.settings import get_settings
    from tests.support.aws import create_resources

    customers = shape.customers_per_batch if case is None else case.customers
    amounts = amounts or (case is not None and case.priced)
    with mock_aws():
        bootstrap.reset()
        create_resources()
        if amounts:
            _priced_catalog(customers)
        else:
            _setup_catalog(customers)
        if with_limits:
            if case is not None:
                _case_limits(case)
            elif amounts:
                _amount_limits(customers)
            else:
                _limits(customers, variant)
        records = _records(_events(shape) if case is None else _case_events(case)[:CASE_EVENTS])
        meter = Meter()
        meter.attach(client("dynamodb"), boto3.client("dynamodb"))
        first_alert_seconds = None
        # the sparse cases' batches may take more than a minute on moto under load: Lambda's longest
        # timeout, so that no batch stops at its deadline (the counts are the same either way)
        context = _Context() if case is None else _LongContext()
        started = time.perf_counter()
        for start in range(0, len(records), BATCH):
            batch_started = time.perf_counter()
            response = app.lambda_handler({"Records": records[start : start + BATCH]}, context)
            assert response["batchItemFailures"] == [], response
            if with_limits and first_alert_seconds is None and _alerts(get_settings().ops_table):
                first_alert_seconds = round(time.perf_counter() - batch_started, 3)
        elapsed = time.perf_counter() - started
        batches = (
            meter.total_write_units,
            meter.dynamodb_requests,
            dict(meter.requests),
            dict(meter.write_units),
        )
        fold = _fold()
        fold["write_units"] = meter.total_write_units - batches[0]
        fold["requests"] = meter.dynamodb_requests - batches[1]
        alerts = _alerts(get_settings().ops_table) if with_limits else 0
        refused = _refused(get_settings().usage_table)
        sizes = _sizes(get_settings().usage_table)
    units, requests = batches[0], batches[1]
    fold["write_units_by_item"] = dict(sorted((meter.write_units - Counter(batches[3])).items()))
    meter.requests, meter.write_units = Counter(batches[2]), Counter(batches[3])  # the batches' alone
    return {
        "write_units": units,
        "events": len(records),
        "write_units_per_event": round(units / len(records), 3),
        "requests_per_event": round(requests / len(records), 3),
        "write_units_by_item": dict(sorted(meter.write_units.items())),
        "requests_by_operation": dict(sorted(meter.requests.items())),
        "seconds_on_moto": round(elapsed, 2),
        "alerts_written": alerts,
        "events_refused": refused,
        "seconds_batch_start_to_first_alert": first_alert_seconds,
        "largest_bytes": sizes,
        "fold": fold,
        "write_units_per_event_with_fold": round((units + fold["write_units"]) / len(records), 3),
        "requests_per_event_with_fold": round((requests + fold["requests"]) / len(records), 3),
    }


def _fold() -> dict[str, Any]:
    """The sweep's fold of the pending items (sparse days written without limits) once their window has
    closed, and their removal once past their retention, as ``benchmarks.ingest_writes`` counts them; its
    write units and requests are reported apart from the batches'."""
    from datetime import timedelta

    from neruba import bootstrap
    from neruba.dal.pending import KEEP_FOLDED

    usage = bootstrap.usage()
    folded = usage.pending.fold(datetime.now(UTC) + timedelta(minutes=20), usage.shards)
    later = datetime.now(UTC) + KEEP_FOLDED + timedelta(days=1)
    removed = usage.pending.fold(later, usage.shards)["removed"]
    return {**folded, "removed": removed}


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


def _refused(usage_table: str) -> int:
    """The events stored ``over_limit``."""
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=usage_table)
    return sum(
        1
        for page in pages
        for i in page["Items"]
        if i["pk"]["S"].startswith("EVT#") and i.get("st", {}).get("S") == "over_limit"
    )


def _alerts(ops_table: str) -> int:
    items = boto3.client("dynamodb").scan(TableName=ops_table)["Items"]
    return sum(1 for i in items if i["pk"]["S"].startswith("WHOUT#") and "alert.triggered" in i["doc"]["S"])


def main() -> dict[str, Any]:
    """The headline shape (10 customers per batch) and one customer per batch, limits off then on, then the
    variants of the headline shape (``VARIANTS``; limits off is measured once per shape)."""
    load_start = os.getloadavg()[0]
    shapes = []
    offs: dict[str, dict[str, Any]] = {}
    for shape, variant in VARIANTS:
        off = offs.get(shape.name) or _run(False, shape)
        offs[shape.name] = off
        on = _run(True, shape, variant)
        # with the fold: sparse days written without limits are folded later, at a cost of their own
        extra = round(on["write_units_per_event_with_fold"] - off["write_units_per_event_with_fold"], 3)
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
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        **{k: headline[k] for k in ("limits_off", "limits_on", "extra_write_units_per_event")},
        "shapes": shapes,
        "target_extra_write_units_at_most": TARGET_EXTRA_WRITE_UNITS,
        "within_target": headline["extra_write_units_per_event"] <= TARGET_EXTRA_WRITE_UNITS,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "limits.json"
    before = json.loads(path.read_text()) if path.exists() else {}
    for own in ("amounts", "sparse_cases"):  # measured on their own (``amounts``, ``sparse``)
        if own in before:
            result[own] = before[own]
    if before.get("shapes"):  # the figures this run replaces, to compare with
        result["previous_run"] = {
            "measured_at": before.get("measured_at"),
            "shapes": {
                s["shape"]: {
                    "off": s["limits_off"]["write_units_per_event"],
                    "on": s["limits_on"]["write_units_per_event"],
                    "requests_off": s["limits_off"]["requests_per_event"],
                    "requests_on": s["limits_on"]["requests_per_event"],
                }
                for s in before["shapes"]
            },
        }
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


def sparse() -> dict[str, Any]:
    """Each sparse case (``SPARSE_CASES``), limits off then on; added to ``results/limits.json`` under
    ``sparse_cases`` (the other runs are kept), the figures it replaces kept under ``previous``."""
    load_start = os.getloadavg()[0]
    rows = []
    offs: dict[tuple[str, bool], dict[str, Any]] = {}
    for case in SPARSE_CASES:
        key = (case.layout, case.priced)
        off = offs.get(key) or _run(False, case=case)
        offs[key] = off
        on = _run(True, case=case)
        rows.append(
            {
                "case": case.name,
                "kinds": list(case.kinds),
                "layout": case.layout,
                "customers_per_batch": BATCH if case.layout == "one" else BATCH // 2,
                "limits_off": off,
                "limits_on": on,
                "extra_write_units_per_event": round(
                    on["write_units_per_event_with_fold"] - off["write_units_per_event_with_fold"], 3
                ),
            }
        )
    path = RESULTS / "limits.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    before = result.get("sparse_cases") or {}
    section: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "rows": rows,
        "previous": before.get("previous") or {},
    }
    code = _code_version()
    if before.get("rows") and before.get("code") != code:  # the figures of the code this one replaces
        section["previous"] = {
            "measured_at": before["measured_at"],
            "code": before.get("code"),
            "rows": {r["case"]: _figures(r["limits_on"]) for r in before["rows"]},
        }
    section["code"] = code
    result["sparse_cases"] = section
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return section


def _code_version() -> str:
    """The last commit of the layer's code and whether it has changes not committed: a run of other code
    keeps the stored figures as ``previous`` (a run of the same code keeps the stored ``previous``)."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("log", "-1", "--format=%h", "--", "layers/neruba/neruba")
    return commit + ("+changes" if git("status", "--porcelain", "--", "layers/neruba/neruba") else "")


def _figures(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "write_units_per_event": run["write_units_per_event"],
        "write_units_per_event_with_fold": run["write_units_per_event_with_fold"],
        "requests_per_event": run["requests_per_event"],
        "write_units_by_item": run["write_units_by_item"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.limits",
        description="Write units per accepted event with usage limits on against off, in the same run; "
        "writes benchmarks/results/limits.json (takes several minutes on moto).",
    )
    parser.add_argument(
        "run",
        nargs="?",
        choices=["amounts", "sparse"],
        help="only the amounts run, or only the sparse cases, added to the stored results",
    )
    only = parser.parse_args().run
    from tests.conftest import TEST_ENVIRONMENT

    for key, value in {**TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR"}.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    runs = {"amounts": amounts, "sparse": sparse}
    print(json.dumps(runs[only]() if only else main(), indent=2, default=str))
