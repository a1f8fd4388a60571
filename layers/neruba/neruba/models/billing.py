"""Billing queue messages and operator request bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from neruba.models.fields import (
    EXTERNAL_ID_PATTERN,
    MAX_METADATA,
    AuditedReason,
    Currency,
    Instant,
    LineDescription,
    Memo,
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
    backfill: StrictBool = Field(
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
    currency: Currency = Field(description="Must be the customer's currency (any case; answered upper case).")
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


MAX_CREDIT_NOTE_LINES = 50  # each line is part of the credit note's document; far above real notes


class CreditNoteLineIn(BaseModel):
    """One invoice line to credit: by ``amount_minor`` or by ``quantity`` (one of the two)."""

    model_config = ConfigDict(extra="forbid")

    line_id: str = Field(min_length=1, max_length=512, description="The invoice line's line_id.")
    amount_minor: StrictInt | None = Field(default=None, description="Credit this amount of the line.")
    quantity: Quantity | None = Field(
        default=None, description="Credit this many units (amount: the line's amount pro rata, half-up)."
    )


class CreditNoteCreate(BaseModel):
    """``POST /admin/invoices/{id}/credit-notes``: credit a finalized invoice, whole (no ``lines``) or by
    line. The part already paid goes to customer credit unless the three amounts split it."""

    model_config = ConfigDict(extra="forbid")

    lines: list[CreditNoteLineIn] | None = Field(
        default=None,
        max_length=MAX_CREDIT_NOTE_LINES,
        description="Lines to credit; none: the whole invoice.",
    )
    credit_amount_minor: StrictInt | None = Field(
        default=None, description="Of the part already paid: given as a balance in the customer's favour."
    )
    refund_amount_minor: StrictInt | None = Field(
        default=None, description="Of the part already paid: refunded (to the payment it came from)."
    )
    out_of_band_amount_minor: StrictInt | None = Field(
        default=None, description="Of the part already paid: returned outside the system."
    )
    memo: Memo | None = Field(default=None, description="Shown on the credit note.")
    reason: AuditedReason = Field(description="Why the invoice is credited (audited).")
    ticket: TicketText | None = None


class InvoiceVoid(BaseModel):
    """``POST /admin/invoices/{id}/void``: void a finalized, unpaid invoice and issue its replacement."""

    model_config = ConfigDict(extra="forbid")

    regenerate: Literal["same_lines", "recompute"] = Field(
        default="same_lines",
        description="same_lines: the replacement has the same lines (and credits); recompute: its lines are "
        "rated again from the usage stored now (usage and opening invoices without credits applied).",
    )
    reason: AuditedReason = Field(description="Why the invoice is voided (audited).")
    ticket: TicketText | None = None
