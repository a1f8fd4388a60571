"""Ledger reads for the API: balance, postings, grants, audit records (404 for unknown customers)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from neruba import bootstrap
from neruba.dal.ledger import LedgerRepository
from neruba.domain.ledger import summarise
from neruba.errors import NotFoundError
from neruba.models.catalog import Customer


def ledger_repo() -> LedgerRepository:
    return bootstrap.ledger()


def customer(customer_id: str) -> Customer:
    found = bootstrap.catalog().get_customer(customer_id)
    if found is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    return found


def balance(customer_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The customer's balance in their currency, derived from the ledger.

    Credit past its ``expires_at`` is never available, even before the expiry job has posted its
    expiry: it is left out of ``credit_available_minor`` and ``credit_available_by_grant`` and shown as
    ``credit_expired_unposted_minor`` (``accounts`` stays the books as posted)."""
    currency = customer(customer_id).currency
    repo = ledger_repo()
    view = summarise(repo.balances(customer_id).get(currency, {}))
    moment = now or datetime.now(UTC)
    lapsed = {
        g.grant_id: g.remaining_minor
        for g in repo.grants(customer_id, currency)
        if g.status == "active" and g.expires_at is not None and g.expires_at <= moment
    }
    by_grant = {g: v for g, v in view["credit_available_by_grant"].items() if g not in lapsed}
    expired = sum(v for g, v in view["credit_available_by_grant"].items() if g in lapsed)
    view.update(
        credit_available_minor=view["credit_available_minor"] - expired,
        credit_available_by_grant=by_grant,
        credit_expired_unposted_minor=expired,
    )
    return {"object": "balance", "customer_id": customer_id, "currency": currency, **view}


def postings(customer_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    customer(customer_id)
    found, next_cursor = ledger_repo().postings(customer_id, limit, cursor)
    return {
        "object": "list",
        "data": [p.to_dict() for p in found],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }


def grants(customer_id: str, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
    """A page of the customer's credit grants, oldest effective first."""
    customer(customer_id)
    found, next_cursor = ledger_repo().grants_page(customer_id, limit, cursor)
    return {
        "object": "list",
        "data": [g.to_dict() for g in found],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }


def audit_records(customer_id: str, limit: int, cursor: str | None) -> dict[str, Any]:

    found, next_cursor = bootstrap.audit().list(customer_id, limit, cursor)
    return {"object": "list", "data": found, "has_more": next_cursor is not None, "next_cursor": next_cursor}
