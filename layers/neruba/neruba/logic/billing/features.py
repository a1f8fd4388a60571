"""The backfill that flags the optional billing features (``dal.features``) stored before the flags
existed (``Billing.features`` reads the flags for a window).

A window invoice reads the customer's one-off charges, advance items and discounts, the discounts of its
plan versions and the tax rates only when a flag says they may exist. A flag is added in the transaction
that stores its feature and never removed, so a flag that is set when nothing is left only costs the read
it always cost; and nothing is skipped until the backfill has run (its marker is read until it is found,
then remembered by the context: a marker is never removed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neruba.dal.features import ADVANCE, DISCOUNT, MARKER, ONE_OFF

if TYPE_CHECKING:
    from datetime import datetime

    from neruba.dal.plans import PlansRepository
    from neruba.logic.billing.context import Billing


def backfill_features(ctx: Billing, plans: PlansRepository, now: datetime) -> int:
    """Flag the features stored before their flags (every discount, tax rate, one-off charge and advance
    item), then set the marker that lets windows trust the flags; returns the flags written. Safe to run
    again, and alongside new writes (a flag is an ``ADD`` to a set)."""
    from neruba.dal.transaction import Transaction, commit

    repo, store = ctx.billing.features, ctx.billing.discounts
    actions = []
    if store.tax_rates():
        actions.append(repo.tax_rate_item())
    for partition in store.discount_partitions():
        if partition.startswith("DSC#plan#"):
            code, _, version = partition.removeprefix("DSC#plan#").rpartition("#")
            actions.append(repo.plan_item(code, int(version)))
        else:
            actions.append(repo.customer_item(partition.removeprefix("DSC#"), DISCOUNT))
    cursor: str | None = None
    while True:
        docs, cursor = plans.list_docs("customer", 100, cursor)
        for doc in docs:
            customer_id = str(doc["external_id"])
            if ctx.billing.one_offs.charges(customer_id):
                actions.append(repo.customer_item(customer_id, ONE_OFF))
            if ctx.billing.advance.charges(customer_id):
                actions.append(repo.customer_item(customer_id, ADVANCE))
        if not cursor:
            break
    for action in actions:  # one at a time: two flags of one item cannot share a transaction
        commit(Transaction([action]))
    ctx.billing.set_marker(MARKER, now)
    return len(actions)
