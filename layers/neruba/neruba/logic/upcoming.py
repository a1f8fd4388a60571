"""The upcoming invoice: each active subscription's current period rated to date (a preview; no writes).

Example:
    >>> upcoming_invoice(plans, usage, "acme")["object"]  # doctest: +SKIP
    'upcoming_invoice'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.periods import period_containing
from neruba.errors import NotFoundError

if TYPE_CHECKING:
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository


def upcoming_invoice(
    plans: PlansRepository, usage: UsageRepository, customer_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """One window per active, started subscription: its current period with usage up to ``now``.

    Credits are not applied (``credits_applied`` is false): the amounts are the subtotal before any
    credit grant. A customer without an active subscription gets an empty ``windows`` list.
    """
    from neruba.logic.rating import rate_window

    now = (now or datetime.now(UTC)).astimezone(UTC)
    if plans.get_customer(customer_id) is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    windows = []
    for sub in sorted(
        plans.customer_subscriptions(customer_id), key=lambda s: (str(s["start_at"]), str(s["id"]))
    ):
        anchor = datetime.fromisoformat(str(sub["start_at"]))
        if sub.get("status") != "active" or anchor > now:
            continue
        start, end = period_containing(anchor, str(sub["interval"]), now)
        window = rate_window(plans, usage, sub, start, end, as_of=now)
        windows.append(
            {
                **window.to_dict(),
                "object": "upcoming_window",
                "credits_applied": False,
            }
        )
    return {
        "object": "upcoming_invoice",
        "customer_id": customer_id,
        "as_of": now.isoformat(),
        "credits_applied": False,
        "note": "Preview of the current period to date; credits are applied when the invoice is issued.",
        "windows": windows,
    }
