"""Write docs/performance.md from the results of every benchmark (``make bench`` runs it last).

Every figure comes from benchmarks/results/*.json, written by the benchmark that measured it; each is shown
beside the baseline measured in the same run, with the machine it ran on. The capacity and cost section is
computed from the measured write units and request counts and the published prices in ``PRICES``.

    .venv/bin/python -m benchmarks.report        # rewrite docs/performance.md from the stored results
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import local_stack

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "performance.md"

# us-east-1 list prices (USD) used for the cost estimate; change them here and rerun the report.
PRICES = {
    "dynamodb_write_request_unit": 0.625 / 1e6,  # on-demand WRU
    "dynamodb_read_request_unit": 0.125 / 1e6,  # on-demand RRU (eventually consistent 4 KB read)
    "dynamodb_storage_gb_month": 0.25,
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm64": 0.0000133334,
    "api_gateway_rest_request": 3.50 / 1e6,
}
# Assumptions of the estimate (not measured here; stated so they can be challenged).
ASSUMED = {
    "events_per_api_request": 100,
    "api_ms": 60,
    "api_memory_gb": 0.5,
    "worker_ms_per_batch_of_100": 900,
    "worker_memory_gb": 0.5,
    "worker_max_concurrency": 20,
    "table_write_quota_per_second": 40_000,
    "partition_write_units_per_second": 1_000,
    "contribution_units_full_batch": 6,
}


# What moved the figures since the runs each section compares with (written from the re-measured runs).
INGEST_CHANGES = (
    "Write units per event are unchanged in every shape but one, and so are the worker's own requests per "
    "batch (one BatchGetItem of the batch's customers and meters, the puts, one outcome update): the "
    "limited path changed since, but these shapes have no limits (the limits section measures that path). "
    "The requests that moved are the sweep's: a fold run now also removes the folded items past their "
    "retention, reading each of the 8 pending shards' watermark a second time, and the benchmark runs the "
    "fold twice (when the pending windows close, and 36 days on, to count the removal), so its fold "
    "reads went from 16 requests (one run: a watermark GetItem and a Query per shard) to 48 (two runs: "
    "two GetItem and a Query per shard), whether or not a shard holds anything: +32 requests, a cost per "
    "sweep run, not per event (+0.016 per event over these 2,000 events). The earlier figures of these "
    "shapes came from a run before the removal step; the sparse shape, measured again then, already paid "
    "it. The one write that moved, 1 customer, 50 groups, 24 hours per batch (8 write units over 2,000 "
    "events): its events span the 24 hours before the run starts, so where midnight splits each batch "
    "into two day contributions depends on the hour the benchmark runs, and each of the two (about 5 KB "
    "together) is rounded up to whole KB on its own. Checked: this code, its events dated from 09:30 "
    "(the hour of the earlier run), writes its contributions in 192 units, the earlier figure; dated from "
    "17:30, in 200."
)
LIMIT_CHANGES = (
    "The sparse rows changed: a sparse batch's limited days now join the batch's shared pending items "
    "once their counter moved, instead of a contribution of their own each, and the batch reads its "
    "counters, and the pending items their last writes name, in one BatchGetItem each instead of three "
    'GetItem per customer (docs/limits.md, "Sparse batches under limits"). The other shapes have fewer '
    "than 16 sparse days per batch and keep the write of their own per customer's meter: their counts "
    "did not move."
)
NAIVE_WHERE = (
    "Where it goes, in the sparse shapes with limits: each event pays its own event item and its own "
    "counter put (the counter carrying the write's record, which names the batch's pending item of the "
    "customer's shard instead of a contribution of its own), each under 1 KB: 2 write units, the counter "
    "being the naive handler's counter. What is left above 2.0 is the batch's shared pending items (8 a "
    "batch, about 2 KB each, 0.16 to 0.19 per event), the fold's contributions (0.05 to 0.1) and the "
    "removal of the folded items 35 days on (0.16 to 0.19): the same as without limits, the price of "
    "counting each event exactly once in the usage that billing reads. The requests, by call site in one "
    "run of the sequential-id shape (2,000 events): PutItem 2,000 events, 2,000 counters, 160 pending "
    "items, 20 journals and 20 outcome counters; BatchGetItem about 4 per batch (its customers and the "
    "meter, the 100 counters, the pending items their last writes name); no GetItem (it was 2.95 per "
    "event: the counter, the write's own contribution and the last recorded contribution, one GetItem "
    "each per customer). Limits add 1.0 write unit per event in these shapes (the counter put: one event "
    "per customer and batch), down from 1.5 to 1.6, against the aim of 0.2 that the 10-customer shape "
    "meets; the `@idempotent` baseline of the ingest section costs 4.0 write units and 4.0 requests per "
    "event in this shape."
)
BILLING_CHANGES = (
    "The full-size run of 2026-11-25 sent GetItem 4 and Query 3 per window; a window now also reads the "
    "optional features' flags (one BatchGetItem; before the flags it queried five features whether or "
    "not the customer had any) and the watermark and unfolded items of the customer's pending shard (a "
    "GetItem and a Query, since sparse batches are written as pending items). In this workload none of "
    "them finds anything, so items read per window stay at 14, and each window still commits one "
    "transaction (8 actions). The level-meter runs below send one BatchGetItem more: their windows "
    "follow five billed ones, whose invoices the late-event look-back reads; here every window is its "
    "subscription's first full period. The run times are the emulator's under the load named above; "
    "the full-size timings are those of the table above, not measured again."
)
DISCOUNT_COST = (
    "The reads that discounts add are the customer's discounts (one Query, whose items are the two "
    "discounts) and each discount's period record (one GetItem per discount: found from the second "
    "period on, not in the first); the invoice's transaction carries one Update of each record (a "
    "transactional write: 2 write units each under 1 KB). A customer with no discount pays none of this "
    "(its flag, read with the others in one BatchGetItem, says so); a discount attached to the plan "
    "version adds one Query of the plan's discounts and the same per-discount record."
)


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _load_text(run: dict[str, Any]) -> str:
    load = run.get("load_average_1min") or {}
    return (
        f"1-minute load average {load['start']:.1f} at the start, {load['end']:.1f} at the end"
        if load
        else ""
    )


MEASURED = (  # (results file, what it measured, the command)
    (
        "ingest_writes.json",
        "ingest shapes",
        "benchmarks.ingest_writes.main(), the ingest step of benchmarks.run",
    ),
    ("limits.json", "usage limits", "python -m benchmarks.limits"),
    ("billing_levels.json", "level meters and discounts", "python -m benchmarks.billing_levels"),
    (
        "billing_run_1000.json",
        "the billing run at 1,000 subscriptions",
        "python -m benchmarks.billing_run --subs 1000",
    ),
)


# The results this page shows that were not measured again with the runs above (dates of their results).
NOT_RERUN = (
    "Not measured again with these: the cold start and the package sizes (2026-11-25), the full-size "
    "billing run (2026-11-25; its counts per window are re-counted below it), the local stack's client "
    "and volume runs, the client fault run and the webhooks run (each 2026-12-01, earlier in the day): "
    "their figures are those of their last run."
)


def _measured_on(lines: list[str]) -> None:
    """When and under what load the counts of this page were last taken, for the runs that record it."""
    found = []
    for name, what, command in MEASURED:
        run = _load(name)
        if run is None or not run.get("measured_at"):
            continue
        load = _load_text(run)
        found.append(f"{what} {run['measured_at']} (`{command}`{'; ' + load if load else ''})")
    if not found:
        return
    lines += [
        "**Measured on** one x86_64 Linux machine with 2 cores shared with other developers' builds and tests, "
        "Python 3.11, moto in process: every time on this page was measured under that load and moves with "
        "it; the counts (write units, requests, items read per event or per window) do not. The benchmarks "
        "ran one at a time. Last runs: " + "; ".join(found) + ". " + NOT_RERUN,
        "",
    ]


def _ingest(lines: list[str], ingest: dict[str, Any] | None) -> float:
    lines += ["## Ingest: DynamoDB cost per accepted event", ""]
    if ingest is None:
        lines += ["Not measured yet: run `make bench`.", ""]
        return 1.42
    neruba, base = ingest["neruba"], ingest["baseline_powertools_idempotent"]
    work = ingest["workload"]
    lines += [
        f"Measured {ingest.get('measured_at', '?')} on {ingest.get('machine', '?')}: {work['events']} events of "
        f"{work['stored_event_bytes']} bytes stored, batches of {work['batch']} over {work['customers']} customers, "
        "through the real ingest worker on moto; the baseline wraps a per-event handler in Powertools "
        "`@idempotent_function` in the same run.",
        "",
        "| per accepted event | Neruba | `@idempotent` baseline | ratio |",
        "| --- | --- | --- | --- |",
        f"| write units | {neruba['write_units_per_event']} | {base['write_units_per_event']} | "
        f"{ingest['ratios']['write_units_per_event_vs_baseline']} |",
        f"| DynamoDB requests | {neruba['requests_per_event']} | {base['requests_per_event']} | "
        f"{ingest['ratios']['requests_per_event_vs_baseline']} |",
        "",
    ]
    _ingest_shapes(lines, ingest.get("shapes") or [])
    _ingest_previous(lines, ingest)
    e2e = ingest.get("local_stack_end_to_end")
    if e2e:
        lines += [
            "Through the local stack (HTTP -> API -> SQS -> worker -> DynamoDB, everything on moto in one "
            f"interpreter): {e2e.get('events_per_second_end_to_end', '?')} events/s end to end, "
            f"{e2e.get('events_per_second_api_only', '?')} events/s through the API alone "
            + (
                f"(measured {e2e['measured_at']}, {_load_text(e2e)}; times under load; "
                f"{e2e['accepted']} of {e2e['events']} events accepted; the previous run: "
                f"{_previous_e2e(ingest)}). "
                if e2e.get("measured_at")
                else "measured with the ingest figures above, before the local stack ran invocations "
                "concurrently (its own section below has the current figures). "
            )
            + "This measures the code path on this machine, not what AWS sustains (see the capacity section).",
            "",
        ]
    return float(neruba["write_units_per_event"])


def _previous_e2e(ingest: dict[str, Any]) -> str:
    was = (ingest.get("previous_run") or {}).get("local_stack_end_to_end") or {}
    if not was:
        return "none stored"
    return (
        f"{was.get('events_per_second_end_to_end')} events/s end to end and "
        f"{was.get('events_per_second_api_only')} through the API, before the local stack ran invocations "
        "concurrently"
    )


def _ingest_shapes(lines: list[str], shapes: list[dict[str, Any]]) -> None:
    """Every batch shape: writes, requests, billing reads and cost per event, against the baseline."""
    if not shapes:
        return
    lines += [
        "Every batch shape (2,000 events, batches of 100; billing reads = reading each customer's usage of the "
        "meter once, strongly consistent; cost = write units at 0.625 and read units at 0.125 USD per million):",
        "",
        "| shape | write units / event | requests / event | billing read units / event | billing read requests "
        "per customer | USD per million events | baseline: write units, requests, USD per million | cost vs "
        "baseline |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for shape in shapes:
        n, b = shape["neruba"], shape["baseline_powertools_idempotent"]
        lines.append(
            f"| {shape['shape']['name']} | {n['write_units_per_event']} | {n['requests_per_event']} | "
            f"{_reads(n)} | {n.get('billing_requests_per_customer', n.get('billing_queries_per_customer', ''))} | "
            f"{n['usd_per_million_events']} | "
            f"{b['write_units_per_event']}, {b['requests_per_event']}, {b['usd_per_million_events']} | "
            f"{shape['ratios']['usd_per_million_events_vs_baseline']} |"
        )
    lines += [
        "",
        "Earlier designs, measured with the same benchmark (write units / requests per event): a slice and an "
        "aggregate update in one transaction per cell: 1.16 / 1.03 with 1 customer per batch, 1.42 / 1.12 "
        "with 10, 5.02 / 2.03 with 100. One contribution item per (customer, meter, hour, group) cell of a "
        "batch: 1.08 / 1.03 with 1 customer, 1.12 / 1.121 with 10, 2.02 / 2.021 with 100, 1.62 / 1.621 for "
        "10 customers over 6 hours, 1.52 / 1.52 for 50 groups; billing read two partitions per customer and "
        "meter (`AGG#` aggregates and `USE#` contributions). One contribution per (customer, meter, day) of "
        "each batch, before sparse days were pending: 1.08 / 1.04 with 1 customer, 1.12 / 1.13 with 10, "
        "2.02 / 2.04 with 100.",
        "",
        "**The trade-off.** Counting costs one conditional put per (customer, meter, day) of a batch: the "
        "contribution holds every hour and group cell the batch counted for that customer's meter that day, "
        "with each cell's transaction ids, so a batch spread over hours or groups costs about what a batch in "
        "one cell costs (a write unit per started KB: about 80 bytes per event). Billing reads one Query per "
        "customer and meter (aggregates and contributions share the partition), one item per batch and day "
        "instead of one per cell; the reads stay O(batches), never O(events), and a repair folds a cell into "
        "one aggregate item. Writes cost five times reads per unit, so moving the sum from ingest to read "
        "time is cheaper in every shape.",
        "",
        "Billing reads one Query per customer, meter and window of its usage partition (it was two while "
        "contributions had a partition of their own), plus the watermark and pending items of the customer's "
        "pending shard (see below): `tests/functional/ingest/test_usage_layout.py` counts the Queries of a "
        "read. A read over a window that starts or ends within a day also reads "
        "that day's contributions for the hours outside the window (at most a day at each end), and drops "
        "them.",
        "",
    ]
    _sparse_batches(lines, shapes)


def _ingest_previous(lines: list[str], ingest: dict[str, Any]) -> None:
    """Each shape against the run this one replaced (``previous_run``), and why the figures moved."""
    previous = ingest.get("previous_run")
    if not previous:
        return
    moves = []
    for shape in ingest.get("shapes") or []:
        name, n = shape["shape"]["name"], shape["neruba"]
        was = previous["shapes"].get(name)
        if was is None:
            continue
        moves.append(
            f"{name}: {was['write_units_per_event']} -> {n['write_units_per_event']} write units, "
            f"{was['requests_per_event']} -> {n['requests_per_event']} requests"
        )
    lines += [
        f"**Against the previous run** ({previous['measured_at']}), per event: {'; '.join(moves)}. "
        + INGEST_CHANGES,
        "",
    ]


def _reads(n: dict[str, Any]) -> str:
    """Billing read units per event, and before the fold of pending days when it differs."""
    before = n.get("billing_read_units_per_event_before_fold")
    after = n["billing_read_units_per_event"]
    return f"{after} ({before} before the fold)" if before is not None and before != after else str(after)


def _sparse_batches(lines: list[str], shapes: list[dict[str, Any]]) -> None:
    """The pending-usage design for batches of many customers, with the sparse shape's figures."""
    sparse = next((s for s in shapes if s["shape"]["customers_per_batch"] >= 100), None)
    lines += [
        "**One event per customer in a batch: pending usage.** A batch of 100 events from 100 customers used "
        "to write 100 event items and 100 contributions (2.02 write units per event). Now a batch with at "
        "least 16 sparse days (a customer's meter and day with at most 3 of its events) writes them as one "
        "pending item per pending shard (8 shards by customer), and the sweep folds each shard's closed "
        "ten-minute window into one contribution per customer, meter and day (docs/architecture.md, "
        '"Sparse batches", says why each count stays exactly once). Readers add the pending days not '
        "folded yet: one GetItem (the shard's watermark) and one Query (its pending items) more per read.",
        "",
    ]
    if sparse is None:
        return
    n = sparse["neruba"]
    fold = n.get("fold") or {}
    units = n.get("write_units_by_item") or {}
    lines += [
        f"In the sparse shape above: {n['write_units_per_event']} write units per event, of which the "
        f"pending items are {units.get('PND', 0)} and the fold's {fold.get('contributions', '?')} "
        f"contributions {units.get('AGG', 0)} of {n['write_units']}; the fold ran once after the "
        f"{sparse['workload']['events']} events, over {fold.get('minutes', '?')} windows and shards. The "
        "pending items' units are their puts and their removal: an item has no expiry (unfolded usage must "
        "not vanish however long the sweep stops), it stays the once-mark of its batch for 35 days, and a "
        f"later fold deletes it (here the {fold.get('removed', '?')} items, deleted by a fold run 36 days "
        "on), a delete costing the item's size again. A "
        "deployment whose sweep folds more often pays a fold write per customer, meter and day for each "
        "window that customer sent events in (at most one per 10 minutes). Billing's reads: "
        f"{n['billing_read_units_per_event']} read units per event after the fold "
        f"({n.get('billing_requests_per_customer', '?')} requests per customer, pending shard included), "
        f"{n.get('billing_read_units_per_event_before_fold', '?')} before it (each customer's read then "
        "reads an eighth of every unfolded pending item); the cost column counts the reads after the fold, "
        "and with the reads before it the cost stays below the baseline's. What is left above the floor of "
        "1.0 is bytes: each transaction id is stored in the event, the pending item and the fold's "
        "contribution (the benchmark's ids are 54 characters).",
        "",
        "**The sparse-batch limit.** The pending items of the whole deployment share 8 partitions "
        "(`PND#{s}`), each taking about 2 write units per sparse batch of 100 events to put, and as many "
        "again to delete 35 days later: in a steady state, at a partition's 1,000 write units/s the pending "
        "path carries about 250 sparse batches/s (25,000 events/s). Past that, "
        "DynamoDB throttles the puts, the worker writes those days as contributions instead (checked against "
        "the pending item, as any failed pending put) and the cost per event goes back towards 2 write "
        "units. More pending shards would raise the limit, but `PENDING_SHARDS` decides which shard readers "
        "look in, so it can change only with no pending item left unfolded (not built).",
        "",
    ]


def _machine(machine: Any) -> str:
    if not isinstance(machine, dict):
        return str(machine)
    return f"Python {machine.get('python')}, {machine.get('platform')}, {machine.get('cpus')} cores"


def _billing(lines: list[str], billing: dict[str, Any] | None) -> None:
    lines += ["## Billing runs", ""]
    if billing is None:
        lines += ["Not measured yet: run `make bench`.", ""]
        return
    base = billing["base"]
    lines += [
        f"Machine: {_machine(billing.get('machine'))}. {billing.get('note', '')}",
        "",
        "| | subscriptions | events | aggregate cells | invoiced | run seconds (local stack) | "
        "read requests / window | items read / window | transactions / window |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def row(label: str, run: dict[str, Any]) -> str:
        w = run["worker"]
        per_window = round(w["transactions"] / max(run["invoiced"], 1), 2)
        return (
            f"| {label} | {run['subscriptions']:,} | {run['events']:,} | {run['aggregate_cells']:,} | "
            f"{run['invoiced']:,} | {run['run_seconds']} | {w['read_requests_per_window']} | "
            f"{w['items_read_per_window']} | {per_window} |"
        )

    lines.append(row("base", base))
    for group in ("events_do_not_matter", "cells_do"):
        for label, run in (billing.get(group) or {}).items():
            lines.append(row(label.replace("_", " "), run))
    groups = billing.get("events_do_not_matter") or {}
    same, fewer = groups.get("same_cells"), groups.get("same_cells_10x_fewer_events")
    more_cells = (billing.get("cells_do") or {}).get("2x_cells_same_events")
    if same and fewer and more_cells:
        ratio = same["worker"]["items_read_per_window"] / fewer["worker"]["items_read_per_window"]
        cells = more_cells["worker"]["items_read_per_window"] / same["worker"]["items_read_per_window"]
        lines += [
            "",
            f"Ten times the events in the same aggregate cells: items read per window x{ratio:.2f}; twice "
            f"the cells: x{cells:.2f}. Billing cost follows aggregates, not events.",
        ]
    scheduler = base["scheduler"]
    lines += [
        "",
        f"Base run: {base['invoiced']:,} invoices in {base['run_seconds']} s "
        f"({base['windows_per_second']} windows/s, from firing the schedule to an empty billing queue); "
        f"the scheduler: {scheduler['seconds']} s, {scheduler['read_requests']} read requests, "
        f"{scheduler['transactions']} transactions. Dead-lettered: {base['dead_lettered']}; "
        f"cancelled transactions: {base['worker']['cancelled_transactions']}.",
        "",
    ]


def _billing_recount(lines: list[str], small: dict[str, Any] | None, full: dict[str, Any] | None) -> None:
    """The billing run again at a tenth of the size (``--subs 1000``): the counts per window now."""
    if small is None:
        return

    def row(label: str, run: dict[str, Any]) -> str:
        w = run["worker"]
        per = ", ".join(f"{op} {round(n / max(run['invoiced'], 1), 2)}" for op, n in w["requests"].items())
        actions = round(w.get("transaction_items", 0) / max(run["invoiced"], 1), 2)
        return (
            f"| {label} | {run['subscriptions']:,} | {run['events']:,} | {run['aggregate_cells']:,} | "
            f"{run['invoiced']:,} | {run['run_seconds']} | {w['read_requests_per_window']} | "
            f"{w['items_read_per_window']} | {per} | {actions} |"
        )

    lines += [
        f"**Re-counted {small['measured_at']}** with `python -m benchmarks.billing_run --subs 1000` (the "
        f"smaller option; {_load_text(small)}; run seconds under that load, not comparable with the table "
        "above):",
        "",
        "| | subscriptions | events | aggregate cells | invoiced | run seconds (local stack, under load) | "
        "read requests / window | items read / window | requests / window by operation | transaction "
        "actions / window |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        row("base", small["base"]),
    ]
    for group in ("events_do_not_matter", "cells_do"):
        for label, run in (small.get(group) or {}).items():
            lines.append(row(label.replace("_", " "), run))
    before = (full or {}).get("base", {}).get("worker", {})
    now = small["base"]["worker"]
    lines += [
        "",
        f"Per window: {before.get('read_requests_per_window', '?')} read requests in the table above, "
        f"{now['read_requests_per_window']} now; items read {before.get('items_read_per_window', '?')} and "
        f"{now['items_read_per_window']}; dead-lettered {small['base']['dead_lettered']}, cancelled "
        f"transactions {now['cancelled_transactions']}. " + BILLING_CHANGES,
        "",
    ]


LEVEL_LABELS = {
    "count": "count (reference)",
    "weighted_sum": "weighted_sum, previous window billed",
    "weighted_sum_no_closing_level": "weighted_sum, no closing level stored",
    "latest_carry_over": "latest with carry_over, previous window billed",
    "latest_carry_over_no_closing_level": "latest with carry_over, no closing level stored",
    "latest_carry_over_grouped": "latest with carry_over by 3 groups, previous window billed",
    "count_discounts_first_period": "count, two discounts per customer, their first period",
    "count_discounts_later_period": "count, two discounts per customer, a later period",
}


def _billing_levels(lines: list[str], levels: dict[str, Any] | None) -> None:
    """Reads per window of level meters (``benchmarks.billing_levels``) against a count meter."""
    lines += ["## Billing runs of level meters", ""]
    if levels is None:
        lines += ["Not measured yet: run `python -m benchmarks.billing_run --levels`.", ""]
        return
    runs = levels["runs"]
    first = next(iter(runs.values()))
    lines += [
        f"Machine: {_machine(levels.get('machine'))}. {levels.get('note', '')} {first['subscriptions']:,} "
        f"subscriptions billing the window after {first['months_of_history'] - 1} months of history, "
        f"{first['cells_per_month']} cells per customer and month ({first['stored_cells_per_customer']} "
        "stored in all). A level meter's window reads its last closing level "
        'and its own hours (docs/pricing.md, "Closing levels").',
        "",
        "| meter | invoiced | read requests / window | items read / window |",
        "| --- | --- | --- | --- |",
    ]
    for kind, run in runs.items():
        w = run["worker"]
        lines.append(
            f"| {LEVEL_LABELS.get(kind, kind)} | {run['invoiced']:,} | {w['read_requests_per_window']} | "
            f"{w['items_read_per_window']} |"
        )
    base = runs.get("count", {}).get("worker", {})
    billed = runs.get("weighted_sum", {}).get("worker", {})
    fallback = runs.get("weighted_sum_no_closing_level", {}).get("worker", {})
    if base and billed and fallback:
        lines += [
            "",
            f"With the previous window billed, a level meter reads "
            f"{round(billed['items_read_per_window'] - base['items_read_per_window'], 2)} item(s) and "
            f"{round(billed['read_requests_per_window'] - base['read_requests_per_window'], 2)} request(s) "
            "per window more than a count meter, whatever its history: the closing levels are kept in the "
            "meter's usage partition, so the window's usage Query returns them with its cells (it was one "
            "Query more while they had a partition of their own). Without a closing level it reads the whole "
            f"history ({fallback['items_read_per_window']} items and "
            f"{round(fallback['read_requests_per_window'] - base['read_requests_per_window'], 2)} request(s) "
            "more per window here, the items growing with every month), which is what every window of these "
            "meters read before closing levels.",
        ]
    lines.append("")
    _discount_cost(lines, runs)


def _per_window(run: dict[str, Any], key: str) -> float:
    return float(run["worker"].get(key, 0)) / max(run["invoiced"], 1)


def _discounted(found: list[tuple[str, Any]]) -> str:
    """The sample invoice's lines after the discounts (minor units), when the run stored one."""
    sample = found[-1][1].get("sample_invoice") if found else None
    if not sample:
        return ""
    lines = ", ".join(f"{kind} {amount}" for kind, amount in sample["lines"])
    return f"; a sample invoice's lines in minor units: {lines}, total {sample['total_minor']}"


def _discount_cost(lines: list[str], runs: dict[str, Any]) -> None:
    """What two discounts add to a count-meter window: requests by operation, items, transaction actions."""
    base = runs.get("count")
    found = [
        (kind, runs.get(kind)) for kind in ("count_discounts_first_period", "count_discounts_later_period")
    ]
    found = [(kind, run) for kind, run in found if run]
    if not base or not found:
        return
    texts = []
    for kind, run in found:
        ops = sorted(set(base["worker"]["requests"]) | set(run["worker"]["requests"]))
        added = {
            op: round(
                (run["worker"]["requests"].get(op, 0) - base["worker"]["requests"].get(op, 0))
                / run["invoiced"],
                2,
            )
            for op in ops
        }
        changed = ", ".join(f"{op} {n:+}" for op, n in added.items() if n) or "none"
        actions = round(_per_window(run, "transaction_items") - _per_window(base, "transaction_items"), 2)
        when = "In their first period" if kind.endswith("first_period") else "in a later period"
        texts.append(
            f"{when}: {run['worker']['read_requests_per_window']} read requests and "
            f"{run['worker']['items_read_per_window']} items read per window against "
            f"{base['worker']['read_requests_per_window']} and {base['worker']['items_read_per_window']} "
            f"(by operation: {changed}), and {actions:+} action(s) in the window's transaction "
            f"({round(_per_window(run, 'transaction_items'), 2)} against "
            f"{round(_per_window(base, 'transaction_items'), 2)})"
        )
    lines += [
        "**Discounts.** The last two rows bill the count meter's window for customers who each hold a "
        "coupon of 0.25 USD for 3 billing periods and a 10 % coupon forever (the invoice is 1.00 USD before "
        f"them{_discounted(found)}). A coupon counts billing periods, not invoices: each discount keeps one record per "
        "subscription of the last period it discounted (`period`) and what it took in it (`taken_minor`), "
        "read by every window it may apply to and moved in the invoice's own transaction, conditional on "
        "what was read. " + "; ".join(texts) + ". " + DISCOUNT_COST,
        "",
    ]


def _cold(lines: list[str], cold: dict[str, Any] | None) -> None:
    lines += ["## Cold start: handler import in a fresh interpreter", ""]
    if cold is None:
        lines += ["Not measured yet: run `make bench`.", ""]
        return
    b = cold["baselines"]
    lines += [
        f"Machine: {cold['machine']}; median of {cold['rounds']} fresh interpreters each. Baselines in the same "
        f"run: `import boto3` {b['import_boto3']['median_ms']} ms; a bare Powertools "
        f"`APIGatewayRestResolver(enable_validation=True)` app with one pydantic route "
        f"{b['bare_powertools_app']['median_ms']} ms. Targets: API handlers at most the bare app, workers and "
        "schedulers at most 1.3 x `import boto3`.",
        "",
    ]
    floor = b.get("worker_floor")
    if floor:
        lines += [
            f"The worker floor, measured in the same run: {floor['median_ms']} ms "
            f"({floor['ratio_to_import_boto3']} x `import boto3`). It is what any SQS worker imports under "
            "the project's fixed packages with no project code at all: botocore's session (the clients), "
            "boto3's DynamoDB serializer, Powertools' Logger, Metrics and batch utility, and one pydantic "
            "model. A worker target below that ratio cannot be met without replacing one of those packages "
            "by code of our own, which the project does not do.",
            "",
        ]
        steps = floor.get("cumulative_steps") or {}
        if steps:
            lines += [
                "The floor step by step (each step adds its imports to those before it): "
                + "; ".join(
                    f"{name.replace('_', ' ')} {step['median_ms']} ms ({step['ratio_to_import_boto3']} x)"
                    for name, step in steps.items()
                )
                + ".",
                "",
            ]
    lines += [
        "| function | kind | ms | baseline | ratio | target | met | x worker floor | heavy modules imported |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in cold["handlers"].items():
        lines.append(
            f"| {name} | {row['kind']} | {row['median_ms']} | {row['baseline']} | {row['ratio']} | "
            f"{row['target']} | {'yes' if row['meets_target'] else 'no'} | "
            f"{row.get('ratio_to_worker_floor', '')} | {', '.join(row['modules'])} |"
        )
    lines.append("")


def _mb(n: int) -> str:
    return f"{n / 1_048_576:.2f}"


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f}"


def _package(lines: list[str], sizes: dict[str, Any] | None) -> None:
    lines += ["## Package sizes after `sam build`", ""]
    if sizes is None:
        lines += ["Not measured yet: run `make bench`.", ""]
        return
    layer = sizes["layer"]
    limit = sizes["unzipped_limit_bytes"]
    heaviest = ", ".join(f"{name} {_mb(n)}" for name, n in layer["heaviest"].items())
    lines += [
        f"Measured {sizes.get('measured_at', '?')} on {sizes.get('machine', '?')} with `{sizes['command']}` "
        f"({sizes['build_seconds']} s). The shared layer: {layer['files']} files, {_mb(layer['bytes'])} MB "
        f"unzipped, {_mb(layer['zipped_bytes'])} MB zipped (heaviest, MB: {heaviest}). Lambda allows "
        f"{_mb(limit)} MB unzipped for a function and its layers together.",
        "",
        "| function | files | KB unzipped | KB zipped | MB with the layer | within limit | ships stripe |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in sizes["functions"].items():
        lines.append(
            f"| {name} | {row['files']} | {_kb(row['bytes'])} | {_kb(row['zipped_bytes'])} | "
            f"{_mb(row['with_layer_bytes'])} | {'yes' if row['within_unzipped_limit'] else 'no'} | "
            f"{'yes' if row['ships_stripe'] else 'no'} |"
        )
    lines.append("")


def _capacity(lines: list[str], write_units: float) -> None:
    a, p = ASSUMED, PRICES
    per_million: dict[str, float] = {
        "DynamoDB writes": write_units * 1e6 * p["dynamodb_write_request_unit"],
        "DynamoDB reads (catalog, cached per container)": 0.02 * 1e6 * p["dynamodb_read_request_unit"],
        "DynamoDB storage, first month (1 KB per event)": 1.0 * p["dynamodb_storage_gb_month"],
        "SQS (send, receive, delete in batches of 10)": 0.3 * 1e6 * p["sqs_request"],
        "API Gateway REST": 1e6 / a["events_per_api_request"] * p["api_gateway_rest_request"],
        "Lambda, API": 1e6
        / a["events_per_api_request"]
        * (p["lambda_request"] + a["api_ms"] / 1000 * a["api_memory_gb"] * p["lambda_gb_second_arm64"]),
        "Lambda, ingest worker": 1e6
        / 100
        * (
            p["lambda_request"]
            + a["worker_ms_per_batch_of_100"] / 1000 * a["worker_memory_gb"] * p["lambda_gb_second_arm64"]
        ),
    }
    total = sum(per_million.values())
    worker_rate = a["worker_max_concurrency"] * 100 / (a["worker_ms_per_batch_of_100"] / 1000)
    table_rate = a["table_write_quota_per_second"] / write_units
    hot_rate = a["partition_write_units_per_second"] / a["contribution_units_full_batch"] * 100
    lines += [
        "## On paper: what the design sustains on AWS, and what it costs",
        "",
        "Assumptions (not measured here): " + ", ".join(f"{k} = {v}" for k, v in a.items()) + ".",
        "",
        "**Whole table.** Each accepted event costs "
        f"{write_units} write units (measured above). A table's default on-demand ceiling of "
        f"{a['table_write_quota_per_second']:,} write units/s therefore carries about {table_rate:,.0f} events/s; "
        "the quota can be raised, and event items are keyed `EVT#{customer}#{transaction_id}`, so their "
        "writes spread over every partition. Before the table, the worker's concurrency is the limit: "
        f"{a['worker_max_concurrency']} concurrent batches of 100 at {a['worker_ms_per_batch_of_100']} ms each is "
        f"about {worker_rate:,.0f} events/s (`ScalingConfig.MaximumConcurrency` in template.yaml raises it). "
        "SQS standard queues and API Gateway (throttled at 1,000 requests/s, bursts of 2,000, so 100,000 events/s "
        "in full batches) are not the limit.",
        "",
        "**One hot customer.** The writes that concentrate on one partition are a customer's contributions "
        "`AGG#{customer}#{meter}`: one put per batch and day, never the same item twice (no contention, no "
        "read before a write). A full batch's contribution lists its 100 transaction ids (about "
        f"{a['contribution_units_full_batch']} write units); a partition serves about "
        f"{a['partition_write_units_per_second']:,} write units/s, so one unsharded customer's meter counts "
        f"about {hot_rate:,.0f} events/s in full batches, and sparse batches (1 unit each) at most 1,000 "
        "batches/s. For 100,000 events/s (Stripe's meter event stream and Metronome publish that figure), set "
        "`NERUBA_USAGE_SHARDS` (built, default 1): each batch's contributions go to partition "
        "`AGG#{customer}#{meter}#{n}`, n = hash(batch) mod shards (shard 0 is the unsuffixed partition, so "
        "existing data stays where it is). 100,000 events/s in full batches is 1,000 batches/s, about 6,000 "
        "write units/s: 8 shards give 8,000 write units/s (about 133,000 events/s), leaving headroom for "
        "uneven hashing. Reads pay for it: billing and the usage API send one Query per shard (8 instead of "
        "1, each within a partition's 3,000 read units/s), and the checks of a redelivery or of the sweep "
        "look at every shard. The number may only grow: readers query shards 0 to n-1, so lowering it would "
        "hide contributions. `tests/functional/ingest/test_usage_layout.py` runs a customer's 40 batches over "
        "8 shards on moto (spread, exact totals, 8 Queries per read, redeliveries and a crashed batch counted "
        "once). The other writes of a batch are already spread (`EVT#{customer}#{transaction_id}`, journals "
        "over 16 partitions per minute) but for the outcome counters, one update per batch on `OUT#{day}`: "
        "the whole deployment's 1,000 batches/s would reach that partition's 1,000 write units/s, so the "
        "same setting spreads them (`OUT#{day}#{n}` by batch, read back added up). The table's last shape "
        "measures a sharded customer: the same write units, 8 Queries of its usage partitions per billing read (and the two reads of its pending shard).",
        "",
        "**Cost per million events** (batches of 100 per API request, us-east-1 on-demand list prices):",
        "",
        "| item | USD per million events |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {value:.3f} |" for name, value in per_million.items()]
    lines += [
        f"| **total** | **{total:.2f}** |",
        "",
        "Sending one event per request instead multiplies the API Gateway and API Lambda lines by 100 "
        f"(about {per_million['API Gateway REST'] * 100:.2f} + "
        f"{per_million['Lambda, API'] * 100:.2f} USD per million).",
        "",
    ]


# Counted by tests/functional/ingest/test_errors_up_front.py, not by a benchmark run: kept here so the
# page is whole whenever it is regenerated.
CATALOG_READS = """\
## Ingest API: catalog reads per request (errors up front)

`POST /v1/events` checks each event's customer and meter before queueing it
([api.md](api.md#errors-up-front-post-v1events)). The reads go through a per-container cache (found
customers and meters kept 60 s; misses never kept):

| request | reads |
| --- | --- |
| warm container, known customers and meters | none |
| cold container, or entries older than 60 s | one `BatchGetItem` per 100 distinct keys (customers + meters), 0.5 read units per key |
| events naming unknown customers or meters | those keys again on every request (at most 200 keys, 100 read units, per request) |

`tests/functional/ingest/test_errors_up_front.py` counts the keys read: a batch of 100 events over 2
customers and 2 meters reads 4 keys once, then nothing; an unknown customer is read on each request.

The ingest worker does not cache: it reads the customers and meters of every batch again, strongly
consistent (one `BatchGetItem` per batch, 1 read unit per distinct customer or meter in it), so an archive or
a meter change made after the request decides the batch. In `benchmarks.ingest_writes` with 10 customers
per batch this is the one `BatchGetItem` per batch of 100: requests per event 1.121 before, 1.13 after
(write units unchanged, 1.12); the ingest tables above were measured with it.
"""


def _client_faults(lines: list[str], run: dict[str, Any] | None) -> None:
    lines += ["## The Python client through a fault proxy", ""]
    if run is None:
        lines += ["Not measured yet: run `python -m benchmarks.client_faults --events 10000`.", ""]
        return
    plan = run["plan"]
    faults = {k: v for k, v in run["proxy_counts"].items() if k not in ("pass", "untouched")}
    lines += [
        f"`{run['command'].strip()}` (not part of `make bench`): {run['events']:,} events sent with the client's "
        f"batcher (batches of up to {run.get('batch_size', 100)}) through a local proxy that, seeded ({plan['seed']}), answered 500 before "
        f"or after forwarding, dropped connections before or after forwarding, and held answers "
        f"{plan['delay_seconds']} s, past the client's timeout, to a fresh local stack. Requests to the proxy: "
        + ", ".join(f"{k} {v}" for k, v in sorted(run["proxy_counts"].items()))
        + f" ({sum(faults.values())} faults). Sending took {run['send_seconds']} s, the stack counted the last "
        f"event {run['settle_seconds']} s later.",
        "",
        "| check | expected | on the stack |",
        "| --- | --- | --- |",
        f"| events in the customer's usage | {run['events']:,} | {run['usage_events']:,} |",
        f"| usage total (values 1..N) | {run['expected_total']} | {run['usage_total']} |",
        f"| accepted in the outcome totals | {run['events']:,} | {run['outcome_totals'].get('accepted', 0):,} |",
        f"| duplicates recognised (outcome totals) | copies of retried batches | "
        f"{run['outcome_totals'].get('duplicate', 0):,} |",
        f"| events with exactly one accepted outcome (of {run['checked_events']:,} read) | "
        f"{run['checked_events']:,} | {run['accepted_copies'].get('1', run['accepted_copies'].get(1, 0)):,} |",
        f"| events never stored (read back by id: event_not_found) | 0 | "
        f"{run.get('statuses', {}).get('missing', 0):,} |",
        f"| events reported failed by the batcher | 0 | {len(run['failures'])} |",
        f"| ingest DLQ | 0 | {run['dead_letters']} |",
        "",
        f"Exact: {'yes' if run['exact'] else 'NO'}. The same scenario runs at 500 events in `make test` "
        "(tests/client/test_client_faults.py), where every event's outcomes are read.",
        "",
    ]
    if run.get("note"):
        lines += [run["note"], ""]


def _webhooks(lines: list[str], run: dict[str, Any] | None) -> None:
    lines += ["## Outgoing webhooks: extra writes per state change, commit to delivery", ""]
    if run is None or "per_state_change" not in run:
        lines += ["Not measured yet: run `python -m benchmarks.webhooks --events 600`.", ""]
        return
    lines += [
        f"Measured {run.get('measured_at', '?')} on {run.get('machine', '?')} (1-minute load average at the end "
        f"of the run: {run.get('load_average_1m_at_end', '?')}; times grow with the load, counts do not). "
        f"`python -m benchmarks.webhooks --events {run['events']}` (not part of `make bench`): {run['events']:,} "
        "state changes from three producers (a customer created, the same customer updated, credit granted to "
        f"it), one endpoint taking all three, relay and delivery run right after each change. "
        f"{run.get('note', '').capitalize()}.",
        "",
        "| state change | items written (all) | of them the outbox item | write requests |",
        "| --- | --- | --- | --- |",
    ]
    for kind, row in run["per_state_change"].items():
        lines.append(
            f"| `{kind}` | {row['items_written']} | {row['of_which_outbox']} | {row['write_requests']} |"
        )
    lines += [
        "",
        "The event costs one item inside the producer's own transaction and no request of its own. Fanning it "
        f"out costs {run['items_written_by_the_relay_per_event']} items per event and endpoint (the relay), and "
        f"a delivered attempt {run['items_written_per_delivered_attempt']}.",
        "",
        "| from the change's commit to the receiver holding the event | ms |",
        "| --- | --- |",
        f"| p50 | {run['ms_commit_to_received_p50']} |",
        f"| p95 | {run['ms_commit_to_received_p95']} |",
        f"| p99 | {run['ms_commit_to_received_p99']} |",
        "",
        f"Throughput of the whole loop: {run['events_per_second']} events/s on this machine (moto in one "
        f"process; each change, relay and attempt is sequential). Customers whose events arrived with "
        f"sequence numbers out of change order: {run['customers_with_sequences_out_of_order']}.",
        "",
    ]


def _units_by_item(run: dict[str, Any]) -> dict[str, int]:
    """Write units by item kind, the fold of pending items (sparse days without limits) included."""
    units = dict(run["write_units_by_item"])
    for kind, n in ((run.get("fold") or {}).get("write_units_by_item") or {}).items():
        units[kind] = units.get(kind, 0) + n
    return units


def _with_fold(run: dict[str, Any]) -> str:
    """Write units per event, with the fold's when there is one (and the batches' alone beside it)."""
    folded = run.get("write_units_per_event_with_fold")
    if folded is None or folded == run["write_units_per_event"]:
        return str(run["write_units_per_event"])
    return f"{folded} ({run['write_units_per_event']} before the fold)"


def _extra_by_item(off: dict[str, Any], on: dict[str, Any]) -> str:
    """The write units limits add, per item kind (``AGG`` usage, ``LIM`` counters, ``WHOUT`` alerts)."""
    before, after = _units_by_item(off), _units_by_item(on)
    extra = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))}
    return ", ".join(f"{k} {v:+}" for k, v in extra.items() if v) or "none"


def _limits(lines: list[str], run: dict[str, Any] | None) -> None:
    lines += ["## Usage limits: extra write units per accepted event", ""]
    if run is None or "shapes" not in run:
        lines += ["Not measured yet: run `python -m benchmarks.limits`.", ""]
        return
    lines += [
        f"Measured {run.get('measured_at', '?')} on {run.get('machine', '?')} by `python -m benchmarks.limits` "
        f"(not part of `make bench`): {run['workload']['events']:,} events in batches of "
        f"{run['workload']['batch']} through the real ingest worker on moto, once without limits and once "
        "with a hard cap, a soft cap and two alert levels on every customer's meter, in the same run "
        f"(target: at most {run['target_extra_write_units_at_most']} more write units per event); the last "
        "rows vary the headline shape: limits on half its customers only, alerts without a hard cap, and "
        "transaction ids as clients send them (uuid4, 64 random characters) at 10 customers and at one "
        "customer per batch; then sparse batches (100 customers per batch: one event per customer, meter and "
        "hour) with each kind of id. Without limits, sparse days are written as pending items and folded "
        "later: their figures count the fold and the removal of the folded items (the batches' alone in "
        "brackets).",
        "",
        "| shape | events per limited write | write units per event, off | on | extra | alerts written "
        "| extra units by item | largest counter / contribution, bytes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for shape in run["shapes"]:
        off, on = shape["limits_off"], shape["limits_on"]
        sizes = on.get("largest_bytes") or {}
        lines.append(
            f"| {shape['shape']} | {shape['events_per_limited_write']} | {_with_fold(off)} | "
            f"{_with_fold(on)} | {shape['extra_write_units_per_event']} | {on['alerts_written']} "
            f"| {_extra_by_item(off, on)} | {sizes.get('counter', '?')} / {sizes.get('contribution', '?')} |"
        )
    first = run["shapes"][0]["limits_on"].get("seconds_batch_start_to_first_alert")
    counter = (run["shapes"][0]["limits_on"].get("largest_bytes") or {}).get("counter", "?")
    head_off, head_on = run["shapes"][0]["limits_off"], run["shapes"][0]["limits_on"]
    lines += [
        "",
        "A limited write (one batch's events of a customer's meter and day) costs one more write: the period "
        "counter, moved by one conditional put that also records the write as pending (its contribution, "
        "refusals and alerts, compressed), after which the contribution and the alerts are plain conditional "
        "puts, each at the units of a write without limits. The counter item stays under the 1 KB of a write "
        f"unit at these sizes (largest {counter} bytes), so the extra per event is about one unit over the "
        "events one batch holds for a customer's meter and day, plus one unit per alert level reached "
        "(`WHOUT`, once per level and period). From the batch's start to the alert's outbox item: "
        f"{first} s on moto.",
        "",
        "**What it replaced.** Earlier the counter was written in a transaction with the contribution and the "
        "alerts: a transactional write costs twice a plain one, so each limited write paid its contribution a "
        "second time, 2 units for the counter and 2 per alert: about 3 units per write, +0.33 per event at 10 "
        "customers per batch, +0.083 at one customer per batch (measured 2026-12-01 before this change). "
        "Taking the counter out of the transaction needs a rule for a kill between the counter and the "
        "writes it stands for: every next writer of the counter (the same batch again, another batch, the "
        "usage sweep, a void) reads the record and completes it before replacing it, with conditional writes "
        "of the same content, and reads before it writes, so a complete record costs reads only "
        '(docs/limits.md, "How a limited write is written"). The transaction stays for the rare writes one '
        "put cannot carry (adopting events of a killed batch, a day split between two periods, more than 50 "
        "refusals).",
        "",
        "**What it costs instead.** Reads: besides the counter, the next writer reads the contribution of the "
        "write the counter records (and that write's alerts and refusals, if any), and each write reads "
        "whether its own contribution exists: requests per event at 10 customers per batch go from "
        f"{head_off['requests_per_event']} to {head_on['requests_per_event']}, read units, not write units. "
        "Half the customers limited halves "
        "the extra again; alerts without a hard cap cost the same as with one (the counter moves either way).",
        "",
        "**Left as it is.** The days of one batch that share a limit period move the counter "
        "once (one record, one contribution per day); every event of this workload falls on one day, so the "
        "rows above do not show it.",
        "",
    ]
    _limit_ids(lines, run["shapes"], run["workload"]["events"])
    _limit_previous(lines, run)
    _naive(lines, run)
    _limit_amounts(lines, run.get("amounts"))
    _sparse_cases(lines, run.get("sparse_cases"))


def _limit_ids(lines: list[str], shapes: list[dict[str, Any]], events: int) -> None:
    """What the counter costs when transaction ids do not compress (uuid4, 64 random characters)."""
    rows = [s for s in shapes if "transaction ids" in s["shape"] and s["events_per_limited_write"] > 1]
    if not rows:
        return
    costs = []
    for shape in rows:
        on = shape["limits_on"]
        writes = events // shape["events_per_limited_write"]
        units = on["write_units_by_item"].get("LIM", 0) / writes
        largest = (on.get("largest_bytes") or {}).get("counter", "?")
        costs.append(
            f"{shape['shape']}: {units:.2f} units per counter put (largest {largest} bytes), "
            f"+{shape['extra_write_units_per_event']} per event"
        )
    lines += [
        "**Transaction ids as clients send them.** The sequential ids of the first rows share most of their "
        "text, so a write's record compresses to a few hundred bytes whatever the events it holds. A uuid4 "
        "or a 64-character random id hardly compresses (about 22 and 50 bytes each), and the record carries "
        "the id of every event the write counts (its contribution's cells list them: a completer that is "
        "another batch cannot find the events a batch holds otherwise), so the counter's put grows with the "
        "events of the write: one write unit per started KB of the whole counter item. At 10 customers per "
        "batch a write holds 10 events: uuid4 ids keep the counter under 1 KB (the same extra as sequential "
        "ids), 64-character ids bring it to about 1 KB, some puts take 2 units. At one customer per batch a "
        "write holds 100 events: the counter takes 3 units with uuid4 ids and 6 with 64-character ids, but "
        "those units are shared by 100 events, so the extra per event stays far below the target. The "
        "columns without limits grow a little too (longer ids make longer items elsewhere). "
        f"Measured: {'; '.join(costs)}.",
        "",
    ]


def _limit_previous(lines: list[str], run: dict[str, Any]) -> None:
    """Each shape against the limits run this one replaced."""
    previous = run.get("previous_run")
    if not previous:
        return
    moves, same = [], 0
    for shape in run["shapes"]:
        was = previous["shapes"].get(shape["shape"])
        if was is None:
            continue
        off, on = shape["limits_off"], shape["limits_on"]
        now = (off["write_units_per_event"], on["write_units_per_event"])
        now_requests = (off["requests_per_event"], on["requests_per_event"])
        if now == (was["off"], was["on"]) and now_requests == (was["requests_off"], was["requests_on"]):
            same += 1
            continue
        moves.append(
            f"{shape['shape']}: off {was['off']} -> {now[0]}, on {was['on']} -> {now[1]} write units; "
            f"requests off {was['requests_off']} -> {now_requests[0]}, on {was['requests_on']} -> "
            f"{now_requests[1]}"
        )
    changed = f"; changed: {'; '.join(moves)}" if moves else ""
    lines += [
        f"**Against the previous run** ({previous['measured_at']}): {same} of the shapes it measured have "
        f"the same write units and requests per event, off and on{changed}. " + LIMIT_CHANGES,
        "",
    ]


NAIVE_UNITS = 2.0  # one put of the event and one update of a counter, each under 1 KB


def _naive(lines: list[str], run: dict[str, Any]) -> None:
    """The shapes whose write units per event pass a naive handler's (one put per event and one counter
    update), and where their units and requests go."""
    events = run["workload"]["events"]
    worse = []
    for shape in run["shapes"]:
        for side, label in (("limits_off", "without limits"), ("limits_on", "with limits")):
            r = shape[side]
            total = r.get("write_units_per_event_with_fold", r["write_units_per_event"])
            if total <= NAIVE_UNITS:
                continue
            units = ", ".join(
                f"{k} {round(v / events, 3)}" for k, v in sorted(_units_by_item(r).items()) if v
            )
            ops = ", ".join(
                f"{k.split(':')[-1]} {round(v / events, 3)}" for k, v in r["requests_by_operation"].items()
            )
            worse.append(
                f"{shape['shape']}, {label}: {total} write units per event ({units}); requests per event: {ops}"
            )
    if not worse:
        lines += [
            f"**Against a naive handler.** No shape above costs more than {NAIVE_UNITS} write units per event "
            "(one put of the event and one update of a counter).",
            "",
        ]
        return
    lines += [
        f"**Against a naive handler.** A handler that puts each event and updates one counter per event costs "
        f"{NAIVE_UNITS} write units per event (both items under 1 KB), without exactly-once counting. Shapes "
        "above that: " + "; ".join(worse) + ". " + NAIVE_WHERE,
        "",
    ]


def _limit_amounts(lines: list[str], run: dict[str, Any] | None) -> None:
    lines += ["### Caps and alerts in amounts", ""]
    if run is None:
        lines += ["Not measured yet: run `python -m benchmarks.limits amounts`.", ""]
        return
    off, on = run["limits_off"], run["limits_on"]
    lines += [
        f"Measured {run['measured_at']} by `python -m benchmarks.limits amounts`: the {run['shape']} shape on an "
        "ungrouped `tokens` meter charged by a graduated plan (amounts need a price a running total decides), "
        "once without limits and once with an amount cap no event reaches and two spend alert levels on every "
        "customer.",
        "",
        "| shape | events per limited write | write units per event, off | on | extra | requests per event, off "
        "| on | alerts written |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {run['shape']} | {run['events_per_limited_write']} | {off['write_units_per_event']} | "
        f"{on['write_units_per_event']} | {run['extra_write_units_per_event']} | {off['requests_per_event']} | "
        f"{on['requests_per_event']} | {on['alerts_written']} |",
        "",
        "Besides the unit limits' cost, a write that needs amounts reads the customer's subscriptions and the "
        "meter, and with spend alerts moves the period's spend counter too when the meter's amount moved: one "
        "more conditional put, applied after the meter's counter as a step its record carries (with the "
        "meter's counter version, so a step applied twice or late changes nothing). That second counter makes "
        "the extra with the meter's: about 2 units per limited write (earlier 6 in the transaction: +0.52 per "
        "event), just over the aim of 0.2 at 10 events per write. "
        "The reads of both counters and of the completed records make the higher request count "
        '(docs/limits.md, "How a limited write is written" and "Cost").',
        "",
        "**Why it stays at 0.21.** Of the extra, 0.1 is the meter's counter, 0.1 the spend counter and 0.01 "
        "the spend alerts themselves (two levels for each of 10 customers). The spend counter is already "
        "left alone when the meter's amount did not move (a write of free usage). Skipping it also when this "
        "write cannot cross a spend level would be unsafe: the spend total is the sum of every meter's amount "
        "as the spend counter last recorded it, so two meters that each skipped their step (each seeing the "
        "other's old amount) could together pass a level without any write noticing, and the alert would wait "
        "for some later write; the spend the limits API shows (`spend_minor`) would also lag the usage. The "
        "conditional put on the spend counter is what makes concurrent writes of several meters see each "
        "other, so it is kept; the aim is missed by the alerts' own write units only.",
        "",
    ]


# Why each sparse case costs what it does (the rows of ``_sparse_cases``, by the start of their name).
SPARSE_WHY = {
    "every event fits": "Shared: the counter put records the batch's pending item of the customer's shard.",
    "half the customers refused": (
        "Not shared when a write refuses an event: the refused customers' days keep the limited write of "
        "their own (event, counter and contribution puts). A refusal must land before the day is counted "
        "anywhere (a counted day means every event of it the batch held is decided), so sharing it needs the "
        "batch to refuse between its counter puts and its pending puts, and a pending item holding only a "
        "day's admitted events, or an empty day when every event is refused, which the pending layer does "
        "not hold yet. The customers under their cap are shared. EVT above 1.0: each refusal updates its "
        "event item (`over_limit`)."
    ),
    "amount caps": (
        "Shared since this change: the events are decided with the meter's prices and the counter put "
        "records the amount and the batch's pending item. The prices still cost a Query of the customer's "
        "subscriptions and a GetItem of the meter per customer and batch (2 of the 4.1 requests per event "
        "here, one event per customer and batch): not cut in this change."
    ),
    "spend alerts": (
        "Shared since this change: the spend counter's step rides in the meter counter's record and is "
        "applied after the pending put (by its meter counter version, once, whoever applies it), so the "
        "spend counter's put (1 unit per event here: the amount moves with every event) and the reads of it "
        "stay (the reads of the spend counter and of its records make most of the GetItem); the contribution of "
        "its own goes."
    ),
    "two limit periods in one batch": (
        "Shared since this change: each period's days move that period's counter by one put recording them; "
        "the batch's pending item holds the days of both."
    ),
    "two limit periods within one day": (
        "Not shared: a day is one entry of the pending item (and one contribution), which neither counter "
        "alone can record; a kill between the two counter puts would let a completer of the first put the "
        "whole day while the second counter never moves. Counted as before: both counters and the "
        "contribution in one transaction (a transactional write costs twice a plain one)."
    ),
    "a mix": "Each customer's days as in its own row: the refused customers' days keep a write of their own.",
}


def _sparse_cases(lines: list[str], run: dict[str, Any] | None) -> None:
    lines += ["### Sparse batches, every shape", ""]
    if not run or not run.get("rows"):
        lines += ["Not measured yet: run `python -m benchmarks.limits sparse`.", ""]
        return
    previous = (run.get("previous") or {}).get("rows") or {}
    events = run["rows"][0]["limits_on"].get("events", "?")
    lines += [
        f"Measured {run['measured_at']} by `python -m benchmarks.limits sparse` (1-minute load average "
        f"{run['load_average_1min']['start']:.1f} at the start, {run['load_average_1min']['end']:.1f} at the end): "
        f"{events:,} events in batches of 100 through the real ingest worker on moto, one event per customer's "
        "meter and day in each batch (sparse days), limits off then on. The rows above measure only sparse "
        "batches whose every event fits a unit hard cap; these add the shapes that did not take the batch's "
        "shared pending items. Layouts: 100 customers per batch, one event each in the current hour; or 50 "
        "customers per batch, two events each (one on each of two past days, or both on one past day on each "
        "side of noon). Priced rows subscribe every customer to a graduated plan on `tokens`; monthly periods "
        "start three days before the past days. *before* is the code this change replaced "
        f"({(run.get('previous') or {}).get('code', '?')}, measured {(run.get('previous') or {}).get('measured_at', '?')}), "
        f"*after* this one ({run.get('code', '?')}). Write units and requests are counts (the same on any "
        "machine, whatever the load); the seconds are timings on this shared machine.",
        "",
        "| shape | customers per batch | write units per event, off | on, before | on, after | contributions "
        "(AGG) per event, before | after | requests per event, before | after | refused | alerts | seconds "
        "on moto, after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for row in run["rows"]:
        off, on = row["limits_off"], row["limits_on"]
        before = previous.get(row["case"]) or {}
        n = on.get("events") or 1

        def agg(figures: dict[str, Any], n: int = n) -> Any:
            units = (figures.get("write_units_by_item") or {}).get("AGG")
            return "?" if not figures else round((units or 0) / n, 3)

        lines.append(
            f"| {row['case']} | {row['customers_per_batch']} | {off['write_units_per_event_with_fold']} | "
            f"{before.get('write_units_per_event_with_fold', '?')} | {on['write_units_per_event_with_fold']} | "
            f"{agg(before)} | {agg(on)} | {before.get('requests_per_event', '?')} | {on['requests_per_event']} | "
            f"{on.get('events_refused', 0)} | {on['alerts_written']} | {on['seconds_on_moto']} |"
        )
        why = next((text for start, text in SPARSE_WHY.items() if row["case"].startswith(start)), "")
        by_item = ", ".join(f"{k} {round(v / n, 3)}" for k, v in on["write_units_by_item"].items())
        notes.append(f"- **{row['case']}**: {why} After, per event: {by_item}.")
    lines += [
        "",
        "Write units count the fold of the pending items and their removal 35 days on, as in the rows above "
        "(the batches' own figures are in `benchmarks/results/limits.json`).",
        "",
        *notes,
        "",
    ]


def _window_reads(lines: list[str], levels: dict[str, Any] | None) -> None:
    """What a count-meter window of ``benchmarks.billing_levels`` sends, by operation, and what the
    optional features' flags removed from it."""
    count = ((levels or {}).get("runs") or {}).get("count")
    if not count:
        return
    w, invoiced = count["worker"], max(count["invoiced"], 1)
    per = ", ".join(f"{op} {round(n / invoiced, 2)}" for op, n in w["requests"].items())
    lines += [
        "## Reads a window skips",
        "",
        f"The count-meter window above sends, per window: {per} ({w['read_requests_per_window']} reads). "
        "Its reads, in order: the billing state and the subscription (GetItem each), the subscription's "
        "adjustments (Query), the invoices of its late-event look-back (one BatchGetItem; the benchmark's "
        "earlier windows have none, so nothing is re-rated), the plan version and the meter (GetItem each), "
        "the watermark and the pending items of the customer's pending shard (a GetItem and a Query), the "
        "usage partition (Query), the flags of the optional features (one BatchGetItem of the customer's "
        "and the deployment's items) and the customer's grants (Query). The fraction over a whole number is "
        "the backfill's marker, read by each worker instance until it finds it.",
        "",
        "Before the flags, the same window sent 16 reads (GetItem 7, Query 9): the look-back's two "
        "invoices were a GetItem each, and every window queried the customer's one-off charges, its "
        "advance items, its discounts, the discounts of its plan version and the deployment's tax rates, "
        "whether or not the customer or the deployment had any. Now a feature's flag is written in the "
        "transaction that stores the feature (a one-off charge, an advance item billed later, a discount, "
        "a tax rate), and a window reads a feature only when its flag is set: a customer who uses none of "
        "them pays one request for all five. Flags are never removed, so a flag left after its feature is "
        "gone costs the read it always cost, never a missed charge; until the scheduler's backfill has "
        "flagged what was stored before the flags, every window reads everything. A window that re-rates "
        "an earlier finalized window reads its plan version, meter, pending shard and usage again for it "
        "(5 reads per re-rated window): not cut here.",
        "",
    ]


# Counted by a functional test, not a benchmark run: kept here so the report keeps it.
CORRECTION_READS = """\
## Reads of a correction's settlement

Measured by `tests/functional/billing/test_correction_settlement_reads.py` (moto in-process, requests and
items counted on the shared client with the billing benchmark's meter; not a benchmark run): an operator
rerun that takes 2 calls back from a cancelled customer's final daily invoice, settled by one credit note
against it. A customer with 60 daily usage invoices (and its opening invoice): 130 items read before the
bound (its invoices read twice, once for the credit notes and once for what each line still bills), 9
now; a customer with one (and its opening invoice): 11 before, 9 now. Requests are the same (GetItem 9,
Query 7, one transaction, one UpdateItem): the second `by-list` query became the query of the corrected
invoice's adjustment records. The read now follows the age of the corrected invoice, not the customer's
history (docs/billing.md, "What a settlement reads").
"""


def render() -> str:
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`python -m benchmarks.report` rewrites it from the stored results in "
        "benchmarks/results/). Each figure is shown against a baseline measured in the same run on the same "
        "machine; times on moto measure this code on this machine, request and write-unit counts carry over "
        "to DynamoDB.",
        "",
    ]
    _measured_on(lines)
    write_units = _ingest(lines, _load("ingest_writes.json"))
    _billing(lines, _load("billing_run.json"))
    _billing_recount(lines, _load("billing_run_1000.json"), _load("billing_run.json"))
    _billing_levels(lines, _load("billing_levels.json"))
    _window_reads(lines, _load("billing_levels.json"))
    lines += [*CORRECTION_READS.splitlines(), ""]
    _cold(lines, _load("cold_start.json"))
    _package(lines, _load("package_size.json"))
    _capacity(lines, write_units)
    local_stack.report(lines, _load("local_stack.json"))
    _client_faults(lines, _load("client_faults.json"))
    _webhooks(lines, _load("webhooks.json"))
    _limits(lines, _load("limits.json"))
    lines += CATALOG_READS.splitlines()
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    OUT.write_text(render())
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
