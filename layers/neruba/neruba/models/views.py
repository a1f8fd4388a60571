"""What the API answers, as documented models: the list envelope and each resource a route returns.

The routes build their answers as dictionaries (``neruba.api.responses.json_response`` keeps numbers
exact); these models describe them in the OpenAPI document, and the API tests check every answer against
the document, so a route that returns another shape fails a test. Money is an integer of minor units
(``*_minor``); every other decimal is a string holding the exact number (:data:`DecimalText`).

Models whose fields are all known forbid other fields; those carrying stored documents (plans,
subscriptions, invoices, reports) name the fields a client relies on and allow more.

They import nothing of ``neruba.models.catalog``: the read functions document customers and meters
without building the catalog's input models at a cold start.

Example:
    >>> page = {"object": "list", "data": [], "has_more": False, "next_cursor": None}
    >>> MeterList.model_validate(page).has_more
    False
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from neruba.domain.periods import Interval

DecimalText = Annotated[
    str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$", description="An exact decimal as text.", examples=["1250.5"])
]
Timestamp = Annotated[str, Field(description="RFC 3339 date-time in UTC.", examples=["2026-01-31T12:00:00Z"])]
Minor = Annotated[int, Field(description="Money in minor units of the currency (cents for USD).")]

T = TypeVar("T")


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Page(Closed, Generic[T]):
    """One page of a list, newest or in key order as the route says. Pass ``next_cursor`` as
    ``starting_after`` to read the next page; it is null on the last page."""

    object: Literal["list"]
    data: list[T]
    has_more: bool
    next_cursor: str | None = Field(description="starting_after for the next page; null on the last.")


# ---------------------------------------------------------------- system


class Health(Closed):
    status: Literal["ok"]
    version: str


class ReadyCheck(Closed):
    name: str
    ok: bool
    detail: str | None = Field(default=None, description="Shown to an admin key only.")


class Ready(Closed):
    status: Literal["ready"]
    checks: list[ReadyCheck]


# ---------------------------------------------------------------- catalog


class CustomerView(Closed):
    """A customer, named by the operator's own ``external_id``."""

    external_id: str = Field(examples=["acme"])
    name: str = Field(examples=["Acme Corp"])
    email: str | None = Field(examples=["billing@acme.example"])
    currency: str = Field(examples=["USD"])
    timezone: str = Field(examples=["America/New_York"])
    stripe_customer_id: str | None
    metadata: dict[str, Any]
    created_at: Timestamp | None
    archived_at: Timestamp | None = Field(
        default=None, description="When the customer was archived; null while it is not."
    )


class MeterView(Closed):
    """What is measured from events with ``code``, and how it is aggregated per period."""

    code: str = Field(examples=["tokens"])
    name: str = Field(examples=["Tokens"])
    aggregation: Literal["count", "sum", "max", "unique_count", "latest"]
    field: str | None = Field(examples=["tokens"])
    filters: dict[str, str]
    group_by: list[str] = Field(examples=[["model"]])
    allow_negative: bool
    created_at: Timestamp | None


class TierView(Closed):
    """One tier of a charge; prices and quantities are exact decimals as text."""

    up_to: str | None = Field(default=None, description="Units up to (inclusive); null on the last tier.")
    unit_price: str
    flat_fee: str | None = None


class ChargeView(Closed):
    """How one meter's usage is priced (as the plan version was published)."""

    meter_code: str
    model: Literal["per_unit", "graduated", "volume", "package"]
    unit_price: str | None = None
    tiers: list[TierView] = Field(default_factory=list)
    package_size: int | None = None
    package_price: str | None = None
    free_units: str | None = None


class Plan(Open):
    """The latest version of a plan, with the numbers of every version."""

    code: str
    version: int
    name: str
    currency: str
    interval: Interval
    charges: list[ChargeView]
    versions: list[int] | None = Field(default=None, description="On a plan; absent on one version.")


class PlanVersion(Open):
    code: str
    version: int
    name: str
    currency: str
    interval: Interval
    charges: list[ChargeView]


class Phase(Closed):
    """One stretch of a subscription on one plan version (a plan change starts the next)."""

    plan_code: str
    plan_version: int
    start_at: Timestamp
    end_at: Timestamp | None = Field(default=None, description="Null while the phase runs on.")
    created_at: Timestamp | None = Field(default=None, description="When a plan change added it.")


class Subscription(Open):
    id: str = Field(examples=["sub_3f2a9c1b0d4e5f6a7b8c"])
    customer_id: str
    status: str = Field(examples=["active"])
    currency: str
    interval: Interval
    start_at: Timestamp
    trial_end: Timestamp | None
    cancel_at_period_end: bool
    canceled_at: Timestamp | None
    ended_at: Timestamp | None
    phases: list[Phase]


class UpcomingInvoice(Closed):
    object: Literal["upcoming_invoice"]
    customer_id: str
    as_of: Timestamp
    credits_applied: bool
    note: str
    windows: list[dict[str, Any]] = Field(description="One per active subscription: its period to date.")


# ---------------------------------------------------------------- events and usage


class EventOutcome(Closed):
    """One copy received under the event's key and what became of it."""

    outcome: Literal["accepted", "duplicate", "conflict", "replay", "failed"]
    request_id: str | None = Field(description="The POST /v1/events request that carried the copy.")
    copy_id: str | None = Field(description="The request id and the event's index in it.")
    at: Timestamp | None = Field(description="When the worker recorded the outcome.")
    reason: str | None = Field(default=None, description="Why a failed copy was parked.")
    payload: dict[str, Any] | None = Field(
        default=None, description="A conflicting copy's code, timestamp and properties, as sent."
    )


class StoredEvent(Closed):
    object: Literal["event"]
    transaction_id: str
    customer_id: str
    code: str
    timestamp: Timestamp
    properties: dict[str, Any]
    status: str = Field(examples=["accepted"])
    reason: str | None
    reason_message: str | None
    late: bool
    received_at: Timestamp | None
    outcomes: list[EventOutcome] = Field(description="Every outcome recorded for this key, oldest first.")
    copies: dict[str, int] = Field(description="How many times each outcome was recorded.")


class EventList(Page[StoredEvent]):
    """A page of a customer's counted events, by hour of their timestamp."""


class OutcomeBucket(Closed):
    start: str = Field(examples=["2026-01-31T12:00"])
    accepted: int
    duplicate: int
    conflict: int
    replay: int
    failed: int


class OutcomeCounts(Closed):
    object: Literal["list"]
    granularity: Literal["minute", "hour"]
    data: list[OutcomeBucket]
    totals: dict[str, int]


class UsageBucket(Closed):
    bucket: str
    quantity: DecimalText
    events: int
    group: dict[str, Any] | None = None


class Usage(Closed):
    object: Literal["usage"]
    customer_id: str
    meter: str
    aggregation: str
    granularity: Literal["hour", "day", "period"]
    from_: Timestamp = Field(alias="from")
    to: Timestamp
    total: DecimalText
    data: list[UsageBucket]


# ---------------------------------------------------------------- invoices and billing


class Invoice(Open):
    id: str = Field(examples=["in_0123456789abcdef01234567"])
    object: Literal["invoice"]
    number: str | None
    customer_id: str
    currency: str
    status: str = Field(examples=["draft", "finalized", "paid", "void"])
    period_start: Timestamp | None
    period_end: Timestamp | None
    lines: list[dict[str, Any]]
    subtotal_minor: Minor
    credits_applied_minor: Minor
    total_minor: Minor


class InvoiceExplanation(Closed):
    object: Literal["invoice_explanation"]
    invoice_id: str
    number: str | None
    status: str | None
    period_start: Timestamp | None
    period_end: Timestamp | None
    subtotal_minor: Minor | None
    credits_applied_minor: Minor | None
    total_minor: Minor | None
    corrects: Any = None
    lines: list[dict[str, Any]]


class BillingRun(Open):
    id: str = Field(examples=["run_0123456789abcdef0123"])
    object: Literal["billing_run"]
    trigger: str
    customer_id: str | None = None
    as_of: Timestamp
    status: str | None = None
    windows_found: int
    invoiced: int
    failed: int


class InvoiceRerun(Closed):
    object: Literal["invoice_rerun"]
    invoice_id: str
    action: Literal["draft_recomputed", "unchanged", "correction_invoiced", "adjustment_pending"]
    invoice: Invoice
    correction: dict[str, Any] | None


# ---------------------------------------------------------------- ledger


class Balance(Closed):
    object: Literal["balance"]
    customer_id: str
    currency: str
    amount_due_minor: Minor
    credit_available_minor: Minor
    credit_available_by_grant: dict[str, int]
    credit_expired_unposted_minor: Minor
    paid_to_date_minor: Minor
    accounts: dict[str, int]


class LedgerEntry(Closed):
    account: str
    debit_minor: Minor | None = None
    credit_minor: Minor | None = None
    grant_id: str | None = None


class Posting(Closed):
    id: str
    object: Literal["ledger_posting"]
    idempotency_key: str
    customer_id: str
    currency: str
    entries: list[LedgerEntry]
    total_minor: Minor
    reason: str
    source: str | None
    source_id: str | None
    actor: str | None
    at: Timestamp
    effective_at: Timestamp
    metadata: dict[str, Any]


class BalanceSummary(Closed):
    """A balance in one currency, as the ledger's accounts add up."""

    amount_due_minor: Minor
    credit_available_minor: Minor
    credit_available_by_grant: dict[str, int]
    paid_to_date_minor: Minor
    accounts: dict[str, int]


class BalanceAdjusted(Posting):
    balance: BalanceSummary = Field(description="The balance after the adjustment.")


class CreditGrant(Closed):
    id: str = Field(examples=["cg_0123456789abcdef"])
    object: Literal["credit_grant"]
    customer_id: str
    kind: str
    amount_minor: Minor
    remaining_minor: Minor
    currency: str
    priority: int
    effective_at: Timestamp
    expires_at: Timestamp | None
    meter_codes: list[str] | None
    status: str
    created_at: Timestamp | None
    posting_id: str | None = Field(default=None, description="On a write: the posting it made.")


class Refund(Closed):
    id: str
    object: Literal["refund"]
    customer_id: str
    currency: str
    amount_minor: Minor
    payment_id: str | None
    invoice_id: str | None
    posting_id: str
    created_at: Timestamp


class Dispute(Open):
    id: str
    object: Literal["dispute"]
    customer_id: str
    currency: str
    amount_minor: Minor
    status: str
    posting_id: str | None = None


class AutoTopUp(Open):
    object: Literal["auto_top_up"]
    customer_id: str
    currency: str


class AuditRecord(Closed):
    id: str
    object: Literal["audit_record"]
    actor: str | None
    action: str
    customer_id: str | None
    target: str | None
    reason: str | None
    ticket: str | None
    before: Any
    after: Any
    at: Timestamp
    request_id: str | None


# ---------------------------------------------------------------- operations and Stripe


class Sweep(Open):
    id: str = Field(examples=["swp_0123456789abcdef0123"])
    object: Literal["sweep"]
    trigger: str
    actor: str | None
    started_at: Timestamp
    finished_at: Timestamp
    window: dict[str, str]
    checks: list[dict[str, Any]]
    found: int
    repaired: int
    failed: int
    status: Literal["ok", "failed"]


class SweepSummary(Closed):
    """A sweep in the list: its report without the per-check results (the names of the checks only)."""

    id: str
    object: Literal["sweep"]
    trigger: str
    actor: str | None
    started_at: Timestamp
    finished_at: Timestamp | None
    window: dict[str, str] | None
    found: int | None
    repaired: int | None
    status: Literal["ok", "failed"] | None
    checks: list[str]


class StripeEvent(Open):
    id: str = Field(examples=["evt_1PqR2s3T4u5V6w7X"])
    object: Literal["stripe_event"]


class StripeReplay(Closed):
    object: Literal["stripe_event_replay"]
    id: str
    replayed_at: Timestamp
    status: str
    outcome: str | None
    error: str | None


class WebhookReceipt(Closed):
    received: Literal[True]
    id: str
    duplicate: bool


# ---------------------------------------------------------------- named lists (one component per list)


class CustomerList(Page[CustomerView]):
    """A page of customers."""


class MeterList(Page[MeterView]):
    """A page of meters."""


class PlanList(Page[Plan]):
    """A page of Plan objects."""


class SubscriptionList(Page[Subscription]):
    """A page of Subscription objects."""


class InvoiceList(Page[Invoice]):
    """A page of Invoice objects."""


class PostingList(Page[Posting]):
    """A page of Posting objects."""


class CreditGrantList(Page[CreditGrant]):
    """A page of CreditGrant objects."""


class AuditRecordList(Page[AuditRecord]):
    """A page of AuditRecord objects."""


class BillingRunList(Page[BillingRun]):
    """A page of BillingRun objects."""


class SweepList(Page[SweepSummary]):
    """A page of sweep summaries."""


class StripeEventList(Page[StripeEvent]):
    """A page of StripeEvent objects."""
