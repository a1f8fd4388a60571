"""Which optional billing features a customer, and the deployment, have ever used: what lets a window
invoice skip the reads of the features nobody uses (docs/performance.md, "Reads a window skips").

Items in the billing table (``pk`` / ``sk``), each written by an ``ADD`` to a string set inside the
transaction that stores the feature, and never removed (a flag only says "read it"; the reads decide):

- ``FEAT#{customer}`` / ``#`` - ``f``: ``one_off`` (a one-off charge was stored for the customer),
  ``advance`` (an advance item was), ``discount`` (a discount was attached to the customer or one of its
  subscriptions), ``stripe_tax`` (its tax jurisdiction was once set to delegate tax to Stripe Tax),
  ``balance_alert`` (balance alert levels were set in the customer's limits: the writes lowering its
  credit read its levels, ``logic.limits.balance``);
- ``FEAT`` / ``#`` - ``f``: ``tax_rate`` (a tax rate was created); ``p``: ``{plan}#{version}`` of every
  plan version a discount was attached to.

The flags are trusted only once the backfill marked every feature stored before them
(``MARK#billing-features-backfill``, ``logic.billing.features``; for ``balance_alert``, which came later,
``MARK#balance-alerts-backfill``); until then every read is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from neruba.dal.dynamo import batch_get

ONE_OFF, ADVANCE, DISCOUNT, TAX_RATE = "one_off", "advance", "discount", "tax_rate"
STRIPE_TAX = "stripe_tax"  # the customer's tax is delegated to Stripe Tax (its jurisdiction says so)
MARKER = "billing-features-backfill"
BALANCE_ALERT = "balance_alert"
BALANCE_MARKER = "balance-alerts-backfill"  # the backfill of BALANCE_ALERT flags ran (logic.limits.balance)
_DEPLOYMENT = "FEAT"


@dataclass(frozen=True)
class Features:
    """What a window may skip. ``known`` False: the flags are not trusted yet, nothing is skipped."""

    customer: frozenset[str] = frozenset()
    deployment: frozenset[str] = frozenset()
    plans: frozenset[str] = frozenset()
    known: bool = True

    def uses(self, feature: str) -> bool:
        """Whether the customer's (or, for ``tax_rate``, the deployment's) reads of ``feature`` are due."""
        return not self.known or feature in self.customer or feature in self.deployment

    def plan_discounts(self, plan_code: str, plan_version: int) -> bool:
        """Whether the discounts of a plan version must be read."""
        return not self.known or f"{plan_code}#{plan_version}" in self.plans


UNKNOWN = Features(known=False)


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "#"}}


class FeaturesRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def read(self, customer_id: str) -> Features:
        """The customer's and the deployment's flags: one consistent BatchGetItem of both items (an
        exception when throttled throughout: the window is retried, never billed without them)."""
        keys = [_key(f"FEAT#{customer_id}"), _key(_DEPLOYMENT)]
        found = {str(item["pk"]): item for item in batch_get(self.table_name, keys)}
        mine, deployment = found.get(f"FEAT#{customer_id}", {}), found.get(_DEPLOYMENT, {})
        return Features(
            customer=frozenset(mine.get("f") or ()),
            deployment=frozenset(deployment.get("f") or ()),
            plans=frozenset(deployment.get("p") or ()),
        )

    def flagged(self, customer_ids: Iterable[str], feature: str) -> set[str]:
        """The customers among ``customer_ids`` whose flags hold ``feature``: their items read consistently
        in one BatchGetItem per 100 customers."""
        keys = [_key(f"FEAT#{customer_id}") for customer_id in customer_ids]
        found = batch_get(self.table_name, keys) if keys else []
        return {str(item["pk"]).removeprefix("FEAT#") for item in found if feature in (item.get("f") or ())}

    def _add(self, pk: str, attribute: str, value: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _key(pk),
                "UpdateExpression": f"ADD {attribute} :v",
                "ExpressionAttributeValues": {":v": {"SS": [value]}},
            }
        }

    def customer_item(self, customer_id: str, feature: str) -> dict[str, Any]:
        """The action flagging ``feature`` for the customer (add it to the transaction storing it)."""
        return self._add(f"FEAT#{customer_id}", "f", feature)

    def tax_rate_item(self) -> dict[str, Any]:
        """The action flagging that the deployment has tax rates."""
        return self._add(_DEPLOYMENT, "f", TAX_RATE)

    def plan_item(self, plan_code: str, plan_version: int) -> dict[str, Any]:
        """The action flagging that a plan version has discounts."""
        return self._add(_DEPLOYMENT, "p", f"{plan_code}#{plan_version}")
