"""Billing benchmark of level meters: reads per window of a meter whose level outlives its hours.

The billing run of ``benchmarks.billing_run`` (the local stack, the real scheduler and worker, every
DynamoDB request counted on the shared client) for subscriptions that have been billing for M months: each
customer's meter holds C hourly cells in every one of those months, and the period that just closed is
billed. Five meters of the same usage are compared:

- ``count``: reads its window's cells only (the reference);
- ``weighted_sum`` and ``latest`` with ``carry_over`` (ungrouped and grouped by three values), each with
  the closing level the previous window's billing stored (what a running subscription has), and without
  any (what every window read before closing levels: the meter's whole history).

Two more runs of the count meter measure what discounts add to a window: every customer holds a coupon of a
fixed amount for 3 billing periods and a percentage coupon forever, in the first period they discount (no
period record yet) and in a later one (each discount's record of its last period stored, as the previous
window's invoice left it).

    .venv/bin/python -m benchmarks.billing_run --levels                    # 100 subscriptions, 6 months
    .venv/bin/python -m benchmarks.billing_levels --subs 50 --months 12

Writes benchmarks/results/billing_levels.json (docs/performance.md, "Billing runs of level meters").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from benchmarks.billing_run import ROOT, Meter, _batch_write, _pending, _progress, _subscription

KINDS = {  # label -> (meter fields, whether the previous window's closing level is stored)
    "count": ({"aggregation": "count"}, False),
    "weighted_sum": ({"aggregation": "weighted_sum", "field": "d", "allow_negative": True}, True),
    "weighted_sum_no_closing_level": (
        {"aggregation": "weighted_sum", "field": "d", "allow_negative": True},
        False,
    ),
    "latest_carry_over": ({"aggregation": "latest", "field": "n", "carry_over": True}, True),
    "latest_carry_over_no_closing_level": (
        {"aggregation": "latest", "field": "n", "carry_over": True},
        False,
    ),
    "latest_carry_over_grouped": (
        {"aggregation": "latest", "field": "n", "carry_over": True, "group_by": ["team"]},
        True,
    ),
}
GROUPS = 3  # group values of the grouped meter
# count-meter runs with two discounts per customer: whether the previous period's use records are stored
DISCOUNTED = {"count_discounts_first_period": False, "count_discounts_later_period": True}
KINDS.update({kind: ({"aggregation": "count"}, False) for kind in DISCOUNTED})
FIXED_OFF_MINOR = 25  # the fixed-amount coupon (each window's invoice is 100 minor units before discounts)


def _cell(kind: str, hour: datetime, n: int) -> tuple[str, dict[str, Any]]:
    """The (group, stored cell) of cell ``n`` of a customer's meter in ``hour``."""
    aggregation = KINDS[kind][0]["aggregation"]
    group = f"team=t{n % GROUPS}" if "group_by" in KINDS[kind][0] else ""
    if aggregation == "count":
        return group, {"n": 10, "agg": "count"}
    if aggregation == "weighted_sum":
        return group, {"n": 1, "agg": "weighted_sum", "s": Decimal(1), "tw": Decimal(0)}
    return group, {"n": 1, "agg": "latest", "lt": (hour + timedelta(minutes=5)).isoformat(), "lv": Decimal(n)}


def _seed(kind: str, subs: int, months: int, cells: int, anchor: datetime) -> None:
    """The meter, a plan charging it, ``subs`` subscriptions billed up to the period that just closed,
    ``cells`` cells of every month of their history, and (when the kind says so) the closing level the
    previous window's billing stored."""
    from neruba.dal.catalog import CatalogRepository
    from neruba.dal.clients import client
    from neruba.dal.levels import closing_item
    from neruba.dal.locks import ts
    from neruba.dal.plans import PlansRepository
    from neruba.domain.ingest import hour_bucket
    from neruba.domain.levels import ClosingLevel, GroupLevel
    from neruba.domain.periods import add_interval
    from neruba.models.catalog import Meter as CatalogMeter
    from neruba.models.catalog import PlanVersionIn
    from neruba.settings import get_settings

    settings = get_settings()
    dynamodb = client("dynamodb")
    fields, with_closing = KINDS[kind]
    CatalogRepository(settings.catalog_table).create_meter(CatalogMeter(code="m", name="M", **fields))
    charge = {"meter_code": "m", "model": "per_unit", "unit_price": "0.01"}
    plan = {"name": "Basic", "currency": "USD", "interval": "month", "charges": [charge]}
    PlansRepository(settings.catalog_table).publish(
        "basic", PlanVersionIn.model_validate(plan).model_dump(mode="json")
    )
    window_start = add_interval(anchor, "month", months - 1)
    for start in range(0, subs, 500):
        catalog, states, usage = [], [], []
        for number in range(start, min(start + 500, subs)):
            subscription, state = _subscription(number, anchor)
            state.update(next_seq=months, due_at=ts(add_interval(anchor, "month", months)))
            catalog.append(subscription)
            states.append(state)
            customer = state["customer_id"]
            sums: dict[str, Decimal] = {}
            latest: dict[str, GroupLevel] = {}
            for month in range(months):
                first = add_interval(anchor, "month", month)
                for n in range(cells):
                    hour = first + timedelta(days=2 * n, hours=1)
                    group, cell = _cell(kind, hour, n)
                    usage.append({"pk": f"AGG#{customer}#m", "sk": f"{hour_bucket(hour)}#{group}", **cell})
                    if month < months - 1 and "s" in cell:  # the level the billed window starts from
                        sums[group] = sums.get(group, Decimal(0)) + cell["s"]
                    elif month < months - 1 and "lt" in cell:
                        latest[group] = GroupLevel(latest=cell["lv"], latest_at=cell["lt"])
            if with_closing:
                levels = {g: GroupLevel(level=v) for g, v in sums.items()} | latest
                at = hour_bucket(window_start)
                closing = ClosingLevel(at, str(fields["aggregation"]), levels, ts(window_start))
                usage.append(closing_item(customer, "m", closing))
        _batch_write(dynamodb, settings.catalog_table, catalog)
        _batch_write(dynamodb, settings.billing_table, states)
        _batch_write(dynamodb, settings.usage_table, usage)
    dynamodb.put_item(
        TableName=settings.billing_table, Item={"pk": {"S": "MARK#billing-state-backfill"}, "sk": {"S": "#"}}
    )
    if kind in DISCOUNTED:
        _discounts(subs, add_interval(anchor, "month", months - 2), previous=DISCOUNTED[kind])


def _discounts(subs: int, previous_start: datetime, previous: bool) -> None:
    """Every customer gets a coupon of ``FIXED_OFF_MINOR`` for 3 billing periods and 10 % off forever,
    through the admin logic (which flags the customer as having discounts); with ``previous``, each
    discount's use record says the period before the window was its first and took part of the invoice."""
    from neruba import bootstrap
    from neruba.dal.catalog import CatalogRepository
    from neruba.dal.transaction import Transaction, commit
    from neruba.logic.billing import coupons
    from neruba.logic.billing.discounts import period_key
    from neruba.models.catalog import Customer
    from neruba.models.discounts import CouponCreate, DiscountCreate
    from neruba.settings import get_settings
    from neruba.timefmt import ts

    ctx = bootstrap.billing()
    catalog = CatalogRepository(get_settings().catalog_table)
    terms = [
        {
            "amount_off_minor": FIXED_OFF_MINOR,
            "currency": "USD",
            "duration": "repeating",
            "duration_periods": 3,
        },
        {"percent_off": "10", "duration": "forever"},
    ]
    ids = [
        coupons.create_coupon(
            ctx, CouponCreate.model_validate({"name": f"bench {n}", "reason": "bench", **t}), "bench", f"c{n}"
        )["id"]
        for n, t in enumerate(terms)
    ]
    before = period_key(ts(previous_start))
    store = coupons.repo(ctx)
    for number in range(subs):
        customer, sub_id = f"cust-{number:06d}", f"sub_{number:020x}"
        catalog.create_customer(Customer(external_id=customer, name=customer, currency="USD"))
        for n, coupon_id in enumerate(ids):
            body = DiscountCreate(coupon_id=coupon_id, customer_id=customer, reason="bench")
            discount = coupons.create_discount(ctx, body, "bench", f"d{number}-{n}")
            if previous:  # the previous window's invoice took 25 (the fixed coupon) and 10 (10 % of 100)
                use = store.use_item(discount["id"], sub_id, (0, None, 0), (1, before, 25 - 15 * n), "in_x")
                commit(Transaction([use]))


def scenario(kind: str, subs: int, months: int, cells: int) -> dict[str, Any]:
    """Bill the window after ``months - 1`` months of history of ``subs`` subscriptions of meter ``kind``."""
    from benchmarks.moto_shims import EmulatorShims
    from neruba_tools.local.stack import LocalStack

    os.environ["NERUBA_LOCAL_LOG_LEVEL"] = "ERROR"
    with (
        EmulatorShims(),
        LocalStack(
            "template.yaml", ROOT, api_port=0, moto_port=0, stack_name="neruba-bench", schedules=False
        ) as stack,
    ):
        from neruba.dal.clients import client
        from neruba.dal.invoices import InvoicesRepository
        from neruba.domain.periods import add_interval
        from neruba.settings import get_settings

        # GIVEN subscriptions whose period ``months - 1`` closed a day ago, with all their usage stored
        now = datetime.now(UTC)
        anchor = (now - timedelta(days=32)).replace(minute=0, second=0, microsecond=0)
        anchor = add_interval(anchor, "month", -(months - 1))
        _seed(kind, subs, months, cells, anchor)
        worker = Meter(main=False)
        worker.attach(client("dynamodb"))
        # WHEN the billing schedule fires and the billing queue drains
        started = time.perf_counter()
        stack.fire_schedule("BillingSchedulerFunction.Schedule")
        while _pending(stack, "BillingQueue") and time.perf_counter() - started < 3600:
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        worker.detach(client("dynamodb"))
        counted = worker.snapshot()
        # THEN every window is invoiced (a sample invoice shows its quantity)
        invoices = InvoicesRepository(get_settings().billing_table)
        found, _ = invoices.list("cust-000000", None, 10, None)
        usage = [i for i in found if i.kind == "usage"]
        lines = [line.document for line in usage[0].lines] if usage else []
        invoiced = len(
            [
                n
                for n in range(subs)
                if any(i.kind == "usage" for i in invoices.list(f"cust-{n:06d}", None, 10, None)[0])
            ]
        )
    return {
        "kind": kind,
        "subscriptions": subs,
        "months_of_history": months,
        "cells_per_month": cells,
        "stored_cells_per_customer": months * cells,
        "invoiced": invoiced,
        "run_seconds": round(seconds, 1),
        "worker": {
            **counted,
            "read_requests_per_window": round(counted["read_requests"] / max(invoiced, 1), 2),
            "items_read_per_window": round(counted["items_read"] / max(invoiced, 1), 2),
        },
        "sample_line": {key: str(lines[0].get(key)) for key in ("line_id", "quantity", "amount_minor")}
        if lines
        else None,
        "sample_invoice": {
            "subtotal_minor": usage[0].subtotal_minor,
            "total_minor": usage[0].total_minor,
            "lines": [(str(line.get("kind")), line.get("amount_minor")) for line in lines],
        }
        if usage
        else None,
    }


def _in_child(kind: str, subs: int, months: int, cells: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.billing_levels",
        "--one",
        kind,
        str(subs),
        str(months),
        str(cells),
    ]
    _progress(f"level meters: {kind}, {subs} subscriptions, {months} months of {cells} cells")
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"scenario {kind} failed ({done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    _progress(
        f"  {result['invoiced']} invoiced, {result['worker']['read_requests_per_window']} reads and "
        f"{result['worker']['items_read_per_window']} items per window"
    )
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subs", type=int, default=100)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--cells", type=int, default=10, help="cells per customer and month")
    parser.add_argument("--one", nargs=4, metavar=("KIND", "SUBS", "MONTHS", "CELLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        kind, subs, months, cells = args.one
        result = scenario(kind, int(subs), int(months), int(cells))
        print(json.dumps(result))
        return result
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "note": "The local stack as in the billing run; every window bills one meter. Request counts carry "
        "over to DynamoDB, times do not.",
        "runs": {kind: _in_child(kind, args.subs, args.months, args.cells) for kind in KINDS},
        "total_seconds": 0.0,
    }
    result["load_average_1min"] = {"start": load_start, "end": os.getloadavg()[0]}
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    out = ROOT / "benchmarks" / "results" / "billing_levels.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"level meters benchmark: written to {out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
