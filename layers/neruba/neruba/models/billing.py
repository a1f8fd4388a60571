"""Billing queue messages and operator request bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from neruba.models.fields import (
    EXTERNAL_ID_PATTERN,
    MAX_METADATA,
    AuditedReason,
    Instant,
    LineDescription,
    Metadata,
    Price,
    Quantity,
    TicketText,
)


class BillingJob(BaseModel):
    """One message on BillingQueue: bill window ``seq`` of a subscription (and any earlier one still open).

    Example:
        >>> BillingJob(subscription_id="sub_1", customer_id="acme", seq=3, window_id="w", kind="usage").seq
        3
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = 1
    subscription_id: str = Field(min_length=1, max_length=64)
    customer_id: str = Field(min_length=1, max_length=128)
    seq: int = Field(ge=0)
    window_id: str = Field(min_length=1, max_length=256)
    kind: str = Field(pattern=r"^(opening|usage)$")
    run_id: str | None = Field(default=None, max_length=64)


class BillingRunRequest(BaseModel):
    """``POST /admin/billing-runs``: run the scheduler now, for every due window or for one customer."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = Field(default=None, pattern=EXTERNAL_ID_PATTERN)
    at: Instant | None = Field(
        default=None, description="Bill what is due at this time (not in the future); default now."
    )
    backfill: bool = Field(
        default=False, description="Also create billing states for every subscription of the catalog."
    )
    reason: AuditedReason = Field(description="Why the run is needed (audited).")
    ticket: TicketText | None = None


class RerunRequest(BaseModel):
    """``POST /admin/invoices/{id}/rerun``: recompute a draft, or correct a finalized invoice."""

    model_config = ConfigDict(extra="forbid")

    reason: AuditedReason = Field(description="Why the invoice is recomputed (audited).")
    ticket: TicketText | None = None


MAX_ONE_OFF_DESCRIPTION = 500
MAX_ONE_OFF_MINOR = 10**15  # what one charge may ask: far above any real fee, far below DynamoDB's range


class OneOffChargeCreate(BaseModel):
    """``POST /admin/customers/{id}/one-off-charges``: a charge outside the plan (a setup fee, services).

    Give ``amount_minor``, or ``quantity`` and ``unit_price`` (the amount is their product, rounded half-up
    to minor units once: docs/pricing.md).
    """

    model_config = ConfigDict(extra="forbid")

    description: LineDescription = Field(description="What the charge is for, as the invoice line shows it.")
    amount_minor: StrictInt | None = Field(default=None, description="The amount in minor units (positive).")
    quantity: Quantity | None = Field(default=None, description="With unit_price: how many units.")
    unit_price: Price | None = Field(default=None, description="With quantity: the price of one unit.")
    currency: str = Field(min_length=3, max_length=3, description="Must be the customer's currency.")
    mode: Literal["invoice_now", "next_invoice"] = Field(
        description="invoice_now: an invoice of its own at once; next_invoice: a line on the next invoice."
    )
    metadata: Metadata = Field(default_factory=dict, max_length=MAX_METADATA)
    reason: AuditedReason = Field(description="Why the charge is added (audited).")
    ticket: TicketText | None = None


class OneOffChargeVoid(BaseModel):
    """``POST /admin/customers/{id}/one-off-charges/{charge_id}/void``: drop a pending charge."""

    model_config = ConfigDict(extra="forbid")

    reason: AuditedReason = Field(description="Why the charge is voided (audited).")
    ticket: TicketText | None = None
