"""Billing benchmark on the local stack: time and DynamoDB requests to bill N subscriptions for one period.

Each scenario starts the local stack (``LocalStack``: template.yaml's tables, queues, pollers and handlers
over an in-process moto server, what ``make run`` starts) in a fresh interpreter, and stores N monthly
subscriptions whose period has just closed. Each customer sent E events in the period, stored as C hourly
aggregate cells: the aggregate items ingest maintains, written here directly (ingest is benchmarked on its
own; billing never reads events). Then the billing schedule fires: ``BillingSchedulerFunction`` takes the
lease, finds the due windows through the sparse index and enqueues them; the stack's poller feeds the
BillingQueue to ``BillingWorkerFunction`` in batches of 10, which bills each window with the real pricing
engine, credits and ledger. Timing stops when the queue is empty. Every DynamoDB request the functions make
goes through the one shared client, where it is counted (requests by operation, items read).

Three more scenarios show what the cost follows: a tenth of the subscriptions with the same cells; the
same with 10x fewer events in each cell; and twice the cells with the same events.

moto costs some operations in proportion to everything stored (DynamoDB and SQS do not), so the run uses
``benchmarks.moto_shims.EmulatorShims``; request counts are the same with or without it.

    .venv/bin/python -m benchmarks.billing_run                 # 10,000 subscriptions, 1,000,000 events
    .venv/bin/python -m benchmarks.billing_run --subs 1000     # a quicker run
    .venv/bin/python -m benchmarks.billing_run --levels        # level meters (benchmarks.billing_levels)

Writes benchmarks/results/billing_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice

ROOT = Path(__file__).resolve().parents[1]

READS = {"GetItem", "Query", "BatchGetItem", "Scan"}
PLAN = {  # usage only, so a window's invoice is the rated aggregates
    "name": "Basic",
    "currency": "USD",
    "interval": "month",
    "fixed_fee": None,
    "minimum_commitment": None,
    "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.01"}],
}


class Meter:
    """Counts DynamoDB requests per operation, and items returned by reads, on the shared client, for the
    calls made on the main thread (``main=True``: the scheduler, fired there) or on the others (the
    stack's pollers running the worker)."""

    def __init__(self, main: bool) -> None:
        self.main = main
        self.requests: Counter[str] = Counter()
        self.items_read = 0
        self.cancelled = 0
        self.transaction_items = 0

    def attach(self, dynamodb: Any) -> None:
        dynamodb.meta.events.register("after-call.dynamodb", self._after)
        dynamodb.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", self._actions)

    def detach(self, dynamodb: Any) -> None:
        dynamodb.meta.events.unregister("after-call.dynamodb", self._after)
        dynamodb.meta.events.unregister("before-parameter-build.dynamodb.TransactWriteItems", self._actions)

    def _actions(self, params: dict[str, Any], **_: Any) -> None:
        """The actions of each transaction sent (items it writes, or checks)."""
        if (threading.current_thread() is threading.main_thread()) == self.main:
            self.transaction_items += len(params.get("TransactItems") or ())

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        if (threading.current_thread() is threading.main_thread()) != self.main:
            return
        self.requests[model.name] += 1
        if parsed.get("CancellationReasons"):
            self.cancelled += 1
        if model.name in ("Query", "Scan"):
            self.items_read += int(parsed.get("Count", 0))
        elif model.name == "GetItem":
            self.items_read += 1 if parsed.get("Item") else 0
        elif model.name == "BatchGetItem":
            self.items_read += sum(len(items) for items in (parsed.get("Responses") or {}).values())

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "read_requests": sum(n for op, n in self.requests.items() if op in READS),
            "items_read": self.items_read,
            "transactions": self.requests.get("TransactWriteItems", 0),
            "transaction_items": self.transaction_items,
            "cancelled_transactions": self.cancelled,
        }


def _batch_write(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> None:
    from neruba.dal.dynamo import to_item

    for start in range(0, len(items), 25):  # moto does not enforce the 25-item limit; we do
        dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": to_item(i)}} for i in items[start : start + 25]]}
        )


def _subscription(n: int, anchor: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    from neruba.dal.billing import shard_of
    from neruba.dal.locks import ts
    from neruba.domain.periods import add_interval

    sub_id, customer = f"sub_{n:020x}", f"cust-{n:06d}"
    doc = {
        "id": sub_id,
        "customer_id": customer,
        "status": "active",
        "currency": "USD",
        "interval": "month",
        "start_at": anchor.isoformat(),
        "trial_end": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "phases": [{"plan_code": "basic", "plan_version": 1, "start_at": anchor.isoformat(), "end_at": None}],
        "created_at": anchor.isoformat(),
    }
    catalog = {
        "pk": f"SUB#{sub_id}",
        "sk": "#",
        "kind": "subscription",
        "list_key": f"{customer}#{sub_id}",
        "rev": 1,
        "doc": json.dumps(doc),
    }
    state = {  # the opening window is billed; the first full period is due
        "pk": f"BST#{sub_id}",
        "sk": "#",
        "subscription_id": sub_id,
        "customer_id": customer,
        "anchor": ts(anchor),
        "interval": "month",
        "next_seq": 1,
        "status": "active",
        "ver": 1,
        "due_shard": shard_of(sub_id, "bst"),
        "due_at": ts(add_interval(anchor, "month", 1)),
    }
    return catalog, state


def _seed(subs: int, events: int, cells: int, anchor: datetime) -> None:
    """Store the meter, the plan, ``subs`` subscriptions and their period's hourly aggregates."""
    from neruba.dal.catalog import CatalogRepository
    from neruba.dal.clients import client
    from neruba.dal.plans import PlansRepository
    from neruba.models.catalog import Meter as CatalogMeter
    from neruba.models.catalog import PlanVersionIn
    from neruba.settings import get_settings

    settings = get_settings()
    dynamodb = client("dynamodb")
    CatalogRepository(settings.catalog_table).create_meter(
        CatalogMeter(code="api_calls", name="API calls", aggregation="count")
    )
    PlansRepository(settings.catalog_table).publish(
        "basic", PlanVersionIn.model_validate(PLAN).model_dump(mode="json")
    )
    per_cell, remainder = divmod(events // subs, cells)
    for start in range(0, subs, 1000):
        catalog, states, aggregates = [], [], []
        for n in range(start, min(start + 1000, subs)):
            subscription, state = _subscription(n, anchor)
            catalog.append(subscription)
            states.append(state)
            for cell in range(cells):
                hour = (anchor + timedelta(hours=cell)).strftime("%Y-%m-%dT%H")
                count = per_cell + (remainder if cell == 0 else 0)
                customer = state["customer_id"]
                aggregates.append({"pk": f"AGG#{customer}#api_calls", "sk": f"{hour}#", "n": count})
        _batch_write(dynamodb, settings.catalog_table, catalog)
        _batch_write(dynamodb, settings.billing_table, states)
        _batch_write(dynamodb, settings.usage_table, aggregates)
    dynamodb.put_item(
        TableName=settings.billing_table, Item={"pk": {"S": "MARK#billing-state-backfill"}, "sk": {"S": "#"}}
    )


def _pending(stack: Any, queue: str) -> int:
    counts = stack.queue_counts()[queue]
    return int(counts["visible"]) + int(counts["in_flight"]) + int(counts["delayed"])


def scenario(subs: int, events: int, cells: int, deadline_s: float = 4 * 3600) -> dict[str, Any]:
    """Bill ``subs`` subscriptions whose customers sent ``events`` events, in ``cells`` cells each."""
    from benchmarks.moto_shims import EmulatorShims
    from neruba_tools.local.stack import LocalStack

    os.environ["NERUBA_LOCAL_LOG_LEVEL"] = "ERROR"
    with (
        EmulatorShims() as shims,
        LocalStack(
            "template.yaml", ROOT, api_port=0, moto_port=0, stack_name="neruba-bench", schedules=False
        ) as stack,
    ):
        from neruba.dal.clients import client
        from neruba.dal.invoices import InvoicesRepository
        from neruba.settings import get_settings

        # GIVEN monthly subscriptions whose first full period closed a day ago, with its usage stored
        now = datetime.now(UTC)
        anchor = (now - timedelta(days=32)).replace(minute=0, second=0, microsecond=0)
        started = time.perf_counter()
        _progress(f"seeding {subs} subscriptions and their usage")
        _seed(subs, events, cells, anchor)
        seed_seconds = time.perf_counter() - started
        _progress(f"seeded in {seed_seconds:.0f} s; firing the billing schedule")
        scheduler_meter, worker_meter = Meter(main=True), Meter(main=False)
        for meter in (scheduler_meter, worker_meter):
            meter.attach(client("dynamodb"))

        # WHEN the billing schedule fires and the stack's poller drains the billing queue (the worker
        # starts on the first windows while the scheduler is still enqueuing the rest)
        started = time.perf_counter()
        run = stack.fire_schedule("BillingSchedulerFunction.Schedule")
        scheduler_seconds = time.perf_counter() - started
        _progress(f"scheduler done in {scheduler_seconds:.0f} s; draining the billing queue")
        last = time.perf_counter()
        while (pending := _pending(stack, "BillingQueue")) and time.perf_counter() - started < deadline_s:
            time.sleep(0.5)
            if time.perf_counter() - last >= 15:
                last = time.perf_counter()
                _progress(f"{pending} billing job(s) still queued after {last - started:.0f} s")
        run_seconds = time.perf_counter() - started
        for meter in (scheduler_meter, worker_meter):
            meter.detach(client("dynamodb"))
        scheduler, worker = scheduler_meter.snapshot(), worker_meter.snapshot()

        # THEN every window has its invoice, nothing went to the dead-letter queue
        invoices = InvoicesRepository(get_settings().billing_table)
        billed = _sample(invoices.list("cust-000000", None, 10, None)[0][0])
        invoiced = _count_invoices(subs)
        dead = _pending(stack, "BillingDLQ")
    return {
        "subscriptions": subs,
        "events": events,
        "aggregate_cells": subs * cells,
        "seed_seconds": round(seed_seconds, 1),
        "enqueued": run["enqueued"],
        "invoiced": invoiced,
        "dead_lettered": dead,
        "scheduler": {"seconds": round(scheduler_seconds, 2), **scheduler},
        "run_seconds": round(run_seconds, 1),
        "windows_per_second": round(invoiced / run_seconds, 1) if run_seconds else None,
        "worker": {
            **worker,
            "read_requests_per_window": round(worker["read_requests"] / max(invoiced, 1), 2),
            "items_read_per_window": round(worker["items_read"] / max(invoiced, 1), 2),
        },
        "sample_invoice": billed,
        "emulator_shims": shims.snapshot(),
    }


def _sample(invoice: Invoice) -> dict[str, Any]:
    lines = [line.document for line in invoice.lines]
    return {
        "status": invoice.status,
        "subtotal_minor": invoice.subtotal_minor,
        "lines": len(lines),
        "hours_read_by_rater": sum(int((x.get("source") or {}).get("hours", 0)) for x in lines),
        "events_behind_it": sum(int((x.get("source") or {}).get("events", 0)) for x in lines),
    }


def _count_invoices(subs: int) -> int:
    """Subscriptions with an invoice for their first full period (one GetItem of the state each)."""
    from neruba.dal.billing import BillingRepository
    from neruba.settings import get_settings

    billing = BillingRepository(get_settings().billing_table)
    count = 0
    for n in range(subs):
        state = billing.state(f"sub_{n:020x}")
        count += 1 if state is not None and state.next_seq >= 2 else 0
    return count


def _progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _in_child(subs: int, events: int, cells: int) -> dict[str, Any]:
    """Run one scenario in a fresh interpreter (moto's state is per process); its progress lines pass
    through to this terminal."""
    command = [sys.executable, "-m", "benchmarks.billing_run", "--one", str(subs), str(events), str(cells)]
    print(f"billing benchmark: {subs} subscriptions, {events} events, {cells} cells each", file=sys.stderr)
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"scenario failed ({done.returncode}); its output is above")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  {result['invoiced']} invoiced in {result['run_seconds']} s, "
        f"{result['worker']['read_requests_per_window']} reads/window",
        file=sys.stderr,
    )
    return result


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subs", type=_positive, default=10_000)
    parser.add_argument("--events", type=_positive, default=1_000_000)
    parser.add_argument(
        "--cells", type=_positive, default=10, help="aggregate cells (hours with usage) per subscription"
    )
    parser.add_argument(
        "--one", nargs=3, type=int, metavar=("SUBS", "EVENTS", "CELLS"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--out", type=Path, default=None,
        help="where to write the result (default: benchmarks/results/billing_run.json at the full size of "
        "10,000 subscriptions and 1,000,000 events, which docs/performance.md is built from; any other size "
        "prints only, unless --out names a file)",
    )  # fmt: skip
    parser.add_argument(
        "--levels", action="store_true", help="reads per window of level meters (benchmarks.billing_levels)"
    )
    args = parser.parse_args(argv)
    if args.levels:
        from benchmarks import billing_levels

        return billing_levels.main([])
    if args.one:
        result = scenario(*args.one)
        print(json.dumps(result))
        return result
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    base = _in_child(args.subs, args.events, args.cells)
    small = max(args.subs // 10, 100)
    events_small = args.events * small // args.subs
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "note": "The local stack (moto server in process, the stack's poller and handlers); request counts "
        "carry over to DynamoDB, times do not. Usage is stored as the hourly aggregate items ingest "
        "maintains; the real scheduler, worker, rater and ledger bill it.",
        "base": base,
        "events_do_not_matter": {
            "same_cells": _in_child(small, events_small, args.cells),
            "same_cells_10x_fewer_events": _in_child(small, events_small // 10, args.cells),
        },
        "cells_do": {"2x_cells_same_events": _in_child(small, events_small, args.cells * 2)},
        "total_seconds": 0.0,
    }
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_1min"] = {"start": load_start, "end": os.getloadavg()[0]}
    full_size = (args.subs, args.events, args.cells) == (10_000, 1_000_000, 10)
    out = args.out or (ROOT / "benchmarks" / "results" / "billing_run.json" if full_size else None)
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"billing benchmark: written to {out}", file=sys.stderr)
    else:
        print(
            "billing benchmark: not the full size, so the committed results are left as they are",
            file=sys.stderr,
        )
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
