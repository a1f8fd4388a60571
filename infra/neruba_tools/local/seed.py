"""The demo data of the local stack: a customer, a meter, and an API key with every scope."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from neruba.dal.catalog import CatalogConflictError, CatalogRepository
from neruba.dal.keys import KeysRepository
from neruba.models.catalog import Customer, Meter
from neruba.settings import get_settings

DEMO_CUSTOMER = "demo-customer"
DEMO_METER = "api_calls"


@dataclass(frozen=True, slots=True)
class DemoInfo:
    api_key: str
    customer_id: str
    meter_code: str


def seed_demo() -> DemoInfo:
    """Create the demo catalog (idempotent) and a fresh all-scopes API key."""
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
    plaintext, _ = KeysRepository(settings.keys_table).create(
        frozenset({"ingest", "read", "admin"}), name="local demo"
    )
    return DemoInfo(api_key=plaintext, customer_id=DEMO_CUSTOMER, meter_code=DEMO_METER)
