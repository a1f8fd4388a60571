"""The payload (``data.object``) of each outgoing webhook event type, with an example for the OpenAPI
``webhooks`` section. :data:`PAYLOADS` is the registry: a type is sent once it is here (docs/webhooks.md).

Payloads are open (a later version may add fields); the fields listed are always present.

Example:
    >>> "invoice.paid" in PAYLOADS
    True
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from neruba.models.views import Minor, Phase, Timestamp

T0 = "2026-03-01T12:00:00Z"


def _open(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="allow", json_schema_extra={"examples": [example]})


CUSTOMER_EXAMPLE = {"external_id": "acme", "name": "Acme", "currency": "USD", "created_at": T0}


class CustomerData(BaseModel):
    model_config = _open({**CUSTOMER_EXAMPLE, "archived_at": None})
    external_id: str
    name: str
    currency: str
    created_at: Timestamp | None = None
    archived_at: Timestamp | None = None


class CustomerPreviousAttributes(BaseModel):
    """The values before the change of the customer's fields that changed (only those are present)."""

    model_config = _open({"archived_at": None})
    name: str | None = None
    email: str | None = None
    timezone: str | None = None
    stripe_customer_id: str | None = None
    metadata: dict[str, str] | None = None
    balance_low_threshold_minor: Minor | None = None
    invoice_threshold_minor: Minor | None = None
    archived_at: Timestamp | None = None


class CustomerUpdatedData(CustomerData):
    """The customer after the change, and ``previous_attributes``: the changed fields' values before."""

    model_config = _open(
        {**CUSTOMER_EXAMPLE, "archived_at": T0, "previous_attributes": {"archived_at": None}}
    )
    previous_attributes: CustomerPreviousAttributes


INVOICE_EXAMPLE = {
    "id": "in_0123456789abcdef",
    "customer_id": "acme",
    "subscription_id": "sub_0123456789abcdef0123",
    "currency": "USD",
    "period_start": "2026-02-01T00:00:00Z",
    "period_end": T0,
    "subtotal_minor": 12000,
    "discounts_minor": 0,
    "tax_minor": 0,
    "tax_included_minor": 0,
    "total_minor": 12000,
}


class InvoiceData(BaseModel):
    model_config = _open({**INVOICE_EXAMPLE, "status": "draft"})
    id: str
    customer_id: str
    currency: str
    status: str
    total_minor: Minor | None = None
    subtotal_minor: Minor | None = Field(default=None, description="The lines' sum, after discounts.")
    discounts_minor: Minor = Field(default=0, description="What the discount lines took off.")
    tax_minor: Minor = Field(default=0, description="Exclusive tax added on top of the subtotal.")
    tax_included_minor: Minor = Field(default=0, description="Tax contained in the lines (inclusive rates).")


class InvoiceFinalizedData(InvoiceData):
    model_config = _open({**INVOICE_EXAMPLE, "status": "finalized", "finalized_at": T0})
    status: Literal["finalized"]
    subtotal_minor: Minor
    total_minor: Minor
    finalized_at: Timestamp


class InvoicePaymentData(InvoiceData):
    """``amount_paid_minor`` / ``amount_remaining_minor`` after the payment; ``payment_id`` when known."""

    model_config = _open(
        {**INVOICE_EXAMPLE, "status": "paid", "amount_paid_minor": 12000, "amount_remaining_minor": 0}
    )


class InvoiceVoidedData(InvoiceData):
    """The voided invoice and the invoice issued in its place (``replaced_by``)."""

    model_config = _open({**INVOICE_EXAMPLE, "status": "void", "voided_at": T0, "replaced_by": "in_0fedcba9"})
    status: Literal["void"]
    voided_at: Timestamp
    replaced_by: str


class InvoicePreviousAttributes(BaseModel):
    """A draft's amounts before it was re-rated."""

    model_config = _open({"subtotal_minor": 11000, "total_minor": 11000})
    subtotal_minor: Minor
    total_minor: Minor


class InvoiceUpdatedData(InvoiceData):
    """The draft after its amounts changed; ``previous_attributes`` holds the amounts before."""

    model_config = _open(
        {
            **INVOICE_EXAMPLE,
            "status": "draft",
            "revised_at": T0,
            "previous_attributes": {"subtotal_minor": 11000, "total_minor": 11000},
        }
    )
    previous_attributes: InvoicePreviousAttributes


GRANT_EXAMPLE = {
    "id": "cg_0123456789abcdef01234567",
    "customer_id": "acme",
    "kind": "promotional",
    "amount_minor": 5000,
    "remaining_minor": 5000,
    "currency": "USD",
    "expires_at": None,
}


class CreditGrantData(BaseModel):
    model_config = _open(GRANT_EXAMPLE)
    id: str
    customer_id: str
    kind: str
    amount_minor: Minor
    remaining_minor: Minor
    currency: str
    expires_at: Timestamp | None = None


class CreditGrantClosedData(CreditGrantData):
    """``closed_minor``: the remainder removed (0 when nothing was left)."""

    model_config = _open({**GRANT_EXAMPLE, "remaining_minor": 0, "closed_minor": 1200, "status": "expired"})
    closed_minor: Minor
    status: str


class CreditGrantDepletedData(CreditGrantData):
    """The grant whose remainder reached 0 by being applied to ``invoice_id``."""

    model_config = _open({**GRANT_EXAMPLE, "remaining_minor": 0, "invoice_id": "in_0123456789abcdef"})
    invoice_id: str | None = None


class BalanceLowData(BaseModel):
    """The customer's usable credit fell below its ``balance_low_threshold_minor`` (once per crossing)."""

    model_config = _open(
        {
            "customer_id": "acme",
            "currency": "USD",
            "available_minor": 400,
            "previous_available_minor": 2400,
            "threshold_minor": 1000,
        }
    )
    customer_id: str
    currency: str
    available_minor: Minor
    previous_available_minor: Minor
    threshold_minor: Minor


class AlertTriggeredData(BaseModel):
    """A customer's usage of a meter in a limit period reached an alert level, a soft cap or a hard cap
    (once per level and period; docs/limits.md, "Usage caps and alerts"); its rated spend in the period
    reached a spend level (``spend``), or its usable credit fell under a balance level (``balance``, once
    per crossing; docs/limits.md, "Caps and alerts in amounts")."""

    model_config = _open(
        {
            "customer_id": "acme",
            "meter_code": "api_calls",
            "alert": "a:800",
            "kind": "usage",
            "threshold": "800",
            "usage": "803",
            "period_start": "2026-03-01T00:00:00Z",
            "period_end": "2026-04-01T00:00:00Z",
            "late": False,
        }
    )
    customer_id: str
    meter_code: str | None = Field(description="The meter (null for spend and balance alerts).")
    alert: str
    kind: Literal["usage", "soft_cap", "hard_cap", "hard_cap_amount", "spend", "balance"]
    threshold: str = Field(
        description="The level: in units of the meter, or in minor units (hard_cap_amount, spend, balance)."
    )
    usage: str | None = Field(description="The meter's usage in the period (null for spend and balance).")
    period_start: Timestamp | None = Field(description="The limit period (null for balance alerts).")
    period_end: Timestamp | None
    late: bool
    currency: str | None = Field(
        default=None, description="hard_cap_amount, spend and balance: the currency."
    )
    amount_minor: Minor | None = Field(
        default=None, description="hard_cap_amount: the meter's rated amount in the period after the write."
    )
    spend_minor: Minor | None = Field(default=None, description="spend: the period's rated spend to date.")
    balance_minor: Minor | None = Field(default=None, description="balance: the usable credit after.")
    previous_balance_minor: Minor | None = Field(default=None, description="balance: the credit before.")


SUBSCRIPTION_EXAMPLE = {
    "id": "sub_0123456789abcdef0123",
    "customer_id": "acme",
    "status": "active",
    "currency": "USD",
    "interval": "month",
    "start_at": T0,
    "trial_end": None,
    "cancel_at_period_end": False,
    "canceled_at": None,
    "ended_at": None,
    "phases": [{"plan_code": "pro", "plan_version": 1, "start_at": T0, "end_at": None}],
}


class SubscriptionData(BaseModel):
    model_config = _open(SUBSCRIPTION_EXAMPLE)
    id: str
    customer_id: str
    status: str
    start_at: Timestamp
    trial_end: Timestamp | None = None
    cancel_at_period_end: bool
    canceled_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    phases: list[Phase]


class SubscriptionPreviousAttributes(BaseModel):
    """The phases before a plan change."""

    model_config = _open({"phases": SUBSCRIPTION_EXAMPLE["phases"]})
    phases: list[Phase]


class SubscriptionUpdatedData(SubscriptionData):
    model_config = _open(
        {**SUBSCRIPTION_EXAMPLE, "previous_attributes": {"phases": SUBSCRIPTION_EXAMPLE["phases"]}}
    )
    previous_attributes: SubscriptionPreviousAttributes


class SubscriptionCanceledData(SubscriptionData):
    """``status`` is ``canceled`` for a cancellation now; ``active`` with ``cancel_at_period_end`` true
    for one at the period end (billing ends it then, with no second event)."""

    model_config = _open(
        {**SUBSCRIPTION_EXAMPLE, "status": "canceled", "canceled_at": T0, "ended_at": T0, "reason": None}
    )


class TrialWillEndData(SubscriptionData):
    model_config = _open({**SUBSCRIPTION_EXAMPLE, "trial_end": "2026-03-04T12:00:00Z"})
    trial_end: Timestamp


class BillingRunFailedData(BaseModel):
    """A subscription's billing run that failed (the message goes back to the queue and, after its last
    receive, to BillingDLQ)."""

    model_config = _open(
        {
            "subscription_id": "sub_0123456789abcdef0123",
            "customer_id": "acme",
            "run_key": "sub_0123456789abcdef0123:2026-03-01T00:00:00Z",
            "error": "RatingError: ...",
            "failed_at": T0,
        }
    )
    subscription_id: str
    error: str
    failed_at: Timestamp


class StripeSyncFailedData(BaseModel):
    model_config = _open(
        {"invoice_id": "in_0123456789abcdef", "attempt": 1, "error": "APIError: ...", "failed_at": T0}
    )
    invoice_id: str
    attempt: int
    error: str
    failed_at: Timestamp


class RefusedEventSample(BaseModel):
    """One refused event of a batch: whose, its key, and the code it was refused with."""

    model_config = _open({"customer_id": "acme", "transaction_id": "tx-1", "code": "meter_not_found"})
    customer_id: str
    transaction_id: str
    code: str


class IngestBatchFailedData(BaseModel):
    """One ingest batch's refused events, summarized: counts per code and up to 20 samples."""

    model_config = _open(
        {
            "batch_id": "b_0123456789abcdef",
            "received": 100,
            "accepted": 97,
            "failed": 3,
            "by_code": {"meter_not_found": 2, "customer_archived": 1},
            "samples": [{"customer_id": "acme", "transaction_id": "tx-1", "code": "meter_not_found"}],
        }
    )
    batch_id: str
    received: int
    accepted: int
    failed: int
    by_code: dict[str, int]
    samples: list[RefusedEventSample]


class DlqParkedData(BaseModel):
    """Messages that arrived in a dead-letter queue since the last check (the queue's depth rose)."""

    model_config = _open(
        {"queue": "BillingDLQ", "depth": 3, "previous_depth": 1, "arrived": 2, "checked_at": T0}
    )
    queue: str
    depth: int
    previous_depth: int
    arrived: int
    checked_at: Timestamp


class CreditNoteData(BaseModel):
    """A credit note issued against an invoice: its amount and where the money went."""

    model_config = _open(
        {
            "id": "cn_0123456789abcdef01234567",
            "number": "CN-000001",
            "invoice_id": "in_0123456789abcdef01234567",
            "invoice_number": "INV-000001",
            "customer_id": "acme",
            "currency": "USD",
            "amount_minor": 2500,
            "subtotal_minor": 2500,
            "tax_minor": 0,
            "tax_included_minor": 0,
            "pre_payment_amount_minor": 0,
            "credit_amount_minor": 2500,
            "refund_amount_minor": 0,
            "out_of_band_amount_minor": 0,
            "reason": "overbilled",
            "created_at": T0,
        }
    )
    id: str
    number: str
    invoice_id: str
    invoice_number: str | None
    customer_id: str
    currency: str
    amount_minor: Minor
    subtotal_minor: Minor | None = Field(
        default=None, description="Absent on events before taxes: amount_minor."
    )
    tax_minor: Minor = 0
    tax_included_minor: Minor = 0
    pre_payment_amount_minor: Minor
    credit_amount_minor: Minor
    refund_amount_minor: Minor
    out_of_band_amount_minor: Minor
    reason: str
    created_at: Timestamp


PAYLOADS: dict[str, tuple[type[BaseModel], str]] = {
    "customer.created": (CustomerData, "A customer was created."),
    "customer.updated": (CustomerUpdatedData, "A customer's fields changed, or it was archived."),
    "invoice.created": (InvoiceData, "A draft invoice was created for a billing window."),
    "invoice.finalized": (InvoiceFinalizedData, "A draft was numbered and finalized."),
    "invoice.paid": (InvoicePaymentData, "A payment settled the invoice in full."),
    "invoice.payment_failed": (InvoicePaymentData, "A payment attempt on the invoice failed."),
    "invoice.updated": (InvoiceUpdatedData, "A draft was re-rated (late usage, a recompute)."),
    "invoice.voided": (InvoiceVoidedData, "An unpaid invoice was voided and a replacement issued."),
    "credit_note.created": (CreditNoteData, "A credit note was issued against a finalized invoice."),
    "credit_grant.created": (CreditGrantData, "Credit was granted (purchased, promotional, top-up)."),
    "credit_grant.expired": (CreditGrantClosedData, "A grant reached its expires_at; its remainder closed."),
    "credit_grant.voided": (CreditGrantClosedData, "An operator voided a grant's remainder."),
    "credit_grant.depleted": (CreditGrantDepletedData, "A grant's remainder was used up by an invoice."),
    "balance.low": (BalanceLowData, "Usable credit fell below the customer's threshold."),
    "alert.triggered": (AlertTriggeredData, "A meter's usage in the period reached an alert level or cap."),
    "subscription.created": (SubscriptionData, "A customer was subscribed to a plan."),
    "subscription.updated": (SubscriptionUpdatedData, "A subscription changed plan."),
    "subscription.canceled": (
        SubscriptionCanceledData,
        "A subscription was canceled (now or at period end).",
    ),
    "subscription.trial_will_end": (TrialWillEndData, "A trial ends within 3 days (once per subscription)."),
    "billing_run.failed": (BillingRunFailedData, "A subscription's billing run failed."),
    "stripe_sync.failed": (StripeSyncFailedData, "Pushing an invoice to Stripe failed (it is retried)."),
    "ingest.batch_failed": (IngestBatchFailedData, "Events of an ingest batch were refused."),
    "dlq.message_parked": (DlqParkedData, "Messages arrived in a dead-letter queue."),
}
