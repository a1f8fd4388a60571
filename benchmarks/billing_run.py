"""Billing benchmark: time and DynamoDB requests to bill N subscriptions for one period (moto in-process).

Each subscription's customer sent E events in the period, stored as C hourly aggregate cells: the
aggregate items ingest maintains, written here directly (the events themselves are not replayed through
ingest; billing never reads events). The scheduler finds the due windows through the sparse index and
enqueues them; the worker bills each one with the REAL collaborators (``default_deps()``: the pricing
engine's ``rate_window`` over the aggregates, the ledger's grants, allocation and invoice posting), on
daily windows of a usage-only plan. Three scenarios show what the cost follows: the base; the same cells
with 10x fewer events in each; and twice the cells with the same events.

    .venv/bin/python -m benchmarks.billing_run                 # 10,000 subscriptions, 1,000,000 events
    .venv/bin/python -m benchmarks.billing_run --subs 1000     # a quicker run

Writes benchmarks/results/billing_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.conftest import TEST_ENVIRONMENT

for _key, _value in {**TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR"}.items():
    os.environ.setdefault(_key, _value)
os.environ.pop("AWS_ENDPOINT_URL", None)

READS = {"GetItem", "Query", "BatchGetItem", "Scan"}
PLAN = {  # usage only: daily windows rate exactly what they would inside a monthly period
    "name": "Basic",
    "currency": "USD",
    "interval": "month",
    "fixed_fee": None,
    "minimum_commitment": None,
    "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.01"}],
}


class Meter:
    """Counts DynamoDB requests per operation, and items returned by reads, on the shared client."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.items_read = 0
        self.cancelled = 0

    def attach(self, dynamodb: Any) -> None:
        dynamodb.meta.events.register("after-call.dynamodb", self._after)

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        self.requests[model.name] += 1
        if parsed.get("CancellationReasons"):
            self.cancelled += 1
        if model.name in ("Query", "Scan"):
            self.items_read += int(parsed.get("Count", 0))
        elif model.name == "GetItem":
            self.items_read += 1 if parsed.get("Item") else 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "read_requests": sum(n for op, n in self.requests.items() if op in READS),
            "items_read": self.items_read,
            "transactions": self.requests.get("TransactWriteItems", 0),
            "cancelled_transactions": self.cancelled,
        }

    def reset(self) -> None:
        self.requests.clear()
        self.items_read = 0
        self.cancelled = 0


class _NoTableBackup:
    """moto backs up every table a transaction touches with ``copy.deepcopy`` (per action), which makes
    each transaction cost O(table size) in time and memory in the emulator, unlike DynamoDB. The benchmark
    skips that backup; it is only needed to roll back a cancelled transaction, and the benchmark checks
    that none was cancelled (``cancelled_transactions`` must be 0)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def deepcopy(self, value: Any, *args: Any) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else self.real.deepcopy(value, *args)


def _batch_write(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> None:
    from neruba.dal.dynamo import to_item

    for start in range(0, len(items), 25):  # moto does not enforce the 25-item limit; we do
        dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": to_item(i)}} for i in items[start : start + 25]]}
        )


def scenario(subs: int, events: int, cells: int) -> dict[str, Any]:
    """Bill ``subs`` subscriptions whose customers sent ``events`` events, in ``cells`` cells each."""
    import copy

    import moto.dynamodb.models as moto_dynamodb
    from moto import mock_aws

    from neruba.dal.billing import BillingRepository, shard_of
    from neruba.dal.catalog import CatalogRepository
    from neruba.dal.clients import client, reset_clients
    from neruba.dal.invoices import InvoicesRepository
    from neruba.dal.locks import LockRepository, ts
    from neruba.dal.plans import PlansRepository
    from neruba.logic.billing_deps import default_deps
    from neruba.logic.billing_scheduler import RunOptions, run_billing
    from neruba.logic.billing_worker import Billing
    from neruba.models.catalog import Meter as CatalogMeter
    from neruba.models.catalog import PlanVersionIn
    from neruba.settings import get_settings
    from tests.support.aws import create_resources, queue_url
    from tests.support.billing_fakes import START, add_days
    from tests.support.queues import receive_batch, run_batch

    moto_dynamodb.copy = _NoTableBackup(copy)  # type: ignore[assignment]
    with mock_aws():
        reset_clients()
        get_settings.cache_clear()
        create_resources()
        settings = get_settings()
        dynamodb = client("dynamodb")
        per_cell, remainder = divmod(events // subs, cells)
        # GIVEN subscriptions past their opening, each with its period's usage in hourly aggregates
        catalog, states, aggregates = [], [], []
        for n in range(subs):
            sub_id, customer = f"sub_{n:020x}", f"cust-{n:06d}"
            doc = {
                "id": sub_id,
                "customer_id": customer,
                "status": "active",
                "currency": "USD",
                "interval": "month",
                "start_at": START.isoformat(),
                "trial_end": None,
                "cancel_at_period_end": False,
                "canceled_at": None,
                "ended_at": None,
                "phases": [
                    {"plan_code": "basic", "plan_version": 1, "start_at": START.isoformat(), "end_at": None}
                ],
                "created_at": START.isoformat(),
            }
            catalog.append(
                {
                    "pk": f"SUB#{sub_id}",
                    "sk": "#",
                    "kind": "subscription",
                    "list_key": f"{customer}#{sub_id}",
                    "rev": 1,
                    "doc": json.dumps(doc),
                }
            )
            states.append(
                {
                    "pk": f"BST#{sub_id}",
                    "sk": "#",
                    "subscription_id": sub_id,
                    "customer_id": customer,
                    "anchor": ts(START),
                    "interval": "month",
                    "next_seq": 1,
                    "status": "active",
                    "ver": 1,
                    "due_shard": shard_of(sub_id, "bst"),
                    "due_at": ts(START + timedelta(days=1)),
                }
            )
            for cell in range(cells):
                hour = (START + timedelta(hours=cell)).strftime("%Y-%m-%dT%H")
                count = per_cell + (remainder if cell == 0 else 0)
                aggregates.append({"pk": f"AGG#{customer}#api_calls", "sk": f"{hour}#", "n": count})
        _batch_write(dynamodb, settings.catalog_table, catalog)
        _batch_write(dynamodb, settings.billing_table, states)
        _batch_write(dynamodb, settings.usage_table, aggregates)
        dynamodb.put_item(
            TableName=settings.billing_table,
            Item={"pk": {"S": "MARK#billing-state-backfill"}, "sk": {"S": "#"}},
        )

        plans = PlansRepository(settings.catalog_table)
        CatalogRepository(settings.catalog_table).create_meter(
            CatalogMeter(code="api_calls", name="API calls", aggregation="count")
        )
        plans.publish("basic", PlanVersionIn.model_validate(PLAN).model_dump(mode="json"))
        ctx = Billing(
            BillingRepository(settings.billing_table),
            InvoicesRepository(settings.billing_table),
            plans.subscription,
            replace(default_deps(), add_interval=add_days),
            timedelta(hours=1),
            settings.ops_table,
            settings.billing_queue_url,
            settings.stripe_sync_queue_url,
            settings.catalog_table,
        )
        meter = Meter()
        meter.attach(dynamodb)
        now = START + timedelta(days=1, hours=1)

        # WHEN the scheduler runs, then the worker drains the queue in batches of 10
        started = time.perf_counter()
        run = run_billing(ctx, LockRepository(settings.billing_table), plans, RunOptions(clock=lambda: now))
        scheduler_seconds = time.perf_counter() - started
        scheduler = meter.snapshot()
        meter.reset()

        from functions.billing_worker import app

        app._ctx = ctx
        app.clock = lambda: now
        url = queue_url("BillingQueue")
        started = time.perf_counter()
        while messages := receive_batch(url, 10):
            run_batch(app.lambda_handler, url, messages)
        worker_seconds = time.perf_counter() - started
        worker = meter.snapshot()
        invoiced = int(ctx.billing.run(run["id"])["invoiced"])  # type: ignore[index]
        sample = ctx.invoices.list("cust-000000", None, 10, None)[0][0]
        billed = {"subtotal_minor": sample["subtotal_minor"], "lines": len(sample["lines"])}
        billed["hours_read_by_rater"] = sum(
            int((x.get("source") or {}).get("hours", 0)) for x in sample["lines"]
        )
        billed["events_behind_it"] = sum(
            int((x.get("source") or {}).get("events", 0)) for x in sample["lines"]
        )
        reset_clients()
    moto_dynamodb.copy = copy  # type: ignore[assignment]
    return {
        "subscriptions": subs,
        "events": events,
        "aggregate_cells": subs * cells,
        "enqueued": run["enqueued"],
        "invoiced": invoiced,
        "scheduler": {"seconds": round(scheduler_seconds, 2), **scheduler},
        "worker": {
            "seconds": round(worker_seconds, 2),
            "windows_per_second": round(invoiced / worker_seconds, 1) if worker_seconds else None,
            **worker,
            "read_requests_per_window": round(worker["read_requests"] / max(invoiced, 1), 2),
            "items_read_per_window": round(worker["items_read"] / max(invoiced, 1), 2),
        },
        "sample_invoice": billed,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subs", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--cells", type=int, default=10, help="aggregate cells (hours with usage) per subscription"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    base = scenario(args.subs, args.events, args.cells)
    small = max(args.subs // 10, 100)
    events_small = args.events * small // args.subs
    result = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "note": "moto in-process on one interpreter; request counts carry over to DynamoDB, times do not. "
        "Usage is stored as hourly aggregate items written directly (what ingest maintains); the real "
        "rater and ledger bill it.",
        "base": base,
        "events_do_not_matter": {
            "same_cells": scenario(small, events_small, args.cells),
            "same_cells_10x_fewer_events": scenario(small, events_small // 10, args.cells),
        },
        "cells_do": {"2x_cells_same_events": scenario(small, events_small, args.cells * 2)},
        "total_seconds": 0.0,
    }
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    out = Path(__file__).parent / "results" / "billing_run.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
