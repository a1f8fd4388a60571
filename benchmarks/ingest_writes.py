"""DynamoDB requests and write units per accepted event: the real ingest worker against a baseline that
wraps a per-event handler in Powertools ``@idempotent_function``, measured in the same run on moto.

Workload: ``EVENTS`` events of about 1 KB stored, one sum meter grouped by model, SQS batches of 100, in
several shapes (``SHAPES``): how many customers share a batch, how many hours and groups its events span.
Billing's reads are counted too (the read units of reading every customer's usage of the meter once, as a
billing run does), and the DynamoDB cost per million events at on-demand prices.

One shape, printed as JSON, nothing written::

    python -m benchmarks.ingest_writes --customers-per-batch 100 --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import string
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3

from benchmarks.capacity import Meter, item_size

EVENTS = 2_000
BATCH = 100
RESULTS = Path(__file__).parent / "results"
# us-east-1 on-demand list prices, USD per million request units
WRITE_UNIT_PRICE = Decimal("0.625")
READ_UNIT_PRICE = Decimal("0.125")


@dataclass(frozen=True)
class Shape:
    """How a workload's batches look: customers per batch, hours and groups its events spread over."""

    name: str
    customers_per_batch: int
    hours: int = 1
    groups: int = 1
    shards: int = 1  # usage partitions per customer and meter (NERUBA_USAGE_SHARDS)
    transaction_ids: str = "sequential"  # or "uuid4", or "random64" (64 random characters)


def _transaction_id(shape: Shape, i: int) -> str:
    """The ``i``-th event's transaction id: sequential ids share most of their text (they compress very
    well); uuid4 and 64-character random ids are what many clients send (they hardly compress)."""
    if shape.transaction_ids == "uuid4":
        return str(uuid.UUID(int=random.Random(i).getrandbits(128), version=4))
    if shape.transaction_ids == "random64":
        alphabet = string.ascii_letters + string.digits
        return "".join(random.Random(i).choices(alphabet, k=64))
    return f"bench-{i:08d}-0f8fad5b-d9cb-469f-a165-70867728950e"


SHAPES = [
    Shape("1 customer per batch", 1),
    Shape("10 customers per batch", 10),
    Shape("100 customers per batch (each event its own cell)", 100),
    Shape("10 customers, each batch over 6 hours", 10, hours=6),
    Shape("1 customer, 50 groups", 1, groups=50),
    Shape("1 customer, 50 groups, 24 hours per batch", 1, hours=24, groups=50),
    Shape("1 hot customer, usage sharded 8 ways", 1, shards=8),
]
HEADLINE = SHAPES[1]


def _events(shape: Shape) -> list[dict[str, Any]]:
    padding = "x" * 560  # brings the stored event item to about 1 KB (reported below)
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    return [
        {
            "transaction_id": _transaction_id(shape, i),
            "customer_id": f"cust-{i % shape.customers_per_batch}",
            "code": "tokens",
            "timestamp": (now - timedelta(hours=(i // shape.customers_per_batch) % shape.hours)).isoformat(),
            "properties": {"tokens": 1 + i % 7, "model": f"model-{i % shape.groups}", "note": padding},
        }
        for i in range(EVENTS)
    ]


def _records(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from neruba.logic.ingest.api import queue_message
    from neruba.models.events import UsageEventIn

    now = datetime.now(UTC)
    records = []
    for index, raw in enumerate(events):
        body = queue_message(UsageEventIn.model_validate(raw), f"req-{index // BATCH}", index % BATCH, now)
        records.append(
            {
                "messageId": f"m-{index}",
                "receiptHandle": "r",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
            }
        )
    return records


def _setup_catalog(customers: int) -> None:
    from neruba.dal.catalog import CatalogRepository
    from neruba.models.catalog import Customer
    from neruba.models.catalog import Meter as MeterModel
    from neruba.settings import get_settings

    repo = CatalogRepository(get_settings().catalog_table)
    for c in range(customers):
        repo.create_customer(Customer(external_id=f"cust-{c}", name=f"Customer {c}", currency="USD"))
    repo.create_meter(
        MeterModel(code="tokens", name="Tokens", aggregation="sum", field="tokens", group_by=["model"])
    )


def run_neruba(records: list[dict[str, Any]], customers: int) -> dict[str, Any]:
    """The worker over every batch, then billing's read of each customer's usage while sparse batches are
    still pending, then the fold of the pending items and, once past their retention, their removal (both
    count with ingest's writes), then billing's read again."""
    from functions.ingest_worker import app
    from neruba import bootstrap
    from neruba.dal.clients import client
    from neruba.dal.pending import KEEP_FOLDED

    meter = Meter()
    meter.attach(client("dynamodb"), boto3.client("dynamodb"))
    started = time.perf_counter()
    for start in range(0, len(records), BATCH):
        response = app.lambda_handler({"Records": records[start : start + BATCH]}, _Context())
        assert response["batchItemFailures"] == [], response
    elapsed = time.perf_counter() - started
    usage = bootstrap.usage()
    unfolded, _ = neruba_billing_reads(usage, customers)
    folded = usage.pending.fold(datetime.now(UTC) + timedelta(minutes=20), usage.shards)
    # the removal of the folded pending items once past their retention (KEEP_FOLDED) counts too
    later = datetime.now(UTC) + KEEP_FOLDED + timedelta(days=1)
    removed = usage.pending.fold(later, usage.shards)["removed"]
    summary = _summary(meter, elapsed)
    summary["fold"] = {**folded, "removed": removed}
    summary["billing_read_units_before_fold"] = unfolded
    summary["billing_read_units"], requests = neruba_billing_reads(usage, customers)
    summary["billing_requests_per_customer"] = requests / customers
    return summary


def neruba_billing_reads(usage: Any, customers: int) -> tuple[int, int]:
    """Read units and read requests of billing's read of each customer's usage of the meter
    (``UsageRepository.aggregates``: the pending items not folded yet, then the usage partitions), each
    response charged one read unit per started 4 KB (strongly consistent)."""
    from neruba.dal.clients import client

    counted = {"units": 0, "requests": 0}

    def charge(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if model.name not in ("Query", "GetItem", "BatchGetItem"):
            return
        items = parsed.get("Items") or ([parsed["Item"]] if parsed.get("Item") else [])
        for found in (parsed.get("Responses") or {}).values():
            items = [*items, *found]
        counted["requests"] += 1
        counted["units"] += max(1, math.ceil(sum(item_size(i) for i in items) / 4096))

    ddb = client("dynamodb")
    ddb.meta.events.register("after-call.dynamodb.*", charge, unique_id="billing-reads")
    try:
        for c in range(customers):
            usage.aggregates(f"cust-{c}", "tokens", "0000", "9999")
    finally:
        ddb.meta.events.unregister("after-call.dynamodb.*", unique_id="billing-reads")
    return counted["units"], counted["requests"]


def billing_read_units(partitions: list[str], customers: int) -> tuple[int, int]:
    """Read units (strongly consistent: one per started 4 KB of each Query page) and Query requests of
    reading each customer's usage of the meter once, as billing does: one Query per partition in
    ``partitions`` (``{customer}`` stands for the customer)."""
    from neruba.settings import get_settings

    ddb = boto3.client("dynamodb")
    total = requests = 0
    for c in range(customers):
        for pk in partitions:
            pages = ddb.get_paginator("query").paginate(
                TableName=get_settings().usage_table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pk.format(customer=f"cust-{c}")}},
                ConsistentRead=True,
            )
            for page in pages:
                requests += 1
                size = sum(item_size(item) for item in page.get("Items", []))
                total += max(1, math.ceil(size / 4096))
    return total, requests


def run_baseline(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A per-event handler: store the event and add to the hourly aggregate, made idempotent by Powertools."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from neruba import jsonutil
    from neruba.domain.ingest import hour_bucket
    from neruba.settings import get_settings

    ddb = boto3.client("dynamodb")
    boto3.client("dynamodb").create_table(
        TableName="bench-idempotency",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    meter = Meter()
    meter.attach(ddb, boto3.client("dynamodb"))
    persistence = DynamoDBPersistenceLayer(table_name="bench-idempotency", boto3_client=ddb)
    config = IdempotencyConfig(event_key_jmespath="[e.customer_id, e.transaction_id]")
    table = get_settings().usage_table

    @idempotent_function(data_keyword_argument="message", persistence_store=persistence, config=config)
    def handle(message: dict[str, Any]) -> str:
        event = message["e"]
        at = datetime.fromisoformat(event["timestamp"])
        ddb.put_item(
            TableName=table,
            Item={
                "pk": {"S": f"EVT#{event['customer_id']}#{event['transaction_id']}"},
                "sk": {"S": "#"},
                "c": {"S": event["customer_id"]},
                "tx": {"S": event["transaction_id"]},
                "m": {"S": event["code"]},
                "ts": {"S": event["timestamp"]},
                "h": {"S": hour_bucket(at)},
                "p": {"S": jsonutil.dumps(event["properties"])},
                "rid": {"S": message["rid"]},
            },
        )
        ddb.update_item(
            TableName=table,
            Key={
                "pk": {"S": f"AGG#{event['customer_id']}#{event['code']}"},
                "sk": {"S": f"{hour_bucket(at)}#model={event['properties']['model']}"},
            },
            UpdateExpression="ADD n :one, s :s",
            ExpressionAttributeValues={":one": {"N": "1"}, ":s": {"N": str(event["properties"]["tokens"])}},
        )
        return "accepted"

    config.register_lambda_context(_Context())  # type: ignore[arg-type]
    started = time.perf_counter()
    for record in records:
        handle(message=jsonutil.loads(record["body"]))
    elapsed = time.perf_counter() - started
    _ = LambdaContext
    return _summary(meter, elapsed)


class _Context:
    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _summary(meter: Meter, elapsed: float) -> dict[str, Any]:
    return {
        "dynamodb_requests": meter.dynamodb_requests,
        "requests_per_event": round(meter.dynamodb_requests / EVENTS, 3),
        "write_units": meter.total_write_units,
        "write_units_per_event": round(meter.total_write_units / EVENTS, 3),
        "write_units_by_item": dict(sorted(meter.write_units.items())),
        "requests_by_operation": dict(sorted(meter.requests.items())),
        "seconds_on_moto": round(elapsed, 2),
    }


def measure(shape: Shape) -> dict[str, Any]:
    """One shape: Neruba and the baseline, each in a fresh emulator, with billing reads and costs."""
    from moto import mock_aws

    from neruba import bootstrap
    from neruba.settings import get_settings
    from tests.support.aws import create_resources

    customers = shape.customers_per_batch
    partitions = ["AGG#{customer}#tokens"] + [f"AGG#{{customer}}#tokens#{n}" for n in range(1, shape.shards)]
    os.environ["NERUBA_USAGE_SHARDS"] = str(shape.shards)
    with mock_aws():
        bootstrap.reset()
        create_resources()
        _setup_catalog(customers)
        events = _events(shape)
        neruba = run_neruba(_records(events), customers)
        neruba["billing_queries_per_customer"] = len(partitions)
        sample = boto3.client("dynamodb").get_item(
            TableName=get_settings().usage_table,
            Key={"pk": {"S": f"EVT#cust-0#{events[0]['transaction_id']}"}, "sk": {"S": "#"}},
        )["Item"]
    with mock_aws():
        bootstrap.reset()
        create_resources()
        baseline = run_baseline(_records(_events(shape)))
        baseline["billing_read_units"], queries = billing_read_units(["AGG#{customer}#tokens"], customers)
        baseline["billing_queries_per_customer"] = queries / customers
    os.environ.pop("NERUBA_USAGE_SHARDS", None)
    for side in (neruba, baseline):
        side["billing_read_units_per_event"] = round(side["billing_read_units"] / EVENTS, 4)
        if "billing_read_units_before_fold" in side:
            side["billing_read_units_per_event_before_fold"] = round(
                side["billing_read_units_before_fold"] / EVENTS, 4
            )
        cost = (Decimal(side["write_units"]) * WRITE_UNIT_PRICE) + (
            Decimal(side["billing_read_units"]) * READ_UNIT_PRICE
        )
        side["usd_per_million_events"] = round(float(cost / EVENTS), 4)
    return {
        "shape": asdict(shape),
        "workload": {
            "events": EVENTS,
            "batch": BATCH,
            "customers": customers,
            "hours": shape.hours,
            "groups": shape.groups,
            "usage_shards": shape.shards,
            "stored_event_bytes": item_size(sample),
        },
        "neruba": neruba,
        "baseline_powertools_idempotent": baseline,
        "ratios": {
            "write_units_per_event_vs_baseline": round(
                neruba["write_units_per_event"] / baseline["write_units_per_event"], 3
            ),
            "requests_per_event_vs_baseline": round(
                neruba["requests_per_event"] / baseline["requests_per_event"], 3
            ),
            "usd_per_million_events_vs_baseline": round(
                neruba["usd_per_million_events"] / baseline["usd_per_million_events"], 3
            ),
        },
    }


def main() -> dict[str, Any]:
    """Every shape; the headline shape's figures at the top level; written to results/ingest_writes.json."""
    shapes = [measure(shape) for shape in SHAPES]
    headline = shapes[SHAPES.index(HEADLINE)]
    result = {
        "benchmark": "ingest write cost",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()} Python {platform.python_version()}",
        **headline,
        "shapes": shapes,
        "prices_usd_per_million_units": {"write": WRITE_UNIT_PRICE, "read": READ_UNIT_PRICE},
        "targets": {"write_units_per_event_at_most": Decimal("1.5"), "physical_floor": Decimal("1.0")},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest_writes.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    from tests.conftest import TEST_ENVIRONMENT  # the same fake credentials and table names as the tests

    for key, value in {**TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR"}.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    parser = argparse.ArgumentParser(description="DynamoDB cost per accepted event of one batch shape")
    parser.add_argument("--customers-per-batch", type=int, default=HEADLINE.customers_per_batch)
    parser.add_argument("--hours", type=int, default=1, help="hours each batch's events spread over")
    parser.add_argument("--groups", type=int, default=1, help="group values of the meter's group_by")
    parser.add_argument("--shards", type=int, default=1, help="usage partitions per customer and meter")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (nothing is written)")
    args = parser.parse_args()
    shape = Shape(
        "command line", args.customers_per_batch, hours=args.hours, groups=args.groups, shards=args.shards
    )
    one = measure(shape)
    print(json.dumps(one, indent=2, default=str) if args.json else one)
