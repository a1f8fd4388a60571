"""Archive a customer: it keeps its data and invoices, its subscriptions end at the archive time, and it
takes no new usage nor new subscriptions (``customer_archived``).

The archive time is written first (once; archiving again keeps it), then every subscription still active
is canceled at that time through :func:`neruba.logic.catalog.subscriptions.cancel`, which ends its billing
state so the final window is billed and the fixed fee prorated as for any cancellation. A retry after a
crash between the two finds the time set and cancels what is left, at the same time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from neruba.dal.catalog import CatalogConflictError, CatalogNotFoundError
from neruba.dal.plans import PlansRepository
from neruba.errors import ConflictError, NotFoundError
from neruba.logic.catalog.entries import SYSTEM, Actor, audit_item, customer_updated
from neruba.models.catalog import Cancellation, Customer, CustomerArchive
from neruba.timefmt import iso


def archive_customer(
    repo: PlansRepository,
    external_id: str,
    body: CustomerArchive,
    now: datetime | None = None,
    by: Actor = SYSTEM,
) -> dict[str, Any]:
    """Archive the customer (idempotent) and end its active subscriptions at the archive time."""

    now = now or datetime.now(UTC)

    def audit(before: Customer, after: Customer) -> list[dict[str, Any]]:
        if before.archived_at is not None:
            raise _ArchivedMeanwhile  # another archive landed first: keep its time, write nothing
        return [
            audit_item(
                by,
                "customer.archive",
                external_id,
                customer_id=external_id,
                before={"archived_at": None},
                after={"archived_at": iso(now)},
                at=now,
                reason=body.reason,
                ticket=body.ticket,
            ),
            *customer_updated(before, after, now),
        ]

    current = repo.get_customer(external_id)
    if current is None:
        raise NotFoundError(f"No customer {external_id!r}.", code="customer_not_found", param="customer_id")
    customer = current
    if current.archived_at is None:
        try:
            customer = repo.update_customer(external_id, {"archived_at": iso(now)}, audit)
        except _ArchivedMeanwhile:
            customer = repo.get_customer(external_id) or current
        except CatalogNotFoundError as exc:
            raise NotFoundError(f"No customer {external_id!r}.", code="customer_not_found") from exc
        except CatalogConflictError as exc:
            raise ConflictError(str(exc), code="customer_conflict") from exc
    archived_at = customer.archived_at or now
    ending = Cancellation(at_period_end=False, reason=body.reason or "customer archived", ticket=body.ticket)
    for sub in repo.customer_subscriptions(external_id):
        if sub.status == "active":
            _end(repo, sub.id, ending, archived_at, by)
    return customer.model_dump(mode="json")


def _end(repo: PlansRepository, subscription_id: str, ending: Cancellation, at: datetime, by: Actor) -> None:
    """Cancel one subscription at the archive time; a concurrent archive (or cancel) that ended it first
    is the same outcome, so a ``subscription_canceled`` or ``subscription_conflict`` after which the
    subscription is no longer active is not an error."""
    from neruba.logic.catalog import subscriptions

    for _attempt in range(3):
        try:
            subscriptions.cancel(repo, subscription_id, ending, now=at, by=by)
            return
        except ConflictError as exc:
            if exc.code not in ("subscription_canceled", "subscription_conflict"):
                raise
            if repo.subscription(subscription_id).status != "active":
                return
    subscriptions.cancel(repo, subscription_id, ending, now=at, by=by)


class _ArchivedMeanwhile(Exception):
    """The customer was archived between our read and our write."""
