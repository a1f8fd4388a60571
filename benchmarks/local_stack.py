"""The local stack under concurrent clients and a growing store: events/s end to end and request latency.

Starts the local stack in this process (``LocalStack``: what ``make run`` starts, without schedules), seeds
the demo catalog, then runs each scenario: ``C`` client threads each POST ``B`` batches of 100 events to
``/v1/events`` one after another, recording every request's latency; timing stops when the worker has
counted every accepted event, read back through ``GET /v1/ingest/outcomes`` (totals.accepted). Events/s
is events sent / (last count seen - first request sent).

1. Concurrency, on an empty store: 1 client, then 8 clients.
2. Volume: 1 client again after the usage table holds 10k, 100k and 1M stored events. The store is
   *seeded* for speed: one event stored by the real worker is copied under new transaction ids (spread
   over the past days) straight into the moto server's in-memory table, the way moto's own PutItem stores
   an item, without the HTTP round trip. Seeded events are never counted as accepted by the scenarios.

    .venv/bin/python -m benchmarks.local_stack                        # everything (about 15 minutes)
    .venv/bin/python -m benchmarks.local_stack --stored 0,10000       # a quicker run
    .venv/bin/python -m benchmarks.local_stack --label before --out benchmarks/results/local_stack.json

With ``--out`` the run is stored under ``runs[LABEL]`` of that file (other labels are kept); without, it is
only printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BATCH = 100
CLIENT_TIMEOUT_S = 60


def _request(base: str, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT_S) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def accepted_total(base: str, key: str) -> int:
    """Accepted events over the last day, through the usage API."""
    now = datetime.now(UTC)
    start = (now - timedelta(hours=23)).strftime("%Y-%m-%dT%H:00:00Z")
    end = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00Z")
    status, body = _request(base, key, "GET", f"/v1/ingest/outcomes?from={start}&to={end}&granularity=hour")
    if status != 200:
        raise RuntimeError(f"GET /v1/ingest/outcomes answered {status}: {body}")
    return int(body["totals"]["accepted"])


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def scenario(base: str, key: str, customer: str, meter: str, clients: int, batches: int) -> dict[str, Any]:
    """``clients`` threads each sending ``batches`` batches of 100; events/s until the worker counted all."""
    before = accepted_total(base, key)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    run = uuid.uuid4().hex[:8]

    def client(number: int) -> None:
        for batch in range(batches):
            events = [
                {
                    "transaction_id": f"bench-{run}-{number}-{batch}-{i}",
                    "customer_id": customer,
                    "code": meter,
                    "properties": {"value": 1},
                }
                for i in range(BATCH)
            ]
            started = time.perf_counter()
            try:
                status, _ = _request(base, key, "POST", "/v1/events", {"events": events})
                outcome = str(status)
            except (TimeoutError, urllib.error.URLError, OSError) as exc:
                outcome = f"error:{type(exc).__name__}"
            with lock:
                latencies.append(time.perf_counter() - started)
                statuses[outcome] = statuses.get(outcome, 0) + 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent_s = time.perf_counter() - started
    expected = statuses.get("202", 0) * BATCH
    counted, deadline = 0, time.monotonic() + 900
    while time.monotonic() < deadline:
        counted = accepted_total(base, key) - before
        if counted >= expected:
            break
        time.sleep(0.25)
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "batches_per_client": batches,
        "events_sent": clients * batches * BATCH,
        "events_counted": counted,
        "statuses": statuses,
        "seconds_sending": round(sent_s, 2),
        "seconds_until_counted": round(elapsed, 2),
        "events_per_second": round(counted / elapsed, 1),
        "latency_s": {
            "p50": round(_percentile(latencies, 0.5), 2),
            "p95": round(_percentile(latencies, 0.95), 2),
            "max": round(max(latencies, default=0.0), 2),
        },
    }


class Sampler:
    """A sampling profiler of every thread of this process (``--profile``): every ``interval`` seconds it
    notes which functions are on each thread's stack; ``top`` lists the ones seen most (cumulative: a
    function counts once per sample in which it is anywhere on a stack, so its callees are included)."""

    def __init__(self, interval: float = 0.005) -> None:
        from collections import Counter

        self.interval, self.samples = interval, 0
        self.seen: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                names, walker = set(), frame
                while walker is not None:
                    code = walker.f_code
                    names.add(f"{Path(code.co_filename).name}:{code.co_name}")
                    walker = walker.f_back
                if (
                    "threading.py:wait" in names
                    or "selectors.py:select" in names
                    or "socket.py:readinto" in names
                ):
                    continue  # idle: waiting for work or for an answer
                self.samples += 1
                self.seen.update(names)

    def top(self, count: int = 40) -> list[tuple[str, float]]:
        return [(name, round(n / max(1, self.samples), 3)) for name, n in self.seen.most_common(count)]


def usage_table(table_name: str) -> Any:
    """The moto server's in-memory usage table (the server runs in this process)."""
    from moto.backends import get_backend

    from neruba_tools.local.intrinsics import ACCOUNT_ID, REGION

    return get_backend("dynamodb")[ACCOUNT_ID][REGION].get_table(table_name)


def stored_events(table: Any) -> int:
    return sum(1 for hash_key in list(table.items) if str(hash_key.value).startswith("EVT#"))


def seed(table: Any, until: int) -> float:
    """Copy a stored event under new transaction ids until the table holds ``until`` events (seconds).

    Seeding, not ingest: each copy is put straight into the moto table's item map (under the local stack's
    DynamoDB lock), sharing the unchanged attribute values of the original; only the key and the
    transaction id differ. The copies are never updated, so the sharing is never seen."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    from neruba_tools.local.emulator import DYNAMODB_LOCK

    started = time.perf_counter()
    have = stored_events(table)
    original = next(
        (
            item
            for hash_key, items in list(table.items.items())
            if str(hash_key.value).startswith("EVT#")
            for item in list(items.values() if isinstance(items, dict) else [items])
        ),
        None,
    )
    if original is None:
        raise RuntimeError("no stored event to copy: run a scenario first")
    prefix, transaction = str(original.hash_key.value).rsplit("#", 1)
    same_id = [name for name, value in original.attrs.items() if value.value == transaction]
    for start in range(have, until, 10_000):
        chunk = []
        for n in range(start, min(until, start + 10_000)):
            item = Item.__new__(Item)
            item.hash_key, item.range_key = DynamoType({"S": f"{prefix}#seed-{n}"}), original.range_key
            item.attrs = type(original.attrs)()
            dict.update(item.attrs, original.attrs)
            dict.__setitem__(item.attrs, table.hash_key_attr, item.hash_key)
            for name in same_id:
                dict.__setitem__(item.attrs, name, DynamoType({"S": f"seed-{n}"}))
            chunk.append(item)
        with DYNAMODB_LOCK:
            for item in chunk:
                table.items[item.hash_key][item.range_key] = item
    return round(time.perf_counter() - started, 1)


def run(
    stored: list[int], clients: list[int], batches: int, scale_batches: int, profile: bool = False
) -> dict[str, Any]:
    from neruba.settings import get_settings
    from neruba_tools.local.seed import seed_demo
    from neruba_tools.local.stack import LocalStack

    result: dict[str, Any] = {"concurrency": [], "volume": []}
    with LocalStack("template.yaml", ROOT, schedules=False, stack_name="neruba-bench-local") as stack:
        demo = seed_demo()
        base, key = stack.base_url, demo.api_key
        args = (base, key, demo.customer_id, demo.meter_code)
        scenario(*args, 1, 1)  # warm: imports, catalog caches, one stored event to copy when seeding
        for count in clients:
            print(f"[{time.strftime('%H:%M:%S')}] {count} client(s)", file=sys.stderr, flush=True)
            result["concurrency"].append(scenario(*args, count, batches))
        table = usage_table(get_settings().usage_table)
        for size in stored:
            seeded = seed(table, size) if size else 0.0
            have = stored_events(table)
            print(f"[{time.strftime('%H:%M:%S')}] {have} stored", file=sys.stderr, flush=True)
            if profile:
                with Sampler() as sampler:
                    one = scenario(*args, 1, scale_batches)
                one["profile_busy_share"] = sampler.top()
            else:
                one = scenario(*args, 1, scale_batches)
            result["volume"].append({"stored_events": have, "seconds_seeding": seeded, **one})
    return result


def operation_costs(sizes: tuple[int, ...] = (10_000, 100_000)) -> list[dict[str, Any]]:
    """Where the time goes: milliseconds per TransactWriteItems (two actions) and per Query of one
    partition on a table of N items, on plain moto and under the local stack's patches (in-process moto)."""
    import boto3
    from moto import mock_aws

    from neruba_tools.local.emulator import EmulatorPatches

    rows = []
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="costs",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk")],
        )
        have = 0
        for size in sizes:
            for start in range(have, size, 25):
                batch = [
                    {"PutRequest": {"Item": {"pk": {"S": f"EVT#{n}"}, "sk": {"S": "#"}, "v": {"N": "1"}}}}
                    for n in range(start, min(size, start + 25))
                ]
                dynamodb.batch_write_item(RequestItems={"costs": batch})
            have = size
            row: dict[str, Any] = {"items": size}
            for label, patched in (("moto", False), ("patched", True)):
                patches = EmulatorPatches() if patched else None
                if patches is not None:
                    patches.install()
                try:
                    started = time.perf_counter()
                    for n in range(5):
                        dynamodb.transact_write_items(
                            TransactItems=[
                                {
                                    "Put": {
                                        "TableName": "costs",
                                        "Item": {"pk": {"S": f"T#{label}{n}"}, "sk": {"S": "#"}},
                                    }
                                },
                                {
                                    "Update": {
                                        "TableName": "costs",
                                        "Key": {"pk": {"S": "AGG"}, "sk": {"S": "#"}},
                                        "UpdateExpression": "ADD v :one",
                                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                                    }
                                },
                            ]
                        )
                    row[f"transaction_ms_{label}"] = round((time.perf_counter() - started) * 200, 1)
                    started = time.perf_counter()
                    for _ in range(5):
                        dynamodb.query(
                            TableName="costs",
                            KeyConditionExpression="pk = :p",
                            ExpressionAttributeValues={":p": {"S": "AGG"}},
                        )
                    row[f"query_ms_{label}"] = round((time.perf_counter() - started) * 200, 1)
                finally:
                    if patches is not None:
                        patches.uninstall()
            rows.append(row)
    return rows


def _summary(runs: dict[str, Any]) -> list[str]:
    """The before/after ratios the table shows, in words."""
    before, after = runs.get("before"), runs.get("after")
    if not before or not after:
        return []

    def clients(run: dict[str, Any], count: int) -> dict[str, Any] | None:
        return next((row for row in run.get("concurrency", []) if row["clients"] == count), None)

    out = []
    old, new = clients(before, 8), clients(after, 8)
    if old and new and old["events_per_second"]:
        out.append(
            f"With 8 clients: {new['events_per_second']} events/s against {old['events_per_second']} before "
            f"({new['events_per_second'] / old['events_per_second']:.0f} times), the slowest request "
            f"{new['latency_s']['max']} s against {old['latency_s']['max']} s."
        )
    volume = after.get("volume", [])
    if len(volume) > 1:
        rates = [row["events_per_second"] for row in volume]
        low, high = min(rates), max(rates)
        first, last = volume[0]["stored_events"], volume[-1]["stored_events"]
        out.append(
            f"One client, from {first:,} to {last:,} stored events: {low} to {high} events/s (the slowest "
            f"{high / max(low, 0.1):.1f} times slower than the fastest)."
        )
    return [" ".join(out), ""] if out else []


def report(lines: list[str], stored: dict[str, Any] | None) -> None:
    """The docs/performance.md section of benchmarks/results/local_stack.json (``benchmarks.report``)."""
    lines += ["## Local stack: concurrent clients and a growing store", ""]
    runs = (stored or {}).get("runs") or {}
    if not runs:
        lines += ["Not measured yet: run `python -m benchmarks.local_stack --out "
                  "benchmarks/results/local_stack.json`.", ""]  # fmt: skip
        return
    lines += [
        "`python -m benchmarks.local_stack` starts the local stack (`make run` without schedules) in its "
        "process, the clients' threads beside it; each client POSTs batches of 100 events to `/v1/events`, "
        "one request after another, "
        "and the time runs until the worker has counted every event, read back through "
        "`GET /v1/ingest/outcomes`. *before*: one invocation per function at a time on unpatched moto; "
        "*after*: the pools of execution environments and the moto patches "
        "([architecture.md](architecture.md#concurrent-invocations-on-the-local-stack)). Stored events "
        "are seeded by copying a stored event straight into moto's table. Times are this machine's, shared "
        "with other work (load average in the table); compare rows of one run, not across machines.",
        "",
        "| run | stored events | clients | requests | events/s end to end | latency p50 / p95 / max (s) "
        "| answers | load average |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, run in runs.items():
        load = run.get("load_average")
        load_text = " / ".join(f"{x:.1f}" for x in load) if load else "?"
        rows = [(0, row) for row in run.get("concurrency", [])]
        rows += [(v["stored_events"], v) for v in run.get("volume", [])]
        for stored_events, row in rows:
            latency = row["latency_s"]
            answers = ", ".join(f"{n} x {code}" for code, n in sorted(row["statuses"].items()))
            requests = row["clients"] * row["batches_per_client"]
            store = f"{stored_events:,}" if stored_events else "empty"
            lines.append(
                f"| {label} | {store} | {row['clients']} | {requests} "
                f"| {row['events_per_second']} ({row['events_counted']:,} of {row['events_sent']:,} counted) "
                f"| {latency['p50']} / {latency['p95']} / {latency['max']} | {answers} | {load_text} |"
            )
    lines += [""]
    lines += _summary(runs)
    costs = [row for run in runs.values() for row in run.get("operation_costs", [])]
    if costs:
        lines += [
            "Where the time went: one operation on a table of N items, in-process moto, unpatched and under "
            "the local stack's patches (milliseconds; a transaction of a Put and an Update, a Query of one "
            "partition).",
            "",
            "| items | transaction, moto | transaction, patched | query, moto | query, patched |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {row['items']:,} | {row['transaction_ms_moto']} | {row['transaction_ms_patched']} "
            f"| {row['query_ms_moto']} | {row['query_ms_patched']} |"
            for row in costs
        ]
        lines += [""]
    notes = [str(run["note"]) for run in runs.values() if run.get("note")]
    for note in notes:
        lines += [note, ""]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", default="1,8", help="client counts of the concurrency scenarios")
    parser.add_argument("--batches", type=int, default=5, help="batches of 100 per client")
    parser.add_argument(
        "--stored", default="0,10000,100000,1000000", help="store sizes of the volume scenarios"
    )
    parser.add_argument("--scale-batches", type=int, default=10, help="batches in each volume scenario")
    parser.add_argument("--label", default="after", help="the name of this run in the results file")
    parser.add_argument("--costs", action="store_true", help="also time single operations by table size")
    parser.add_argument("--profile", action="store_true", help="sample the volume scenarios' threads")
    parser.add_argument("--out", type=Path, default=None, help="merge the run into this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    started, load_before = time.perf_counter(), os.getloadavg()
    measured = run(
        [int(s) for s in args.stored.split(",") if s],
        [int(c) for c in args.clients.split(",") if c],
        args.batches,
        args.scale_batches,
        args.profile,
    )
    outcome = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "batch": BATCH,
        "load_average": [load_before[0], os.getloadavg()[0]],  # at the start and at the end of the run
        **measured,
        **({"operation_costs": operation_costs()} if args.costs else {}),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    if args.out is not None:
        stored = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
        stored.setdefault("runs", {})[args.label] = outcome
        args.out.write_text(json.dumps(stored, indent=2) + "\n")
        print(f"local stack benchmark: written to {args.out} as {args.label!r}", file=sys.stderr)
    print(json.dumps(outcome, indent=2))
    return outcome


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
