"""Billing tests: small, honest stand-ins for the pricing engine and the ledger, and subscriptions with
daily windows (the interval arithmetic is injected; production passes domain.periods.add_interval)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from neruba.dal.billing import BillingRepository
from neruba.dal.dynamo import from_item, to_item
from neruba.dal.invoices import InvoicesRepository
from neruba.dal.locks import LockRepository
from neruba.dal.plans import PlansRepository
from neruba.logic.billing_deps import BillingDeps, ChargeLine, CreditsResult, PostingRequest
from neruba.logic.billing_worker import Billing
from neruba.settings import get_settings
from tests.support.aws import queue_url

START = datetime(2026, 3, 1, tzinfo=UTC)
UNIT_PRICE_MINOR = 10  # per API call
OPENING_FEE_MINOR = 1000


def add_days(anchor: datetime, interval: str, n: int) -> datetime:
    """Daily windows for tests (the plan's interval is ignored on purpose)."""
    return anchor + timedelta(days=n)


@dataclass(frozen=True)
class Line:
    line_id: str
    kind: str
    meter_code: str | None
    quantity: Decimal
    amount_minor: int
    hours: int = 0
    events: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "line_id": self.line_id,
            "kind": self.kind,
            "description": self.kind,
            "meter_code": self.meter_code,
            "group": {},
            "quantity": self.quantity,
            "unit_price": Decimal("0.10") if self.kind == "usage" else None,
            "tiers": [],
            "amount_minor": self.amount_minor,
            "plan_code": "basic",
            "plan_version": 1,
            "source": {"hours": self.hours, "events": self.events, "aggregation": "count"},
        }


@dataclass(frozen=True)
class Rated:
    currency: str
    lines: list[Line]

    @property
    def subtotal_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)


@dataclass
class Calls:
    """Counts what the stand-ins were asked to do (the benchmark and the cost tests read it)."""

    rate_window: int = 0
    rate_opening: int = 0
    postings: int = 0
    hours_read: int = 0


def usage_rater(calls: Calls) -> Any:
    """Prices the api_calls aggregates of the window's hours at 0.10 each (reads aggregates, not events)."""

    def rate(subscription: dict[str, Any], start: datetime, end: datetime) -> Rated:
        calls.rate_window += 1
        table = boto3.client("dynamodb")
        first, last = start.strftime("%Y-%m-%dT%H"), (end - timedelta(hours=1)).strftime("%Y-%m-%dT%H")
        items = table.query(
            TableName=get_settings().usage_table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":pk": {"S": f"AGG#{subscription['customer_id']}#api_calls"},
                ":lo": {"S": first},
                ":hi": {"S": last + "#\uffff"},
            },
            ConsistentRead=True,
        )["Items"]
        calls.hours_read += len(items)
        count = sum(int(from_item(i)["n"]) for i in items)
        line = Line(
            "usage:api_calls::0",
            "usage",
            "api_calls",
            Decimal(count),
            count * UNIT_PRICE_MINOR,
            len(items),
            count,
        )
        return Rated("USD", [line])

    return rate


def opening_rater(calls: Calls) -> Any:
    def rate(subscription: dict[str, Any], start: datetime, end: datetime) -> Rated:
        calls.rate_opening += 1
        return Rated("USD", [Line("fixed_fee:basic:0", "fixed_fee", None, Decimal(1), OPENING_FEE_MINOR)])

    return rate


def grant_credits(customer_id: str, amount_minor: int) -> None:
    boto3.client("dynamodb").put_item(
        TableName=get_settings().ledger_table,
        Item=to_item({"pk": f"GRANT#{customer_id}", "sk": "g1", "remaining": amount_minor}),
    )


@dataclass(frozen=True)
class Application:
    grant_id: str
    line_id: str
    amount_minor: int


def credits_from_one_grant(
    customer_id: str, currency: str, lines: Sequence[ChargeLine], at: datetime
) -> CreditsResult:
    """Spends the customer's single grant (if any) on the lines in order; the decrement is conditional."""
    table = get_settings().ledger_table
    got = boto3.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": f"GRANT#{customer_id}"}, "sk": {"S": "g1"}}, ConsistentRead=True
    )
    remaining = int(got["Item"]["remaining"]["N"]) if "Item" in got else 0
    applications = []
    for line in lines:
        take = min(remaining, line.amount_minor)
        if take > 0:
            applications.append(Application("g1", line.line_id, take))
            remaining -= take
    spent = sum(a.amount_minor for a in applications)
    items = []
    if spent:
        items.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": f"GRANT#{customer_id}"}, "sk": {"S": "g1"}},
                    "UpdateExpression": "SET remaining = remaining - :s",
                    "ConditionExpression": "remaining >= :s",
                    "ExpressionAttributeValues": {":s": {"N": str(spent)}},
                }
            }
        )
    return CreditsResult(list(applications), items)


def one_posting_item(calls: Calls) -> Any:
    """One balanced posting item per invoice (or revision), keyed by its idempotency key."""

    def build(request: PostingRequest) -> list[dict[str, Any]]:
        calls.postings += 1
        credited = sum(a.amount_minor for a in request.applications)
        entries = [
            {"account": "receivable", "debit": request.subtotal_minor - credited, "credit": 0},
            {"account": "prepaid_credit", "debit": credited, "credit": 0},
            {"account": "revenue", "debit": 0, "credit": request.subtotal_minor},
        ]
        item = {
            "pk": f"POST#{request.posting_key}",
            "sk": "#",
            "invoice_id": request.invoice_id,
            "entries": json.dumps(entries),
        }
        return [
            {
                "Put": {
                    "TableName": get_settings().ledger_table,
                    "Item": to_item(item),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]

    return build


def postings() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=get_settings().ledger_table)["Items"]
    return [from_item(i) for i in items if i["pk"]["S"].startswith("POST#")]


def assert_ledger_balanced() -> None:
    for posting in postings():
        entries = json.loads(posting["entries"])
        assert sum(e["debit"] for e in entries) == sum(e["credit"] for e in entries), posting


@dataclass
class World:
    ctx: Billing
    calls: Calls
    plans: PlansRepository
    locks: LockRepository
    billing_queue: str
    sync_queue: str
    subscriptions: list[dict[str, Any]] = field(default_factory=list)

    def subscribe(self, customer_id: str, start: datetime = START, **extra: Any) -> dict[str, Any]:
        sub_id = f"sub_{len(self.subscriptions):020x}"
        doc = {
            "id": sub_id,
            "customer_id": customer_id,
            "status": "active",
            "currency": "USD",
            "interval": "month",
            "start_at": start.isoformat(),
            "trial_end": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "ended_at": None,
            "phases": [
                {"plan_code": "basic", "plan_version": 1, "start_at": start.isoformat(), "end_at": None}
            ],
            "created_at": start.isoformat(),
            **extra,
        }
        self.subscriptions.append(self.plans.create_subscription(doc))
        return doc

    def usage(self, customer_id: str, hour: datetime, calls: int) -> None:
        """Set the api_calls aggregate of one hour (what ingest maintains)."""
        boto3.client("dynamodb").put_item(
            TableName=get_settings().usage_table,
            Item=to_item(
                {"pk": f"AGG#{customer_id}#api_calls", "sk": hour.strftime("%Y-%m-%dT%H") + "#", "n": calls}
            ),
        )

    def invoices(self, customer_id: str) -> list[dict[str, Any]]:
        docs, _ = self.ctx.invoices.list(customer_id, None, 100, None)
        return sorted(docs, key=lambda d: (d["period_start"], d["kind"] != "opening"))


def make_deps(calls: Calls) -> BillingDeps:
    return BillingDeps(
        rate_window=usage_rater(calls),
        rate_opening=opening_rater(calls),
        apply_credits=credits_from_one_grant,
        invoice_posting_items=one_posting_item(calls),
        add_interval=add_days,
    )


@pytest.fixture
def world(aws: dict[str, str]) -> World:
    from neruba.models.catalog import Customer

    settings = get_settings()
    plans = PlansRepository(settings.catalog_table)
    for name in ("acme", "globex"):
        plans.create_customer(Customer(external_id=name, name=name.title(), currency="USD"))
    calls = Calls()
    ctx = Billing(
        billing=BillingRepository(settings.billing_table),
        invoices=InvoicesRepository(settings.billing_table),
        subscription=plans.subscription,
        deps=make_deps(calls),
        grace=timedelta(seconds=settings.billing_grace_seconds),
        ops_table=settings.ops_table,
        billing_queue_url=settings.billing_queue_url,
        sync_queue_url=settings.stripe_sync_queue_url,
        catalog_table=settings.catalog_table,
    )
    return World(
        ctx,
        calls,
        plans,
        LockRepository(settings.billing_table),
        queue_url("BillingQueue"),
        queue_url("StripeSyncQueue"),
    )
