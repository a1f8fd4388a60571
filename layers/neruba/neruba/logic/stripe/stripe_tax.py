"""Tax delegated to Stripe Tax: what a Stripe invoice says it computed, and how it meets our invoice.

Plain rules, no storage (docs/billing.md, "Tax delegated to Stripe Tax"):

* an invoice is delegated when billing stored ``tax_provider: stripe_tax`` on it (its customer's
  jurisdiction said so when it was billed); Neruba computed no tax on it;
* Stripe reports its tax on the invoice object: ``total_taxes`` (one entry per tax, with its
  ``tax_behavior``), or the older single ``tax`` amount (counted as exclusive);
* our total and Stripe's are compared **before tax** (Stripe's ``total`` less its exclusive tax; ours
  less the Stripe tax already recorded on the invoice), so the comparison holds before and after the
  tax is recorded;
* once recorded (``stripe_tax`` on the invoice), the invoice's ``tax_minor`` and ``total_minor`` include
  the exclusive part and ``tax_included_minor`` the inclusive part: the invoice is amended to what Stripe
  collects, and a payment is checked against it as against any invoice.

Example:
    >>> tax = stripe_tax_of({"total": 1190, "total_taxes": [{"amount": 190, "tax_behavior": "exclusive"}]})
    >>> (tax.exclusive_minor, tax.inclusive_minor, stripe_pre_tax({"total": 1190}, tax))
    (190, 0, 1000)
    >>> our_pre_tax({"total_minor": 1190, "stripe_tax": {"exclusive_minor": 190}})
    1000
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice

PROVIDER = "stripe_tax"
TAX_REFUSALS = ("customer_tax_location_invalid",)
"""Stripe's error codes for "automatic tax cannot be computed for this customer"."""


class StripeTaxDataError(ValueError):
    """The Stripe invoice's tax amounts are not amounts in minor units."""


@dataclass(frozen=True, slots=True)
class StripeTax:
    """What Stripe computed: tax added on top (``exclusive_minor``) and tax inside the amounts."""

    exclusive_minor: int
    inclusive_minor: int

    @property
    def total_minor(self) -> int:
        return self.exclusive_minor + self.inclusive_minor

    def to_dict(self) -> dict[str, int]:
        return {"exclusive_minor": self.exclusive_minor, "inclusive_minor": self.inclusive_minor}


def delegated(invoice: Invoice) -> bool:
    """Whether Stripe Tax computes this invoice's tax."""
    return invoice.document.get("tax_provider") == PROVIDER


def _minor(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StripeTaxDataError(f"{name} is not an amount in minor units")
    return value


def stripe_tax_of(obj: Mapping[str, Any]) -> StripeTax | None:
    """The tax a Stripe invoice object reports, or None when it reports none (not finalized yet)."""
    taxes = obj.get("total_taxes")
    if isinstance(taxes, list):
        exclusive = inclusive = 0
        for n, entry in enumerate(taxes):
            if not isinstance(entry, Mapping):
                raise StripeTaxDataError(f"total_taxes.{n} is not an object")
            amount = _minor(entry.get("amount"), f"total_taxes.{n}.amount")
            if entry.get("tax_behavior") == "inclusive":
                inclusive += amount
            else:
                exclusive += amount
        return StripeTax(exclusive, inclusive)
    if obj.get("tax") is not None:
        return StripeTax(_minor(obj.get("tax"), "tax"), 0)
    return None


def stripe_pre_tax(obj: Mapping[str, Any], tax: StripeTax | None) -> int | None:
    """Stripe's total less the tax it added on top (None when the object has no total)."""
    total = obj.get("total")
    if not isinstance(total, int) or isinstance(total, bool):
        return None
    return total - (tax.exclusive_minor if tax is not None else 0)


def our_pre_tax(doc: Mapping[str, Any]) -> int:
    """Our invoice's total less the Stripe tax recorded on it (its total as billed)."""
    recorded = doc.get("stripe_tax") or {}
    return int(doc.get("total_minor") or 0) - int(recorded.get("exclusive_minor") or 0)
