"""Reachability checks of every table and queue, for ``GET /ready``."""

from __future__ import annotations

from dataclasses import dataclass

from neruba.dal.clients import client
from neruba.settings import Settings


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check and its result."""

    name: str
    ok: bool
    detail: str = ""


def _table_names(settings: Settings) -> dict[str, str]:
    return {
        "keys_table": settings.keys_table,
        "catalog_table": settings.catalog_table,
        "usage_table": settings.usage_table,
        "billing_table": settings.billing_table,
        "ledger_table": settings.ledger_table,
        "ops_table": settings.ops_table,
    }


def check_dependencies(settings: Settings) -> list[Check]:
    """Describe every table and queue; one Check each, never raising."""
    checks = []
    for name, table in _table_names(settings).items():
        try:
            status = client("dynamodb").describe_table(TableName=table)["Table"]["TableStatus"]
            checks.append(Check(name, status in ("ACTIVE", "UPDATING"), f"{table}: {status}"))
        except Exception as exc:  # any failure is a failed check, reported not raised
            checks.append(Check(name, False, f"{table}: {type(exc).__name__}"))
    try:
        client("sqs").get_queue_attributes(QueueUrl=settings.ingest_queue_url, AttributeNames=["QueueArn"])
        checks.append(Check("ingest_queue", True, "reachable"))
    except Exception as exc:
        checks.append(Check("ingest_queue", False, type(exc).__name__))
    return checks
