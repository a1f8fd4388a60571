"""Fixtures for ledger tests: the repository, a customer in the catalog, a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from neruba.settings import get_settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def ledger(aws: dict[str, str]) -> Any:
    from neruba.dal.ledger import LedgerRepository

    return LedgerRepository(get_settings().ledger_table)


@pytest.fixture
def customers(aws: dict[str, str]) -> Any:
    """Customers acme (USD) and yen-co (JPY) in the catalog."""
    from neruba.dal.catalog import CatalogRepository
    from neruba.models.catalog import Customer

    repo = CatalogRepository(get_settings().catalog_table)
    repo.create_customer(Customer(external_id="acme", name="Acme", currency="USD"))
    repo.create_customer(Customer(external_id="yen-co", name="Yen Co", currency="JPY"))
    return repo
