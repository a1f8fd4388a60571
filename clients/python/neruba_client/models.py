"""Typed answers of the API, written after the components of docs/openapi.json (same names, same
fields). ``tests/client/test_models_match_openapi.py`` checks every model here against the document:
a field added, removed or retyped on either side fails the suite.

Conventions: times are ``datetime`` (RFC 3339, UTC), exact decimals sent as text are ``Decimal``,
money is an integer of minor units (``*_minor``). Unknown fields are kept (``extra="allow"``), so an
answer that gained a field still parses with an older client.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


Scalar = str | bool | int | Decimal | None  # a JSON scalar (metadata values, sweep details)
Quantity = Decimal | int  # an exact quantity: a decimal sent as text, or an integer


# --- the error shape -------------------------------------------------------------------------------


class ErrorDetail(_Model):
    code: str | None = None
    message: str | None = None
    param: str | None = None


class ErrorObject(_Model):
    type: Literal[
        "invalid_request_error", "authentication_error", "permission_error", "api_error", "idempotency_error"
    ]
    code: str
    message: str
    param: str | None = None
    details: list[ErrorDetail] | None = None
    request_id: str | None


class ErrorResponse(_Model):
    error: ErrorObject


# --- health ----------------------------------------------------------------------------------------


class Health(_Model):
    status: Literal["ok"]
    version: str


class ReadyCheck(_Model):
    name: str
    ok: bool
    detail: str | None = None


class Ready(_Model):
    status: Literal["ready"]
    checks: list[ReadyCheck]


# --- events and usage ------------------------------------------------------------------------------

PropertyValue = bool | int | Decimal | str


class Event(_Model):
    """One usage event as sent to ``POST /v1/events`` (an item of ``IngestRequest.events``)."""

    transaction_id: str = Field(min_length=1, max_length=256)
    customer_id: str
    code: str
    timestamp: datetime | None = None
    properties: dict[str, PropertyValue] = Field(default_factory=dict)


class IngestRequest(_Model):
    events: list[Event] = Field(min_length=1, max_length=100)


class EventError(_Model):
    code: str
    message: str
    param: str | None = None


class EventStatus(_Model):
    index: int
    transaction_id: str | None
    status: Literal["queued", "rejected"]
    error: EventError | None = None


class IngestResponse(_Model):
    request_id: str | None
    queued: int
    rejected: int
    events: list[EventStatus]


class ConflictingCopy(_Model):
    code: str
    timestamp: datetime | None = None
    properties: dict[str, PropertyValue] = Field(default_factory=dict)


class EventOutcome(_Model):
    """One copy received under an event's key and what became of it."""

    outcome: Literal["accepted", "duplicate", "conflict", "replay", "failed", "over_limit"]
    request_id: str | None
    copy_id: str | None
    at: datetime | None
    payload: ConflictingCopy | None = None
    reason: str | None = None


class EventVoid(_Model):
    """How and why an event was voided."""

    kind: Literal["void", "amend"]
    reason: str
    ticket: str | None
    at: datetime
    actor: str | None
    amended_by: str | None


class EventRestore(_Model):
    """How an event a replace backfill voided was given back by that backfill's revert."""

    backfill: str
    reason: str
    ticket: str | None
    at: datetime
    actor: str | None
    void: EventVoid


class StoredEvent(_Model):
    object: Literal["event"]
    transaction_id: str
    customer_id: str
    code: str
    timestamp: datetime
    properties: dict[str, PropertyValue]
    status: str
    reason: str | None
    reason_message: str | None
    late: bool
    received_at: datetime | None
    outcomes: list[EventOutcome]
    copies: dict[str, int]
    void: EventVoid | None = None
    amends: str | None = None
    restored: EventRestore | None = None


class EventVoidResult(StoredEvent):
    """A voided (or amended) event, with its corrected copy and whether the correction is finished."""

    correction: Literal["completed", "pending"]
    amended_by: StoredEvent | None = None


class OutcomeBucket(_Model):
    start: datetime  # the bucket's first instant (a minute or an hour), UTC
    accepted: int
    duplicate: int
    conflict: int
    replay: int
    failed: int
    over_limit: int = 0


class OutcomeCounts(_Model):
    object: Literal["list"]
    granularity: Literal["minute", "hour"]
    data: list[OutcomeBucket]
    totals: dict[str, int]


class UsageBucket(_Model):
    # the bucket's first instant (its hour, day or billing period), UTC; at period granularity the text
    # "total" (no subscription) or "before_subscription"
    bucket: datetime | str = Field(union_mode="left_to_right")
    quantity: Decimal
    events: int
    group: dict[str, str] | None = None


class Usage(_Model):
    object: Literal["usage"]
    customer_id: str
    meter: str
    aggregation: str
    granularity: Literal["hour", "day", "period"]
    from_: datetime = Field(alias="from")
    to: datetime
    total: Decimal
    data: list[UsageBucket]


# --- catalog ---------------------------------------------------------------------------------------


class FiredAlert(_Model):
    """A level that fired in the current limit period: an alert level (``usage``), a cap, or a spend
    level (``spend``; it and the amount cap, ``hard_cap_amount``, in minor units of ``currency``)."""

    alert: str
    kind: Literal["usage", "soft_cap", "hard_cap", "hard_cap_amount", "spend"]
    meter_code: str | None
    threshold: str | None
    threshold_minor: int | None
    currency: str | None
    period_start: datetime
    period_end: datetime


class MeterLimitView(_Model):
    meter_code: str
    hard_cap: str | None
    soft_cap: str | None
    alerts: list[str]
    usage: str
    remaining: str | None
    alerts_fired: list[FiredAlert]
    hard_cap_amount_minor: int | None = None
    amount_minor: int | None = None


class UsageLimits(_Model):
    object: Literal["usage_limits"]
    customer_id: str
    period_anchor: str
    interval: Literal["day", "week", "month", "quarter", "year"]
    period_start: datetime
    period_end: datetime
    meters: list[MeterLimitView]
    spend_alerts_minor: list[int] = []
    spend_minor: int | None = None
    spend_alerts_fired: list[FiredAlert] = []
    balance_alerts_minor: list[int] = []


class Entitlement(_Model):
    object: Literal["entitlement"]
    customer_id: str
    feature: str
    kind: Literal["boolean", "static", "metered"]
    access: bool
    value: str | None
    meter_code: str | None
    usage: str | None
    limit: str | None
    granted: str | None = None
    """metered: what grants in force add to the feature's own limit (included in ``limit``)."""
    remaining: str | None
    resets_at: datetime | None


class EntitlementList(_Model):
    object: Literal["list"]
    data: list[Entitlement]


class EntitlementGrant(_Model):
    object: Literal["entitlement_grant"]
    id: str
    customer_id: str
    feature: str
    amount: str
    starts_at: datetime
    expires_at: datetime
    reason: str
    ticket: str | None
    entitlement: Entitlement


class CustomerView(_Model):
    external_id: str
    name: str
    currency: str
    email: str | None
    timezone: str
    metadata: dict[str, str]
    stripe_customer_id: str | None
    balance_low_threshold_minor: int | None = None
    invoice_threshold_minor: int | None = None
    created_at: datetime | None
    archived_at: datetime | None = None


class MeterView(_Model):
    code: str
    name: str
    aggregation: Literal["count", "sum", "max", "min", "average", "unique_count", "latest", "weighted_sum"]
    field: str | None
    filters: dict[str, str]
    group_by: list[str]
    allow_negative: bool
    carry_over: bool = False
    created_at: datetime | None


class TierView(_Model):
    """One tier of a charge; ``up_to`` is None on the last tier."""

    unit_price: Decimal | None = None
    up_to: Decimal | None = None
    rate: Decimal | None = None
    flat_fee: Decimal | None = None


class _PriceFields(_Model):
    """The price fields of a charge or of one of its filters (prices are exact decimals)."""

    unit_price: Decimal | None = None
    tiers: list[TierView] = Field(default_factory=list)
    package_size: int | None = None
    package_price: Decimal | None = None
    free_units: Decimal | None = None
    rate: Decimal | None = None
    fixed_fee: Decimal | None = None
    free_events: int | None = None
    per_event_min: Decimal | None = None
    per_event_max: Decimal | None = None
    multiplier: Decimal | None = None
    zero_usage_flat_fee: bool | None = None


class ChargeFilterView(_PriceFields):
    """A price for the groups whose values match: each named property has one of the listed values."""

    values: dict[str, list[str]]


class PricingUnitView(_Model):
    """The unit a charge's prices are in and the plan currency's worth of one unit."""

    code: str
    conversion_rate: Decimal


class ChargeView(_PriceFields):
    """How one meter's usage is priced in a plan version: its own price, or a filter's for the groups
    the filter matches."""

    meter_code: str
    model: Literal[
        "per_unit", "graduated", "volume", "package", "percentage", "graduated_percentage", "dynamic"
    ]
    filters: list[ChargeFilterView] = Field(default_factory=list)
    pricing_unit: PricingUnitView | None = None
    pay_in_advance: bool | None = None
    advance_invoicing: Literal["invoice_now", "next_invoice"] | None = None
    prorate: bool | None = None
    on_removal: Literal["none", "credit", "refund"] | None = None


class MeterDefaultView(_Model):
    meter_code: str
    hard_cap: str | None = None
    soft_cap: str | None = None
    alerts: list[str] = Field(default_factory=list)
    hard_cap_amount_minor: int | None = None


class FeatureDefaultView(_Model):
    feature: str
    kind: str
    enabled: bool = True
    value: str | None = None
    meter_code: str | None = None
    limit: str | None = None


class PlanDefaultsView(_Model):
    meters: list[MeterDefaultView] = Field(default_factory=list)
    features: list[FeatureDefaultView] = Field(default_factory=list)
    invoice_threshold_minor: int | None = None


class PlanVersion(_Model):
    code: str
    version: int
    name: str
    currency: str
    interval: str
    charges: list[ChargeView]
    defaults: PlanDefaultsView | None = None
    """What the version sets for its subscribers (limits, features, invoice threshold), when it does."""


class Plan(PlanVersion):
    versions: list[int] | None = None


class Phase(_Model):
    """One stretch of a subscription on one plan version; ``end_at`` is None while it runs on."""

    plan_code: str
    plan_version: int
    start_at: datetime
    end_at: datetime | None = None
    created_at: datetime | None = None


class Subscription(_Model):
    id: str
    customer_id: str
    currency: str
    interval: str
    status: str
    start_at: datetime
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    ended_at: datetime | None
    phases: list[Phase]


# --- invoices, balances, ledger --------------------------------------------------------------------


class LineTier(_Model):
    tier: int | None = None
    unit: str | None = None
    up_to: Decimal | None = None
    quantity: Quantity | None = None
    unit_price: Decimal | None = None
    flat_fee: Decimal | None = None
    amount: Decimal | None = None


class LineFigures(_Model):
    quantity: Quantity | None = None
    amount_minor: int | None = None
    hours: int | None = None
    events: int | None = None
    net_minor: int | None = None  # an adjustment's: after the corrected invoice's discounts
    unbillable: str | None = None


class ThresholdInvoiceRef(_Model):
    """One threshold invoice of a period, as named by a line computed from it."""

    invoice_id: str
    number: str | None = None
    n: int
    cut_at: datetime
    amount_minor: int
    posting_key: str | None = None


class ThresholdLine(_Model):
    """What threshold invoicing computed a line from (a threshold invoice's line or a deduction)."""

    cut_at: datetime | None = None
    rated_to_cut: LineFigures | None = None
    billed_before: LineFigures | None = None
    billed: LineFigures | None = None
    invoices: list[ThresholdInvoiceRef] | None = None


class InvoiceThreshold(_Model):
    """Why a threshold invoice was issued: the threshold, its place in the period and its cut."""

    threshold_minor: int
    number_in_period: int
    cut_at: datetime
    period_start: datetime
    period_end: datetime
    billed_before_minor: int
    rated_to_cut_minor: int


class LevelInterval(_Model):
    """One interval behind a time-weighted line (a weighted_sum meter)."""

    from_: datetime = Field(alias="from")
    to: datetime
    level: Quantity
    change: Quantity | None
    seconds: Quantity
    unit_seconds: Quantity
    fraction: Quantity
    quantity: Quantity


class IntervalsMore(_Model):
    """The intervals of a weighted_sum line after the first 48 it lists: how many and what they add up to."""

    rows: int
    from_: datetime = Field(alias="from")
    to: datetime
    seconds: Quantity
    unit_seconds: Quantity
    fraction: Quantity
    quantity: Quantity


class LineSource(_Model):
    aggregation: str | None = None
    hours: int | None = None
    events: int | None = None
    billable_quantity: Decimal | None = None
    free_units: Decimal | None = None
    amount: Decimal | None = None
    billed: LineFigures | None = None
    rerated: LineFigures | None = None
    top_up_request_id: str | None = None
    grant_id: str | None = None
    available_minor: int | None = None
    threshold_minor: int | None = None
    intervals: list[LevelInterval] | None = None  # a weighted_sum line: the level intervals behind it
    intervals_more: IntervalsMore | None = None  # the intervals after the first 48, summed
    threshold: ThresholdLine | None = None


class LineReference(_Model):
    invoice_id: str | None = None
    line_id: str | None = None
    number: str | None = None
    top_up_request_id: str | None = None
    grant_id: str | None = None
    threshold_invoices: list[str] | None = None


class LineTaxRate(_Model):
    tax_rate_id: str
    percentage: Decimal
    inclusive: bool
    taxable_minor: int
    amount_minor: int
    exact_minor: Decimal


class LineTax(_Model):
    amount_after_discounts_minor: int
    net_minor: int
    inclusive_minor: int
    exclusive_minor: int
    rates: list[LineTaxRate]


class InvoiceLine(_Model):
    line_id: str
    kind: str
    description: str | None = None
    meter_code: str | None = None
    group: dict[str, str] = Field(default_factory=dict)
    quantity: Quantity | None = None
    unit_price: Decimal | None = None
    tiers: list[LineTier] = Field(default_factory=list)
    amount_minor: int
    period_start: datetime | None = None
    period_end: datetime | None = None
    plan_code: str | None = None
    plan_version: int | None = None
    source: LineSource | None = None
    references: LineReference | None = None
    pending: bool | None = None
    tax: LineTax | None = None
    gross_minor: int | None = None  # an adjustment: the difference before the corrected invoice's discounts
    corrected_terms: bool | None = None  # priced by the invoice it corrects (its discounts and rates)


class LineAggregate(_Model):
    aggregation: str | None
    quantity: Quantity | None


class LinePrice(_Model):
    plan_code: str | None
    plan_version: int | None
    unit_price: Decimal | None
    tiers: list[LineTier]


class CreditApplied(_Model):
    grant_id: str
    amount_minor: int


class OneOffLineSource(_Model):
    one_off_charge_id: str
    reason: str | None
    ticket: str | None
    metadata: dict[str, str]
    created_at: datetime | None


class AdvanceLineSource(_Model):
    """The event behind an ``advance`` line: the position it moved, the proration, the posting."""

    advance_id: str
    transaction_id: str
    event_timestamp: str
    meter_code: str
    subscription_id: str
    delta: Decimal
    level_before: Decimal
    level_after: Decimal
    paid_before: Decimal
    paid_after: Decimal
    full_amount: Decimal
    fraction: Decimal
    amount: Decimal
    invoicing: str
    on_removal: str
    billed_in: str | None
    posting_key: str | None


class BackfillLineSource(_Model):
    backfill_id: str
    reason: str | None
    ticket: str | None


class BackfillLinePart(_Model):
    backfill_id: str
    reason: str | None
    ticket: str | None
    revert: bool = False
    amount_minor: int


class VoidedEventRef(_Model):
    transaction_id: str
    timestamp: datetime
    kind: str
    reason: str
    ticket: str | None
    at: datetime
    amended_by: str | None


class GrantRestoration(_Model):
    """Credit a correction gave back to a grant that paid the usage it takes back."""

    invoice_id: str
    invoice_number: str | None = None
    line_id: str
    adjustment_line_id: str
    grant_id: str
    kind: Literal["purchased", "promotional"]
    amount_minor: int
    tax_minor: int = 0
    tax_included_minor: int = 0
    closed: Literal["expired", "voided"] | None = None
    posting_id: str | None = None


class RestorationSource(_Model):
    """The write that gave credit back to a grant: ``invoice`` (read ``invoice_id``),
    ``invoice_revision`` (a draft's revision) or ``correction`` (a correction after the end the grants
    took whole: no invoice, ``invoice_id`` None)."""

    type: Literal["invoice", "invoice_revision", "correction"]
    id: str
    invoice_id: str | None
    revision: int | None = None


class LineGrantRestoration(_Model):
    """Credit a correction gave back of one line to a grant that paid it."""

    grant_id: str
    amount_minor: int
    source_id: str
    source: RestorationSource
    posting_id: str
    at: datetime


class ExplainedLine(_Model):
    line_id: str
    kind: str | None
    description: str | None
    meter_code: str | None
    group: dict[str, str]
    aggregate: LineAggregate
    hours: int | None
    events: int | None
    price: LinePrice
    amount_minor: int | None
    credits_applied: list[CreditApplied]
    credits_applied_minor: int
    grant_restorations: list[LineGrantRestoration] = []
    references: LineReference | None
    one_off: OneOffLineSource | None = None
    intervals: list[LevelInterval] | None = None
    intervals_more: IntervalsMore | None = None
    advance: AdvanceLineSource | None = None
    threshold: ThresholdLine | None = None
    backfill: BackfillLineSource | None = None
    backfills: list[BackfillLinePart] | None = None
    other_minor: int | None = None
    voided_events: list[VoidedEventRef] | None = None
    credited: LineCredited | None = None
    credit_notes: list[LineCreditNote] = []
    postings: list[str] = []


class LineCredited(_Model):
    amount_minor: int
    quantity: str | None
    tax: dict[str, int] | None = None


class SettledAdjustment(_Model):
    """An adjustment a correction's credit note settled, with the voids, amends and backfill behind it."""

    key: str
    line_id: str | None
    description: str | None
    corrects: LineReference
    quantity: Quantity | None
    amount_minor: int
    settled_minor: int | None
    created_at: datetime | None
    backfill: BackfillLineSource | None
    voided_events: list[VoidedEventRef]


class LineCorrection(_Model):
    corrects: LineReference
    adjustments: list[SettledAdjustment]


class LineCreditNote(_Model):
    """A credit note's part of one invoice line, with the correction it settled (None: an operator's)."""

    credit_note_id: str
    number: str
    amount_minor: int
    quantity: str | None
    tax_minor: int
    reason: str | None
    created_at: datetime | None
    posting_id: str | None
    correction: LineCorrection | None


class ExplainedPosting(_Model):
    posting_id: str
    idempotency_key: str
    reason: str
    at: datetime
    entries: list[PostingEntryView]


class UpcomingCreditNote(_Model):
    """A credit note the window's invoice will issue for negative adjustments taking it below zero."""

    invoice_id: str
    invoice_number: str | None
    amount_minor: int
    subtotal_minor: int
    tax_minor: int
    adjustments: list[CreditNoteAdjustment]


class UpcomingWindow(_Model):
    object: Literal["upcoming_window"]
    kind: str | None = None
    subscription_id: str
    customer_id: str
    currency: str
    period_start: datetime
    period_end: datetime
    as_of: datetime | None = None
    lines: list[InvoiceLine]
    subtotal_minor: int
    credits_applied: bool
    pending_adjustments_minor: int
    threshold_invoiced_minor: int = 0
    credit_notes_to_issue: list[UpcomingCreditNote] = []
    grant_restorations: list[GrantRestoration] = []
    trial_end: datetime | None = None
    in_trial: bool | None = None
    trial_until: datetime | None = None
    tax_status: Literal["computed", "computed_by_stripe_at_finalization"] | None = None
    tax_provider: Literal["stripe_tax"] | None = None
    tax_location: InvoiceTaxLocation | None = None
    tax_minor: int | None = None
    tax_included_minor: int | None = None


class CorrectionCreditNote(_Model):
    id: str
    number: str
    invoice_id: str
    amount_minor: int


class CorrectionWait(_Model):
    line_id: str
    invoice_id: str
    reason: Literal["dispute_open"]


class RerunCorrection(_Model):
    type: Literal["adjustment", "correction_invoice", "credit_note", "grant_restoration"]
    invoice_id: str | None = None
    correction_id: str | None = None
    applies_to: str
    lines: list[InvoiceLine]
    amount_minor: int
    credit_notes: list[CorrectionCreditNote] = []
    grant_restorations: list[GrantRestoration] = []
    waiting: list[CorrectionWait] = []


class Invoice(_Model):
    object: Literal["invoice"]
    id: str
    number: str | None
    customer_id: str
    currency: str
    status: str
    period_start: datetime | None
    period_end: datetime | None
    lines: list[InvoiceLine]
    subtotal_minor: int
    discounts_minor: int = 0
    tax_minor: int = 0
    tax_included_minor: int = 0
    credits_applied_minor: int
    total_minor: int
    billing_reason: str = "manual"
    threshold: InvoiceThreshold | None = None
    tax_provider: Literal["stripe_tax"] | None = None
    tax_location: InvoiceTaxLocation | None = None
    stripe_tax: InvoiceStripeTax | None = None
    unbillable_lines: list[UnbillableLine] | None = None
    grant_restorations: list[GrantRestoration] = []


class UnbillableLine(_Model):
    line_id: str
    unbillable: str


class InvoiceTaxLocation(_Model):
    country: str
    state: str | None = None


class InvoiceStripeTax(_Model):
    exclusive_minor: int
    inclusive_minor: int
    stripe_invoice_id: str
    event_id: str
    recorded_at: datetime


class InvoiceExplanation(_Model):
    object: Literal["invoice_explanation"]
    invoice_id: str
    number: str | None
    status: str | None
    period_start: datetime | None
    period_end: datetime | None
    lines: list[ExplainedLine]
    subtotal_minor: int | None
    discounts_minor: int = 0
    tax_minor: int = 0
    tax_included_minor: int = 0
    credits_applied_minor: int | None
    total_minor: int | None
    corrects: LineReference | None = None
    billing_reason: str | None = None
    threshold: InvoiceThreshold | None = None
    postings: list[ExplainedPosting] = []
    grant_restorations: list[GrantRestoration] = []


class UpcomingInvoice(_Model):
    object: Literal["upcoming_invoice"]
    customer_id: str
    as_of: datetime
    credits_applied: bool
    note: str
    windows: list[UpcomingWindow]


class RerunDifference(_Model):
    """The money a rerun changes, after the invoice's discounts, before credits."""

    subtotal_minor: int
    tax_minor: int
    total_minor: int


class InvoiceRerun(_Model):
    object: Literal["invoice_rerun"]
    invoice_id: str
    action: Literal["draft_recomputed", "unchanged", "correction_invoiced", "adjustment_pending"]
    invoice: Invoice
    correction: RerunCorrection | None
    difference: RerunDifference | None = None


class Balance(_Model):
    object: Literal["balance"]
    customer_id: str
    currency: str
    accounts: dict[str, int]
    amount_due_minor: int
    paid_to_date_minor: int
    credit_available_minor: int
    credit_available_by_grant: dict[str, int]
    credit_expired_unposted_minor: int


class LedgerEntry(_Model):
    account: str
    debit_minor: int | None = None
    credit_minor: int | None = None
    grant_id: str | None = None


class Posting(_Model):
    object: Literal["ledger_posting"]
    id: str
    customer_id: str
    currency: str
    at: datetime
    effective_at: datetime
    reason: str
    source: str | None
    source_id: str | None
    actor: str | None
    idempotency_key: str
    metadata: dict[str, Scalar]
    entries: list[LedgerEntry]
    total_minor: int


class BalanceSummary(_Model):
    """A balance in one currency, as the ledger's accounts add up (after an adjustment)."""

    amount_due_minor: int
    credit_available_minor: int
    credit_available_by_grant: dict[str, int]
    paid_to_date_minor: int
    accounts: dict[str, int]


class BalanceAdjusted(Posting):
    balance: BalanceSummary


class CreditGrant(_Model):
    object: Literal["credit_grant"]
    id: str
    customer_id: str
    currency: str
    kind: str
    status: str
    amount_minor: int
    remaining_minor: int
    priority: int
    meter_codes: list[str] | None
    effective_at: datetime
    expires_at: datetime | None
    created_at: datetime | None
    posting_id: str | None = None


class AutoTopUp(_Model):
    object: Literal["auto_top_up"]
    customer_id: str
    currency: str


class Refund(_Model):
    object: Literal["refund"]
    id: str
    customer_id: str
    currency: str
    amount_minor: int
    invoice_id: str | None
    payment_id: str | None
    credit_balance: bool = False
    posting_id: str
    created_at: datetime


class Dispute(_Model):
    object: Literal["dispute"]
    id: str
    customer_id: str
    currency: str
    amount_minor: int
    status: str
    posting_id: str | None = None


class OneOffCharge(_Model):
    object: Literal["one_off_charge"]
    id: str
    customer_id: str
    description: str
    amount_minor: int
    quantity: str | None
    unit_price: str | None
    currency: str
    mode: Literal["invoice_now", "next_invoice"]
    metadata: dict[str, str]
    reason: str
    ticket: str | None
    status: Literal["pending", "invoiced", "void"]
    invoice_id: str | None
    created_at: datetime
    voided_at: datetime | None


BackfillStatus = Literal["open", "committing", "committed", "reverting", "reverted", "cancelled"]


class BackfillCorrection(_Model):
    invoice_id: str
    action: Literal[
        "draft_recomputed", "adjustment_pending", "adjustment_applied", "correction_invoiced", "unchanged"
    ]
    amount_minor: int  # after the invoice's discounts, before tax
    tax_minor: int = 0
    total_minor: int = 0
    correction_invoice_id: str | None  # null when credit notes settled all of it
    # the credit notes that settled it, in the order issued
    credit_note_ids: list[str] = Field(default_factory=list)


class BackfillUnbilled(_Model):
    customer_id: str
    reason: Literal["no_subscription"]
    events: int
    first_timestamp: str
    last_timestamp: str


class BackfillHeldId(_Model):
    customer_id: str
    transaction_id: str


class BackfillCommitted(_Model):
    events_counted: int
    events_not_counted: int
    events_conflicting: int = 0
    conflicting: list[BackfillHeldId] = []
    events_replaced: int = 0
    events_superseded: int = 0
    events_unbilled: int = 0
    unbilled: list[BackfillUnbilled] = []
    invoices: list[BackfillCorrection]


class BackfillRevertRequest(_Model):
    reason: str
    ticket: str | None
    by: str
    at: datetime


class BackfillReverted(_Model):
    events_voided: int
    events_already_voided: int = 0
    events_restored: int = 0
    invoices: list[BackfillCorrection]


class BackfillView(_Model):
    id: str
    object: Literal["backfill"]
    status: BackfillStatus
    customer_ids: list[str]
    meter_codes: list[str]
    start: str
    end: str
    mode: Literal["add", "replace"]
    reason: str
    ticket: str | None
    created_at: datetime
    events_held: int
    committed: BackfillCommitted | None = None
    committed_at: datetime | None = None
    cancelled_at: datetime | None = None
    revert: BackfillRevertRequest | None = None
    reverted: BackfillReverted | None = None
    reverted_at: datetime | None = None


class BackfillEventStatus(_Model):
    index: int
    transaction_id: str | None
    status: Literal["held", "duplicate", "conflict", "rejected"]
    error: EventError | None = None


class BackfillEventsResult(_Model):
    backfill_id: str
    held: int
    duplicate: int
    conflict: int
    rejected: int
    events: list[BackfillEventStatus]


class BackfillInvoicePreview(_Model):
    invoice_id: str
    number: str | None
    status: str
    customer_id: str
    subscription_id: str | None
    period_start: datetime
    period_end: datetime
    before_minor: int  # after discounts, with exclusive tax, before credits
    after_minor: int
    difference_minor: int
    subtotal_before_minor: int
    subtotal_after_minor: int
    subtotal_difference_minor: int
    tax_difference_minor: int
    applied_as: Literal["draft_recomputed", "adjustment_pending", "correction_invoiced"]
    withheld: list[WithheldLine] = []


class WithheldLine(_Model):
    invoice_id: str
    number: str | None
    line_id: str
    unbillable: str | None
    quantity: str
    amount_minor: int


class BackfillOpenPeriod(_Model):
    customer_id: str
    subscription_id: str | None
    period_start: datetime
    period_end: datetime
    before_minor: int
    after_minor: int
    difference_minor: int
    subtotal_before_minor: int
    subtotal_after_minor: int
    subtotal_difference_minor: int
    tax_difference_minor: int
    unbillable_lines: list[UnbillableLine] = []


class BackfillPreview(_Model):
    object: Literal["backfill_preview"]
    backfill_id: str
    events_held: int
    events_counted: int
    events_conflicting: int = 0
    conflicting: list[BackfillHeldId] = []
    events_replaced: int = 0
    events_superseded: int = 0
    events_unbilled: int = 0
    unbilled: list[BackfillUnbilled] = []
    invoices: list[BackfillInvoicePreview]
    open_periods: list[BackfillOpenPeriod]
    difference_minor: int


class CreditedInvoiceLine(_Model):
    kind: str | None
    quantity: str | None
    amount_minor: int


class CreditedTaxRate(_Model):
    tax_rate_id: str
    percentage: str
    inclusive: bool
    amount_minor: int


class CreditedLineTax(_Model):
    exclusive_minor: int
    inclusive_minor: int
    rates: list[CreditedTaxRate]


class CreditNoteLine(_Model):
    line_id: str
    amount_minor: int
    quantity: str | None
    description: str | None
    invoice_line: CreditedInvoiceLine
    tax: CreditedLineTax | None = None


class CreditNoteStripe(_Model):
    credit_note_id: str | None
    status: str
    tax_minor: int | None = None
    amount_minor: int | None = None
    last_error: str | None = None


class CreditNote(_Model):
    object: Literal["credit_note"]
    id: str
    number: str
    status: str
    invoice_id: str
    invoice_number: str | None
    customer_id: str
    currency: str
    amount_minor: int
    subtotal_minor: int | None = None  # None on notes issued before taxes: amount_minor
    tax_minor: int = 0
    tax_included_minor: int = 0
    pre_payment_amount_minor: int
    credit_amount_minor: int
    refund_amount_minor: int
    out_of_band_amount_minor: int
    lines: list[CreditNoteLine]
    reason: str
    ticket: str | None
    memo: str | None
    posting_id: str
    created_at: datetime
    stripe: CreditNoteStripe | None = None
    correction: CreditNoteCorrection | None = None


class CreditNoteAdjustment(_Model):
    key: str
    corrects: LineReference
    amount_minor: int


class CreditNoteCorrection(_Model):
    adjustments: list[CreditNoteAdjustment]


class ExplainedCreditNoteLine(CreditNoteLine):
    original: InvoiceLine | None


class PostingEntryView(_Model):
    account: str
    debit_minor: int
    credit_minor: int
    grant_id: str | None = None


class CreditNotePosting(_Model):
    posting_id: str
    entries: list[PostingEntryView]


class CreditNoteExplanation(_Model):
    object: Literal["credit_note_explanation"]
    credit_note_id: str
    number: str
    invoice_id: str
    invoice_number: str | None
    amount_minor: int
    lines: list[ExplainedCreditNoteLine]
    posting: CreditNotePosting
    settles: list[SettledAdjustment] = []


class InvoiceVoidResult(_Model):
    object: Literal["invoice_void"]
    invoice: Invoice
    replacement: Invoice


class HourRange(_Model):
    start: str
    end: str
    hours: int


class CompletenessAtFinalization(_Model):
    complete: list[HourRange]
    open: list[HourRange]
    complete_hours: int
    open_hours: int


class LateEventCarrier(_Model):
    invoice_id: str
    number: str | None
    kind: str | None
    credit_note_id: str | None = None


class LateEventSettlement(LateEventCarrier):
    settled_minor: int


class LateDifference(_Model):
    line_id: str
    quantity: str | None
    amount_minor: int
    status: Literal["pending", "applied"]
    recorded_at: datetime | None
    applied_to: LateEventCarrier | None
    settled_by: list[LateEventSettlement]


class InvoiceCompleteness(_Model):
    object: Literal["invoice_completeness"]
    invoice_id: str
    number: str | None
    status: str
    kind: str | None
    rated_usage: bool
    period_start: datetime
    period_end: datetime
    finalized_at: datetime | None
    late_event_horizon_hours: int
    at_finalization: CompletenessAtFinalization
    closes_at: datetime | None
    closed_now: bool
    late_events: list[LateDifference]
    late_amount_minor: int


class Coupon(_Model):
    object: Literal["coupon"]
    id: str
    name: str
    percent_off: Decimal | None
    amount_off_minor: int | None
    currency: str | None
    duration: Literal["once", "repeating", "forever"]
    duration_periods: int | None
    status: Literal["active", "archived"]
    created_at: datetime
    archived_at: datetime | None = None


class Discount(_Model):
    object: Literal["discount"]
    id: str
    coupon_id: str
    coupon: Coupon
    target: Literal["customer", "subscription", "plan"]
    customer_id: str | None
    subscription_id: str | None
    plan_code: str | None
    plan_version: int | None
    status: Literal["active", "removed"]
    created_at: datetime
    removed_at: datetime | None = None


class TaxRate(_Model):
    object: Literal["tax_rate"]
    id: str
    display_name: str
    percentage: Decimal
    inclusive: bool
    country: str | None
    state: str | None
    plan_code: str | None
    status: Literal["active", "archived"]
    created_at: datetime
    archived_at: datetime | None = None


class TaxJurisdiction(_Model):
    object: Literal["tax_jurisdiction"]
    customer_id: str
    country: str | None
    state: str | None
    provider: Literal["neruba", "stripe_tax"] = "neruba"
    tax_rates: list[TaxRate]


# --- operations ------------------------------------------------------------------------------------


class BillingRun(_Model):
    object: Literal["billing_run"]
    id: str
    as_of: datetime
    trigger: str
    windows_found: int
    invoiced: int
    failed: int
    customer_id: str | None = None
    status: str | None = None


class AuditRecord(_Model):
    object: Literal["audit_record"]
    id: str
    at: datetime
    action: str
    actor: str | None
    customer_id: str | None
    target: str | None
    reason: str | None
    ticket: str | None
    request_id: str | None
    before: Any
    after: Any


class StripeEvent(_Model):
    object: Literal["stripe_event"]
    id: str


class StripeReplay(_Model):
    object: Literal["stripe_event_replay"]
    id: str
    status: str
    outcome: str | None
    error: str | None
    replayed_at: datetime


class DeadLetterQueue(_Model):
    object: Literal["dead_letter_queue"]
    name: str
    source_queue: str | None
    redrivable: bool
    depth: int
    in_flight: int


class Alarm(_Model):
    object: Literal["alarm"]
    name: str
    state: Literal["ALARM"]
    description: str | None
    reason: str | None
    metric: str | None
    since: datetime | None


class DlqRedrive(_Model):
    object: Literal["dlq_redrive"]
    queue: str
    source_queue: str | None
    depth_before: int
    redriven_at: datetime
    method: Literal["moved", "move_task"]
    moved: int | None
    not_moved: int | None
    task_handle: str | None


class SweepSummary(_Model):
    object: Literal["sweep"]
    id: str
    trigger: str
    actor: str | None
    status: Literal["ok", "failed"] | None
    checks: list[str]
    window: dict[str, str] | None
    found: int | None
    repaired: int | None
    started_at: datetime
    finished_at: datetime | None


class SweepItem(_Model):
    kind: str
    customer_id: str | None = None
    error: str | None = None
    before: Any = None
    after: Any = None


class SweepCheck(_Model):
    name: str
    checked: dict[str, int]
    found: int
    repaired: int
    repairs: list[SweepItem]
    details: dict[str, Any]
    error: str | None
    failures: list[SweepItem]


class Sweep(_Model):
    object: Literal["sweep"]
    id: str
    trigger: str
    actor: str | None
    status: Literal["ok", "failed"]
    checks: list[SweepCheck]
    window: dict[str, str]
    found: int
    repaired: int
    failed: int
    started_at: datetime
    finished_at: datetime


class WebhookReceipt(_Model):
    received: Literal[True]
    id: str
    duplicate: bool


# --- lists: one envelope ---------------------------------------------------------------------------


# --- outgoing webhooks (/admin/webhook-*) ----------------------------------------------------------

WebhookEventType = Literal[
    "customer.created",
    "customer.updated",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.updated",
    "invoice.voided",
    "credit_note.created",
    "credit_grant.created",
    "credit_grant.expired",
    "credit_grant.voided",
    "credit_grant.depleted",
    "balance.low",
    "alert.triggered",
    "subscription.created",
    "subscription.updated",
    "subscription.canceled",
    "subscription.trial_will_end",
    "billing_run.failed",
    "stripe_sync.failed",
    "ingest.batch_failed",
    "dlq.message_parked",
]


class Endpoint(_Model):
    """A webhook endpoint; ``secret`` is set only in the answers of create and rotate (and of a retry with
    the same idempotency key while that secret still signs)."""

    object: Literal["webhook_endpoint"]
    id: str
    url: str
    enabled_events: list[WebhookEventType | str]  # a type newer than this client reads as text
    description: str
    enabled: bool
    status: Literal["enabled", "disabled"]
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    secret: str | None = None
    secret_hint: str
    secrets_active: int
    created_at: datetime
    updated_at: datetime


class EndpointDeleted(_Model):
    object: Literal["webhook_endpoint"]
    id: str
    deleted: Literal[True]


class Delivery(_Model):
    endpoint_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    next_at: datetime | None = None


class Attempt(_Model):
    endpoint_id: str
    attempt: int
    at: datetime
    status_code: int  # 0 when no answer came
    latency_ms: int
    response_excerpt: str
    error: str | None = None


# --- webhook event bodies: ``data.object`` of each event type, then one envelope per type ------------


class CustomerData(_Model):
    external_id: str
    name: str
    currency: str
    created_at: datetime | None = None
    archived_at: datetime | None = None


class CustomerPreviousAttributes(_Model):
    """The values before the change of the fields that changed (only those are present)."""

    name: str | None = None
    email: str | None = None
    timezone: str | None = None
    stripe_customer_id: str | None = None
    metadata: dict[str, str] | None = None
    balance_low_threshold_minor: int | None = None
    invoice_threshold_minor: int | None = None
    archived_at: datetime | None = None


class CustomerUpdatedData(CustomerData):
    previous_attributes: CustomerPreviousAttributes


class InvoiceData(_Model):
    id: str
    customer_id: str
    currency: str
    status: str
    total_minor: int | None = None
    subtotal_minor: int | None = None
    discounts_minor: int = 0
    tax_minor: int = 0
    tax_included_minor: int = 0


class InvoiceFinalizedData(InvoiceData):
    status: Literal["finalized"]
    subtotal_minor: int
    total_minor: int
    finalized_at: datetime


class InvoicePaymentData(InvoiceData):
    """``amount_paid_minor``, ``amount_remaining_minor`` and ``payment_id`` arrive as extra fields."""


class InvoiceVoidedData(InvoiceData):
    status: Literal["void"]
    voided_at: datetime
    replaced_by: str


class InvoicePreviousAttributes(_Model):
    subtotal_minor: int
    total_minor: int


class InvoiceUpdatedData(InvoiceData):
    previous_attributes: InvoicePreviousAttributes


class CreditNoteData(_Model):
    id: str
    number: str
    invoice_id: str
    invoice_number: str | None
    customer_id: str
    currency: str
    amount_minor: int
    subtotal_minor: int | None = None
    tax_minor: int = 0
    tax_included_minor: int = 0
    pre_payment_amount_minor: int
    credit_amount_minor: int
    refund_amount_minor: int
    out_of_band_amount_minor: int
    reason: str
    created_at: datetime


class CreditGrantData(_Model):
    id: str
    customer_id: str
    kind: str
    amount_minor: int
    remaining_minor: int
    currency: str
    expires_at: datetime | None = None


class CreditGrantClosedData(CreditGrantData):
    closed_minor: int
    status: str


class CreditGrantDepletedData(CreditGrantData):
    invoice_id: str | None = None


class BalanceLowData(_Model):
    customer_id: str
    currency: str
    available_minor: int
    previous_available_minor: int
    threshold_minor: int


class AlertTriggeredData(_Model):
    customer_id: str
    meter_code: str | None
    alert: str
    kind: Literal["usage", "soft_cap", "hard_cap", "hard_cap_amount", "spend", "balance"]
    threshold: str
    usage: str | None
    period_start: datetime | None
    period_end: datetime | None
    late: bool
    currency: str | None = None
    amount_minor: int | None = None
    spend_minor: int | None = None
    balance_minor: int | None = None
    previous_balance_minor: int | None = None


class SubscriptionData(_Model):
    id: str
    customer_id: str
    status: str
    start_at: datetime
    trial_end: datetime | None = None
    cancel_at_period_end: bool
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    phases: list[Phase]


class SubscriptionPreviousAttributes(_Model):
    phases: list[Phase]


class SubscriptionUpdatedData(SubscriptionData):
    previous_attributes: SubscriptionPreviousAttributes


class SubscriptionCanceledData(SubscriptionData):
    pass


class TrialWillEndData(SubscriptionData):
    trial_end: datetime


class BillingRunFailedData(_Model):
    subscription_id: str
    error: str
    failed_at: datetime


class StripeSyncFailedData(_Model):
    invoice_id: str
    attempt: int
    error: str
    failed_at: datetime


class RefusedEventSample(_Model):
    customer_id: str
    transaction_id: str
    code: str


class IngestBatchFailedData(_Model):
    batch_id: str
    received: int
    accepted: int
    failed: int
    by_code: dict[str, int]
    samples: list[RefusedEventSample]


class DlqParkedData(_Model):
    queue: str
    depth: int
    previous_depth: int
    arrived: int
    checked_at: datetime


DataT = TypeVar("DataT", bound=_Model)


class _EventEnvelope(_Model, Generic[DataT]):
    """The body of every webhook event; each type below fixes ``type`` and the model of
    ``data["object"]``."""

    id: str
    object: Literal["event"]
    created: datetime
    customer_id: str  # "_global" for an event about no customer
    sequence: int
    type: str
    data: dict[Literal["object"], DataT]


# One class per event type (name, type, body), so that code using the client can name each event and
# narrow ``EventView.payload`` with isinstance; EVENT_MODELS below is the table they make.
class CustomerCreatedEvent(_EventEnvelope[CustomerData]):
    type: Literal["customer.created"]


class CustomerUpdatedEvent(_EventEnvelope[CustomerUpdatedData]):
    type: Literal["customer.updated"]


class InvoiceCreatedEvent(_EventEnvelope[InvoiceData]):
    type: Literal["invoice.created"]


class InvoiceFinalizedEvent(_EventEnvelope[InvoiceFinalizedData]):
    type: Literal["invoice.finalized"]


class InvoicePaidEvent(_EventEnvelope[InvoicePaymentData]):
    type: Literal["invoice.paid"]


class InvoicePaymentFailedEvent(_EventEnvelope[InvoicePaymentData]):
    type: Literal["invoice.payment_failed"]


class InvoiceUpdatedEvent(_EventEnvelope[InvoiceUpdatedData]):
    type: Literal["invoice.updated"]


class InvoiceVoidedEvent(_EventEnvelope[InvoiceVoidedData]):
    type: Literal["invoice.voided"]


class CreditNoteCreatedEvent(_EventEnvelope[CreditNoteData]):
    type: Literal["credit_note.created"]


class CreditGrantCreatedEvent(_EventEnvelope[CreditGrantData]):
    type: Literal["credit_grant.created"]


class CreditGrantExpiredEvent(_EventEnvelope[CreditGrantClosedData]):
    type: Literal["credit_grant.expired"]


class CreditGrantVoidedEvent(_EventEnvelope[CreditGrantClosedData]):
    type: Literal["credit_grant.voided"]


class CreditGrantDepletedEvent(_EventEnvelope[CreditGrantDepletedData]):
    type: Literal["credit_grant.depleted"]


class BalanceLowEvent(_EventEnvelope[BalanceLowData]):
    type: Literal["balance.low"]


class AlertTriggeredEvent(_EventEnvelope[AlertTriggeredData]):
    type: Literal["alert.triggered"]


class SubscriptionCreatedEvent(_EventEnvelope[SubscriptionData]):
    type: Literal["subscription.created"]


class SubscriptionUpdatedEvent(_EventEnvelope[SubscriptionUpdatedData]):
    type: Literal["subscription.updated"]


class SubscriptionCanceledEvent(_EventEnvelope[SubscriptionCanceledData]):
    type: Literal["subscription.canceled"]


class SubscriptionTrialWillEndEvent(_EventEnvelope[TrialWillEndData]):
    type: Literal["subscription.trial_will_end"]


class BillingRunFailedEvent(_EventEnvelope[BillingRunFailedData]):
    type: Literal["billing_run.failed"]


class StripeSyncFailedEvent(_EventEnvelope[StripeSyncFailedData]):
    type: Literal["stripe_sync.failed"]


class IngestBatchFailedEvent(_EventEnvelope[IngestBatchFailedData]):
    type: Literal["ingest.batch_failed"]


class DlqMessageParkedEvent(_EventEnvelope[DlqParkedData]):
    type: Literal["dlq.message_parked"]


WebhookEvent = (
    CustomerCreatedEvent
    | CustomerUpdatedEvent
    | InvoiceCreatedEvent
    | InvoiceFinalizedEvent
    | InvoicePaidEvent
    | InvoicePaymentFailedEvent
    | InvoiceUpdatedEvent
    | InvoiceVoidedEvent
    | CreditNoteCreatedEvent
    | CreditGrantCreatedEvent
    | CreditGrantExpiredEvent
    | CreditGrantVoidedEvent
    | CreditGrantDepletedEvent
    | BalanceLowEvent
    | AlertTriggeredEvent
    | SubscriptionCreatedEvent
    | SubscriptionUpdatedEvent
    | SubscriptionCanceledEvent
    | SubscriptionTrialWillEndEvent
    | BillingRunFailedEvent
    | StripeSyncFailedEvent
    | IngestBatchFailedEvent
    | DlqMessageParkedEvent
)
"""The body of any event type this client knows."""

# event type -> its model, in the order of WebhookEventType
EVENT_MODELS: dict[str, type[_EventEnvelope[Any]]] = {
    get_args(model.model_fields["type"].annotation)[0]: model for model in get_args(WebhookEvent)
}


class EventView(_Model):
    """A webhook event as sent (``payload`` is the exact body) with its deliveries and attempts."""

    object: Literal["event"]
    id: str
    type: WebhookEventType | str  # a type added after this client was released reads as text
    customer_id: str
    sequence: int
    created: datetime
    # the types this client knows, tried in order; a payload of a newer event type reads as a dict
    payload: WebhookEvent | dict[str, Any] = Field(union_mode="left_to_right")
    deliveries: list[Delivery]
    attempts: list[Attempt]


class ResendResult(_Model):
    object: Literal["webhook_resend"]
    resent: int
    deliveries: list[dict[str, str]]


class _List(_Model):
    object: Literal["list"]
    has_more: bool
    next_cursor: str | None = Field(description="starting_after for the next page; null on the last.")


class CustomerList(_List):
    data: list[CustomerView]


class MeterList(_List):
    data: list[MeterView]


class PlanList(_List):
    data: list[Plan]


class SubscriptionList(_List):
    data: list[Subscription]


class EventList(_List):
    data: list[StoredEvent]


class InvoiceList(_List):
    data: list[Invoice]


class PostingList(_List):
    data: list[Posting]


class CreditGrantList(_List):
    data: list[CreditGrant]


class BillingRunList(_List):
    data: list[BillingRun]


class OneOffChargeList(_List):
    data: list[OneOffCharge]


class BackfillList(_List):
    data: list[BackfillView]


class CreditNoteList(_List):
    data: list[CreditNote]


class CouponList(_List):
    data: list[Coupon]


class DiscountList(_List):
    data: list[Discount]


class TaxRateList(_List):
    data: list[TaxRate]


class AuditRecordList(_List):
    data: list[AuditRecord]


class StripeEventList(_List):
    data: list[StripeEvent]


class SweepList(_List):
    data: list[SweepSummary]


class DeadLetterQueueList(_List):
    data: list[DeadLetterQueue]


class AlarmList(_List):
    data: list[Alarm]


class EndpointList(_List):
    data: list[Endpoint]


class WebhookEventSummary(_Model):
    """One event of a customer's webhook events list."""

    object: Literal["event"]
    id: str
    type: WebhookEventType
    customer_id: str
    sequence: int
    created: datetime


class WebhookEventList(_List):
    data: list[WebhookEventSummary]
