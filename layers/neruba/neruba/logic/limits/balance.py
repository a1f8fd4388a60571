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

Which customers have levels: the transaction that sets levels also flags the customer ``balance_alert``
(``dal.features``), so a void or an expiry reads a customer's watch only when its flag is set
(:class:`BalanceWatches`: the expiry job reads the flags of a page of grants in one batch). The flags are
trusted once the backfill that flags the levels set before them ran (:func:`backfill_flags`, marker
``MARK#balance-alerts-backfill``); until then every watch is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.limits import LimitSettings, fallen_under

if TYPE_CHECKING:
    from neruba.dal.billing import BillingRepository
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


@dataclass(slots=True)
class BalanceWatches:
    """Reads customers' watches for the writes that close a grant's remainder (a void, an expiry),
    skipping the read for a customer whose flags say it never had levels.

    ``prefetch`` reads the flags of several customers in one batch (the expiry job, per page of due
    grants); a customer not prefetched has its flag read when its watch is asked for. ``markers``: the
    markers this process found set (``bootstrap.markers_seen``; a marker is never removed)."""

    limits: LimitsRepository
    billing: BillingRepository
    markers: set[str]
    _unwatched: set[str] = field(default_factory=set)  # flags read: no levels
    _read: set[str] = field(default_factory=set)  # customers whose flags were read
    _marker_read: bool = False  # the marker was looked for by this reader (found or not)

    def prefetch(self, customer_ids: Iterable[str]) -> None:
        """Read the flags of ``customer_ids`` now (one BatchGetItem per 100 customers)."""
        from neruba.dal.features import BALANCE_ALERT

        wanted = set(customer_ids)
        if not wanted or not self._trusted():
            return
        flagged = self.billing.features.flagged(wanted, BALANCE_ALERT)
        self._unwatched = (self._unwatched - wanted) | (wanted - flagged)
        self._read |= wanted

    def __call__(self, customer_id: str) -> BalanceWatch | None:
        """The customer's watch, read now (its flag first unless prefetched); None without levels."""
        if customer_id not in self._read:
            self.prefetch([customer_id])
        if customer_id in self._unwatched:
            return None
        return balance_watch_of(self.limits, customer_id)

    def _trusted(self) -> bool:
        from neruba.dal.features import BALANCE_MARKER

        if BALANCE_MARKER not in self.markers and not self._marker_read:
            self._marker_read = True
            if self.billing.marker(BALANCE_MARKER) is not None:
                self.markers.add(BALANCE_MARKER)
        return BALANCE_MARKER in self.markers


def backfill_flags(billing: BillingRepository, catalog: CatalogRepository, now: datetime) -> int:
    """Flag ``balance_alert`` every customer whose limits hold balance levels (set before the flags
    existed), then set the marker that lets voids and expiries trust the flags; returns the flags
    written. Safe to run again, and alongside new writes (a flag is an ``ADD`` to a set)."""
    from neruba.dal.features import BALANCE_ALERT, BALANCE_MARKER
    from neruba.dal.transaction import Transaction, commit

    written = 0
    cursor: str | None = None
    while True:
        docs, cursor = catalog.list_docs("customer", 100, cursor)
        for doc in docs:
            customer_id = str(doc["external_id"])
            _customer, text, _version = catalog.customer_limits_and_balance_version(customer_id)
            settings = LimitSettings.from_stored(text)
            if settings is not None and settings.balance_alerts:
                commit(Transaction([billing.features.customer_item(customer_id, BALANCE_ALERT)]))
                written += 1
        if not cursor:
            break
    billing.set_marker(BALANCE_MARKER, now)
    return written


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
