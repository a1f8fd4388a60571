"""Billing tests on the real collaborators (pricing, credits, ledger postings on moto) with daily windows
(the interval arithmetic is part of the context; production uses domain.periods.add_interval). Each world
installs its context in ``neruba.bootstrap``, so the handlers under test bill with it.

Two worlds: ``world`` (subscriptions written straight to the catalog table, the "basic" plan at 0.10 per
API call) and ``real`` (the catalog use cases, the "metered" plan at 1.00 per API call)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from neruba import bootstrap
from neruba.dal.billing import BillingRepository
from neruba.dal.dynamo import to_item
from neruba.dal.invoices import InvoicesRepository
from neruba.dal.ledger import LedgerRepository
from neruba.dal.locks import LockRepository
from neruba.dal.plans import PlansRepository
from neruba.dal.usage import UsageRepository
from neruba.logic.billing.context import Billing
from neruba.settings import get_settings
from tests.support.aws import queue_url

START = datetime(2026, 3, 1, tzinfo=UTC)


def add_days(anchor: datetime, interval: str, n: int) -> datetime:
    """Daily windows for tests (the plan's interval is ignored on purpose)."""
    return anchor + timedelta(days=n)


@dataclass
class World:
    ctx: Billing
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
        """The customer's stored invoice documents, oldest period first (an opening invoice first)."""
        found, _ = self.ctx.invoices.list(customer_id, None, 100, None)
        return [i.document for i in sorted(found, key=lambda i: (i.period_start, i.kind != "opening"))]


BASIC = {
    "code": "basic",
    "name": "Basic",
    "currency": "USD",
    "interval": "month",
    "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": Decimal("0.10")}],
}
"""The "basic" plan of ``world``: 10 minor units per API call, nothing else."""


def _billing(plans: PlansRepository) -> Billing:
    """The real billing context (pricing, credits, ledger postings, auto top-up) on daily windows."""
    settings = get_settings()
    return Billing(
        billing=BillingRepository(settings.billing_table),
        invoices=InvoicesRepository(settings.billing_table),
        plans=plans,
        usage=UsageRepository(settings.usage_table),
        ledger=LedgerRepository(settings.ledger_table),
        add_interval=add_days,
        grace=timedelta(seconds=settings.billing_grace_seconds),
        ops_table=settings.ops_table,
        billing_queue_url=settings.billing_queue_url,
        sync_queue_url=settings.stripe_sync_queue_url,
        catalog_table=settings.catalog_table,
    )


def make_world(plan: dict[str, Any], customers: dict[str, dict[str, Any]]) -> World:
    """Customers, the api_calls meter and ``plan`` (version 1) in the catalog, and the real billing
    context installed in ``neruba.bootstrap`` (so the handlers under test bill with it)."""
    from neruba.logic.catalog.entries import create_plan
    from neruba.models.catalog import Customer, Meter, PlanCreate

    settings = get_settings()
    plans = PlansRepository(settings.catalog_table)
    for name, extra in customers.items():
        plans.create_customer(Customer(external_id=name, name=name.title(), currency="USD", **extra))
    plans.create_meter(Meter(code="api_calls", name="API calls", aggregation="count"))
    create_plan(plans, PlanCreate.model_validate(plan))
    ctx = _billing(plans)
    bootstrap.install(billing=ctx)
    return World(
        ctx,
        plans,
        LockRepository(settings.billing_table),
        queue_url("BillingQueue"),
        queue_url("StripeSyncQueue"),
    )


@pytest.fixture
def world(aws: dict[str, str]) -> World:
    """Billing with the real collaborators on daily windows; acme and globex; the "basic" plan."""
    return make_world(BASIC, {"acme": {}, "globex": {}})


# ---------------------------------------------------------------- the real collaborators
PRICE_PER_CALL = Decimal("1.00")  # the "metered" plan: 100 minor units per API call, nothing else


@pytest.fixture
def real(catalog: Any) -> World:
    """Billing with the REAL pricing engine and ledger (``logic.billing.context.Billing``), on daily windows.

    Customers and meters come from the ``catalog`` fixture; the plan and subscriptions go through the
    catalog use cases (``logic.catalog.entries``, ``logic.catalog.subscriptions``, which creates the
    billing state); usage is the hourly aggregate item ingest writes.
    The plan has usage charges only, so daily windows rate exactly what a monthly plan would per day.
    """
    from neruba.logic.catalog.entries import create_plan
    from neruba.models.catalog import PlanCreate

    settings = get_settings()
    plans = PlansRepository(settings.catalog_table)
    create_plan(
        plans,
        PlanCreate.model_validate(
            {
                "code": "metered",
                "name": "Metered",
                "currency": "USD",
                "interval": "month",
                "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": PRICE_PER_CALL}],
            }
        ),
    )
    ctx = _billing(plans)
    bootstrap.install(billing=ctx)
    return World(
        ctx,
        plans,
        LockRepository(settings.billing_table),
        queue_url("BillingQueue"),
        queue_url("StripeSyncQueue"),
    )


def subscribe_real(world: World, customer_id: str, start: datetime = START) -> dict[str, Any]:
    """Subscribe through ``logic.catalog.subscriptions.create_subscription`` (it creates the billing
    state)."""
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import SubscriptionCreate

    body = SubscriptionCreate(customer_id=customer_id, plan_code="metered", start_at=start)
    sub = create_subscription(world.plans, body, f"sub-{customer_id}-{start.isoformat()}", now=start)
    world.subscriptions.append(sub)
    return sub


def ledger() -> Any:
    return LedgerRepository(get_settings().ledger_table)


def invoice_postings(customer_id: str) -> list[Any]:
    """The customer's postings made by billing (source ``invoice``), oldest first."""
    found, cursor = ledger().postings(customer_id, 100)
    assert cursor is None
    return sorted((p for p in found if p.source == "invoice"), key=lambda p: (p.at, p.idempotency_key))


def assert_books_agree(world: World, customer_id: str) -> None:
    """The ledger reconciles and its receivable is exactly what the customer's invoices ask for: their
    totals less what credit notes took off them (what was due, and what they gave as customer credit)."""
    repo = ledger()
    assert repo.reconcile(customer_id) == []
    due = sum(
        int(i["total_minor"])
        - int(i.get("pre_payment_credited_minor") or 0)
        - int(i.get("credited_balance_minor") or 0)
        for i in world.invoices(customer_id)
    )
    assert repo.balances(customer_id).get("USD", {}).get("receivable", 0) == due
