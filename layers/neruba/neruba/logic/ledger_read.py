"""Ledger reads for the API: balance, postings, grants, audit records (404 for unknown customers)."""

from __future__ import annotations

from typing import Any

from neruba.dal.catalog import CatalogRepository, InvalidCursorError
from neruba.dal.ledger import LedgerRepository
from neruba.domain.ledger import summarise
from neruba.errors import InvalidRequestError, NotFoundError
from neruba.models.catalog import Customer
from neruba.settings import get_settings


def ledger_repo() -> LedgerRepository:
    return LedgerRepository(get_settings().ledger_table)


def customer(customer_id: str) -> Customer:
    found = CatalogRepository(get_settings().catalog_table).get_customer(customer_id)
    if found is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    return found


def _bad_cursor(exc: Exception) -> InvalidRequestError:
    return InvalidRequestError(
        "The cursor is not one this API returned.", code="invalid_cursor", param="starting_after"
    )


def balance(customer_id: str) -> dict[str, Any]:
    """The customer's balance in their currency, derived from the ledger."""
    currency = customer(customer_id).currency
    view = summarise(ledger_repo().balances(customer_id).get(currency, {}))
    return {"object": "balance", "customer_id": customer_id, "currency": currency, **view}


def postings(customer_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    customer(customer_id)
    try:
        found, next_cursor = ledger_repo().postings(customer_id, limit, cursor)
    except InvalidCursorError as exc:
        raise _bad_cursor(exc) from exc
    return {
        "object": "list",
        "data": [p.to_dict() for p in found],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }


def grants(customer_id: str) -> dict[str, Any]:
    customer(customer_id)
    found = ledger_repo().grants(customer_id, None)
    return {"object": "list", "data": [g.to_dict() for g in found], "has_more": False, "next_cursor": None}


def audit_records(customer_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    from neruba.dal.audit import AuditRepository

    try:
        found, next_cursor = AuditRepository(get_settings().ops_table).list(customer_id, limit, cursor)
    except InvalidCursorError as exc:
        raise _bad_cursor(exc) from exc
    return {"object": "list", "data": found, "has_more": next_cursor is not None, "next_cursor": next_cursor}
