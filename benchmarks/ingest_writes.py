"""DynamoDB requests and write units per accepted event: the real ingest worker against a baseline that
wraps a per-event handler in Powertools ``@idempotent_function``, measured in the same run on moto.

Workload: ``EVENTS`` events of about 1 KB stored, 10 customers, one sum meter, SQS batches of 100.
"""

from __future__ import annotations

import json
import platform
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3

from benchmarks.capacity import Meter, item_size

EVENTS = 2_000
BATCH = 100
CUSTOMERS = 10
RESULTS = Path(__file__).parent / "results"


def _events() -> list[dict[str, Any]]:
    padding = "x" * 560  # brings the stored event item to about 1 KB (reported below)
    return [
        {
            "transaction_id": f"bench-{i:08d}-0f8fad5b-d9cb-469f-a165-70867728950e",
            "customer_id": f"cust-{i % CUSTOMERS}",
            "code": "tokens",
            "properties": {"tokens": 1 + i % 7, "model": "large", "note": padding},
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


def _setup_catalog() -> None:
    from neruba.dal.catalog import CatalogRepository
    from neruba.models.catalog import Customer
    from neruba.models.catalog import Meter as MeterModel
    from neruba.settings import get_settings

    repo = CatalogRepository(get_settings().catalog_table)
    for c in range(CUSTOMERS):
        repo.create_customer(Customer(external_id=f"cust-{c}", name=f"Customer {c}", currency="USD"))
    repo.create_meter(
        MeterModel(code="tokens", name="Tokens", aggregation="sum", field="tokens", group_by=["model"])
    )


def run_neruba(records: list[dict[str, Any]]) -> dict[str, Any]:
    from functions.ingest_worker import app
    from neruba.dal.clients import client

    meter = Meter()
    meter.attach(client("dynamodb"), boto3.client("dynamodb"))
    started = time.perf_counter()
    for start in range(0, len(records), BATCH):
        response = app.lambda_handler({"Records": records[start : start + BATCH]}, _Context())
        assert response["batchItemFailures"] == [], response
    elapsed = time.perf_counter() - started
    return _summary(meter, elapsed)


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
            Key={"pk": {"S": f"AGG#{event['customer_id']}#{event['code']}"}, "sk": {"S": hour_bucket(at)}},
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


def main() -> dict[str, Any]:
    from moto import mock_aws

    from neruba import bootstrap
    from neruba.settings import get_settings
    from tests.support.aws import create_resources

    with mock_aws():
        bootstrap.reset()
        create_resources()
        _setup_catalog()
        records = _records(_events())
        neruba = run_neruba(records)
        sample = boto3.client("dynamodb").get_item(
            TableName=get_settings().usage_table,
            Key={"pk": {"S": f"EVT#cust-0#{_events()[0]['transaction_id']}"}, "sk": {"S": "#"}},
        )["Item"]
    with mock_aws():
        bootstrap.reset()
        create_resources()
        baseline = run_baseline(_records(_events()))
    result = {
        "benchmark": "ingest write cost",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()} Python {platform.python_version()}",
        "workload": {
            "events": EVENTS,
            "batch": BATCH,
            "customers": CUSTOMERS,
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
        },
        "targets": {"write_units_per_event_at_most": Decimal("1.5"), "physical_floor": Decimal("1.0")},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest_writes.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result
