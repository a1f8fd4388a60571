"""The demo data of the local stack: a customer, a meter, a plan, a subscription, an all-scopes API key."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from decimal import Decimal

from neruba.dal.catalog import CatalogConflictError, CatalogNotFoundError, CatalogRepository
from neruba.dal.keys import KeysRepository
from neruba.dal.plans import PlansRepository
from neruba.logic.catalog.subscriptions import create_subscription
from neruba.models.catalog import (
    ChargeIn,
    Customer,
    FixedFeeIn,
    Meter,
    PlanVersionIn,
    SubscriptionCreate,
    TierIn,
)
from neruba.settings import get_settings

DEMO_CUSTOMER = "demo-customer"
DEMO_METER = "api_calls"
DEMO_PLAN = "demo-usage"


@dataclass(frozen=True, slots=True)
class DemoInfo:
    api_key: str
    customer_id: str
    meter_code: str
    plan_code: str
    subscription_id: str
    stripe_webhook_secret: str = ""


def ensure_local_stripe_parameter() -> str:
    """The webhook signing secret of the local Stripe parameter (the local stack writes the parameter at
    start, ``stripe_local.py``; this creates one without an API key when it is missing)."""
    from neruba.dal.clients import client
    from neruba_tools.local.stripe_local import ensure_parameter

    return ensure_parameter(client("ssm"), get_settings().stripe_secret_name or "/neruba/stripe", None)


DEMO_KEY_PARAMETER = "/neruba-local/demo-api-key"


def _demo_key(keys: KeysRepository) -> str:
    """The demo key kept in the local SSM (so a ``--state-dir`` restart reuses it rather than minting
    another active admin key each start); a new one when there is none or it no longer works."""
    from neruba.dal.clients import client

    ssm = client("ssm")
    try:
        kept = str(ssm.get_parameter(Name=DEMO_KEY_PARAMETER, WithDecryption=True)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        kept = ""
    if kept and keys.authenticate(kept) is not None:
        return kept
    plaintext, _ = keys.create(frozenset({"ingest", "read", "admin"}), name="local demo")
    ssm.put_parameter(Name=DEMO_KEY_PARAMETER, Value=plaintext, Type="SecureString", Overwrite=True)
    return plaintext


def seed_demo() -> DemoInfo:
    """Create the demo catalog (idempotent) and its all-scopes API key (kept across restarts)."""
    settings = get_settings()
    catalog = CatalogRepository(settings.catalog_table)
    with contextlib.suppress(CatalogConflictError):
        catalog.create_customer(
            Customer(
                external_id=DEMO_CUSTOMER, name="Demo Customer", email="demo@example.com", currency="USD"
            )
        )
    with contextlib.suppress(CatalogConflictError):
        catalog.create_meter(Meter(code=DEMO_METER, name="API calls", aggregation="sum", field="value"))
    plans = PlansRepository(settings.catalog_table)
    try:
        plans.plan(DEMO_PLAN)
    except CatalogNotFoundError:
        body = PlanVersionIn(
            name="Demo usage plan",
            currency="USD",
            interval="month",
            fixed_fee=FixedFeeIn(amount=Decimal("10"), timing="advance"),
            charges=[
                ChargeIn(
                    meter_code=DEMO_METER,
                    model="graduated",
                    tiers=[
                        TierIn(up_to=Decimal(1000), unit_price=Decimal(0)),
                        TierIn(up_to=None, unit_price=Decimal("0.002")),
                    ],
                )
            ],
        )
        plans.publish(DEMO_PLAN, body.model_dump(mode="json"))
    subscription = create_subscription(
        plans,
        SubscriptionCreate(customer_id=DEMO_CUSTOMER, plan_code=DEMO_PLAN),
        idempotency_key="local-demo",
    )
    plaintext = _demo_key(KeysRepository(settings.keys_table))
    return DemoInfo(
        plaintext,
        DEMO_CUSTOMER,
        DEMO_METER,
        DEMO_PLAN,
        str(subscription["id"]),
        stripe_webhook_secret=ensure_local_stripe_parameter(),
    )
