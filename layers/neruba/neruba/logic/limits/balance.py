"""Balance alerts: ``alert.triggered`` (kind ``balance``) when a customer's usable credit falls under one
of its ``balance_alerts_minor`` levels (docs/limits.md, "Balance alerts").

Evaluated by the code that lowers the balance, from the balance it read before and the one its write
leaves, and committed in that write's transaction: a level fires when the balance goes from at or above
it to below it. Nothing is stored per level: the balance going back to or above a level (a grant) arms
it again, and a retried write (cancelled by its own guard) fires nothing again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.limits import LimitSettings, fallen_under

if TYPE_CHECKING:
    from neruba.dal.limits import LimitsRepository


def balance_levels_of(limits: LimitsRepository, customer_id: str) -> tuple[int, ...]:
    """The customer's balance alert levels (one read of its catalog item; none for an unknown one)."""
    try:
        settings = LimitSettings.from_stored(limits.settings_text(customer_id))
    except LookupError:
        return ()
    return settings.balance_alerts if settings is not None else ()


def after_closing(grants: Sequence[Any], grant_id: str, closed_minor: int) -> tuple[int, int]:
    """The usable balance before and after a grant's remainder is closed (expiry or void): the grant
    lowers it only when it is usable now (among ``grants``)."""
    before = sum(g.remaining_minor for g in grants)
    usable = any(g.grant_id == grant_id for g in grants)
    return before, before - closed_minor if usable else before


def balance_alerts(
    customer_id: str, currency: str, before: int, after: int, levels: Sequence[int], at: datetime
) -> list[dict[str, Any]]:
    """The outbox actions of the balance levels crossed downwards from ``before`` to ``after``."""
    from neruba.logic.webhooks.outbox import event_action

    actions = []
    for level in fallen_under(before, after, levels):
        data = {
            "customer_id": customer_id,
            "meter_code": None,
            "alert": f"balance:{level}",
            "kind": "balance",
            "threshold": str(level),
            "usage": None,
            "period_start": None,
            "period_end": None,
            "late": False,
            "currency": currency,
            "balance_minor": after,
            "previous_balance_minor": before,
        }
        actions.append(event_action("alert.triggered", customer_id, data, at))
    return actions
