"""Balance alerts: ``alert.triggered`` (kind ``balance``) when a customer's usable credit falls under one
of its ``balance_alerts_minor`` levels (docs/limits.md, "Balance alerts").

Evaluated by the code that lowers the balance, from the balance it read before and the one its write
leaves, and committed in that write's transaction: a level fires when the balance goes from at or above
it to below it. Nothing is stored per level: the balance going back to or above a level (a grant) arms
it again, and a retried write (cancelled by its own guard) fires nothing again.

Racing writes: a customer with levels has a balance version (``dal.limits``), read with the levels
(:class:`BalanceWatch`) before the grants. A write that evaluates the levels moves it on condition that
it is still the value read (:meth:`BalanceWatch.guard`); a write that raises the balance moves it
unconditionally (:meth:`BalanceWatch.raised`). So of two writes that read the same balance, the second to
commit is cancelled and decides again from what the first left: each crossing fires exactly once. A
customer without levels has no watch: its writes read and write nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.limits import LimitSettings, fallen_under

if TYPE_CHECKING:
    from neruba.dal.catalog import CatalogRepository
    from neruba.dal.limits import LimitsRepository
    from neruba.models.catalog import Customer


@dataclass(frozen=True, slots=True)
class BalanceWatch:
    """A customer's balance alert levels and the balance version read with them."""

    customer_id: str
    levels: tuple[int, ...]
    version: int
    catalog_table: str  # where the customer's catalog item, holding the version, lives

    def guard(self) -> dict[str, Any]:
        """The action of a write that evaluated ``levels``: the version moves on if it is still the one
        read (else the write is cancelled and must decide again)."""
        from neruba.dal.limits import balance_version_item

        return balance_version_item(self.catalog_table, self.customer_id, self.version)

    def raised(self) -> dict[str, Any]:
        """The action of a write raising the balance (:func:`raised_item`)."""
        return raised_item(self.catalog_table, self.customer_id)


def raised_item(catalog_table: str, customer_id: str) -> dict[str, Any]:
    """The action of a write raising a watched customer's balance: the version moves on, whatever it is
    (the write decides nothing itself; a write evaluating the levels meanwhile must decide again)."""
    from neruba.dal.limits import balance_version_item

    return balance_version_item(catalog_table, customer_id, None)


def watch_of(
    catalog_table: str, customer_id: str, settings_text: str | None, version: int
) -> BalanceWatch | None:
    """The watch of a customer from its stored settings and version as read; None without levels."""
    settings = LimitSettings.from_stored(settings_text)
    levels = settings.balance_alerts if settings is not None else ()
    return BalanceWatch(customer_id, tuple(levels), version, catalog_table) if levels else None


def balance_watch_of(limits: LimitsRepository, customer_id: str) -> BalanceWatch | None:
    """The customer's watch (one read of its catalog item; None for an unknown customer or one without
    levels)."""
    try:
        text, version = limits.settings_and_balance_version(customer_id)
    except LookupError:
        return None
    return watch_of(limits.catalog_table, customer_id, text, version)


def customer_and_watch(
    catalog: CatalogRepository, customer_id: str
) -> tuple[Customer | None, BalanceWatch | None]:
    """The customer and its watch, in the one read of its catalog item."""
    customer, text, version = catalog.customer_limits_and_balance_version(customer_id)
    watch = watch_of(catalog.table_name, customer_id, text, version) if customer is not None else None
    return customer, watch


def count_fired(actions: Iterable[dict[str, Any]]) -> int:
    """Count the balance alerts among a committed transaction's ``actions`` in ``UsageAlertTriggered``
    (as usage and spend alerts are); call it once the transaction committed. Returns the count."""
    from neruba.dal.webhooks import outbox_event
    from neruba.observability import metrics

    fired = 0
    for action in actions:
        event = outbox_event(action)
        if event and event.get("type") == "alert.triggered" and event["data"].get("kind") == "balance":
            fired += 1
    if fired:
        metrics.add_metric(name="UsageAlertTriggered", unit="Count", value=fired)
    return fired


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
