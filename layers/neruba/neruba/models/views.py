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

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from neruba.domain.periods import Interval
from neruba.models.limits import PlanDefaultsView

DecimalText = Annotated[
    str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$", description="An exact decimal as text.", examples=["1250.5"])
]
Timestamp = Annotated[str, Field(description="RFC 3339 date-time in UTC.", examples=["2026-01-31T12:00:00Z"])]
Minor = Annotated[int, Field(description="Money in minor units of the currency (cents for USD).")]


def _one_of_types(*types: str, description: str) -> WithJsonSchema:
    """A JSON schema accepting a value of any of these JSON types."""
    return WithJsonSchema({"anyOf": [{"type": t} for t in types], "description": description})


Scalar = Annotated[
    Any, _one_of_types("string", "integer", "number", "boolean", "null", description="A scalar.")
]
PropertyValue = Annotated[
    Any, _one_of_types("string", "integer", "number", "boolean", description="An event property's value.")
]
Quantity = Annotated[
    Any,
    _one_of_types("string", "integer", description="An exact quantity: a decimal as text, or an integer."),
]
JsonValue = Annotated[
    Any,
    _one_of_types(
        "string",
        "integer",
        "number",
        "boolean",
        "null",
        "array",
        "object",
        description="Any JSON value: its content depends on the kind of record or check it belongs to.",
    ),
]
GroupValues = Annotated[
    dict[str, str], Field(description="The group-by property values of the line (empty when ungrouped).")
]

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
    metadata: dict[str, str]
    balance_low_threshold_minor: int | None = Field(
        default=None, description="The balance.low webhook threshold, in minor units; null for none."
    )
    invoice_threshold_minor: int | None = Field(
        default=None,
        description="Threshold invoicing: invoice a period's usage early when what it has not invoiced"
        " reaches this amount (minor units); null for none.",
    )
    created_at: Timestamp | None
    archived_at: Timestamp | None = Field(
        default=None, description="When the customer was archived; null while it is not."
    )


class MeterView(Closed):
    """What is measured from events with ``code``, and how it is aggregated per period."""

    code: str = Field(examples=["tokens"])
    name: str = Field(examples=["Tokens"])
    aggregation: Literal["count", "sum", "max", "min", "average", "unique_count", "latest", "weighted_sum"]
    field: str | None = Field(examples=["tokens"])
    filters: dict[str, str]
    group_by: list[str] = Field(examples=[["model"]])
    allow_negative: bool
    carry_over: bool = False
    created_at: Timestamp | None


class TierView(Closed):
    """One tier of a charge; prices and quantities are exact decimals as text."""

    up_to: str | None = Field(default=None, description="Units up to (inclusive); null on the last tier.")
    unit_price: str | None = Field(default=None, description="Null on a graduated_percentage tier.")
    rate: str | None = Field(default=None, description="Percent of the amount (graduated_percentage).")
    flat_fee: str | None = None


class PriceView(Closed):
    """The price fields of a charge or of one of its filters (exact decimals as text)."""

    unit_price: str | None = None
    tiers: list[TierView] = Field(default_factory=list)
    package_size: int | None = None
    package_price: str | None = None
    free_units: str | None = None
    rate: str | None = Field(default=None, description="percentage: percent of the billable amount.")
    fixed_fee: str | None = Field(default=None, description="percentage: fee per event past free_events.")
    free_events: int | None = Field(default=None, description="percentage: events that pay no fixed_fee.")
    per_event_min: str | None = Field(default=None, description="percentage: the least one event costs.")
    per_event_max: str | None = Field(default=None, description="percentage: the most one event costs.")
    multiplier: str | None = Field(default=None, description="dynamic: applied to the summed amount.")
    zero_usage_flat_fee: bool | None = Field(
        default=None, description="Tiered models: the first tier's flat fee is billed at zero usage."
    )


class ChargeFilterView(PriceView):
    """A price for the groups whose values match: each named property has one of the listed values."""

    values: dict[str, list[str]]


class PricingUnitView(Closed):
    """The unit a charge's prices are in and the plan currency's worth of one unit."""

    code: str
    conversion_rate: str


class ChargeView(PriceView):
    """How one meter's usage is priced (as the plan version was published)."""

    meter_code: str
    model: Literal[
        "per_unit", "graduated", "volume", "package", "percentage", "graduated_percentage", "dynamic"
    ]
    filters: list[ChargeFilterView] = Field(default_factory=list)
    pricing_unit: PricingUnitView | None = None
    pay_in_advance: bool | None = Field(default=None, description="Billed when each event arrives.")
    advance_invoicing: Literal["invoice_now", "next_invoice"] | None = None
    prorate: bool | None = None
    on_removal: Literal["none", "credit", "refund"] | None = None


DEFAULTS_NOTE = (
    "What the version sets for its subscribers unless they set their own: meters (caps, alerts), features"
    " and invoice_threshold_minor (docs/limits.md, Plan-version defaults); absent when it sets none."
)


class Plan(Open):
    """The latest version of a plan, with the numbers of every version."""

    code: str
    version: int
    name: str
    currency: str
    interval: Interval
    charges: list[ChargeView]
    defaults: PlanDefaultsView | None = Field(default=None, description=DEFAULTS_NOTE)
    versions: list[int] | None = Field(default=None, description="On a plan; absent on one version.")


class PlanVersion(Open):
    code: str
    version: int
    name: str
    currency: str
    interval: Interval
    charges: list[ChargeView]
    defaults: PlanDefaultsView | None = Field(default=None, description=DEFAULTS_NOTE)


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


_LINE_EXAMPLE: dict[str, Any] = {
    "line_id": "usage:api_calls::0",
    "kind": "usage",
    "description": "api_calls (per_unit)",
    "meter_code": "api_calls",
    "group": {},
    "quantity": "10",
    "unit_price": "0.1",
    "tiers": [
        {
            "tier": 1,
            "unit": "unit",
            "up_to": None,
            "quantity": "10",
            "unit_price": "0.1",
            "flat_fee": "0",
            "amount": "1",
        }
    ],
    "amount_minor": 100,
    "period_start": "2026-03-01T00:00:00Z",
    "period_end": "2026-04-01T00:00:00Z",
    "plan_code": "basic",
    "plan_version": 1,
    "source": {"events": 10, "hours": 2, "billable_quantity": "10", "free_units": "0", "amount": "1"},
}


class LineTier(Open):
    """One pricing tier a line's quantity reached: what it priced and for how much."""

    tier: int | None = None
    unit: str | None = Field(default=None, examples=["unit"])
    up_to: DecimalText | None = None
    quantity: Quantity = None
    unit_price: DecimalText | None = None
    flat_fee: DecimalText | None = None
    amount: DecimalText | None = None


class LineFigures(Closed):
    """A line's figures at one rating: quantity, amount, and the hours and events behind them."""

    quantity: Quantity = None
    amount_minor: Minor | None = None
    hours: int | None = None
    events: int | None = None
    net_minor: Minor | None = Field(
        default=None,
        description="An adjustment's figures: the amount after the corrected invoice's own discounts.",
    )
    unbillable: str | None = None  # the line was rated 0 as unbillable (source.unbillable)


class ThresholdInvoiceRef(Closed):
    """One threshold invoice of a period: its id and number, its place in the period, the time its usage
    was rated to (the cut), what it billed and the key of its ledger posting."""

    invoice_id: str
    number: str | None = None
    n: int
    cut_at: Timestamp
    amount_minor: Minor
    posting_key: str | None = Field(
        default=None, description="The idempotency key of its ledger posting (GET /v1/customers/{id}/ledger)."
    )


class ThresholdLine(Closed):
    """What threshold invoicing computed a line from. On a threshold invoice's line: the cut, the line
    rated to it and what earlier threshold invoices of the period billed of it (the line is the
    difference). On the period-end invoice's ``threshold_deduction`` line: what the period's threshold
    invoices billed of the line in all, and those invoices."""

    cut_at: Timestamp | None = None
    rated_to_cut: LineFigures | None = None
    billed_before: LineFigures | None = None
    billed: LineFigures | None = None
    invoices: list[ThresholdInvoiceRef] | None = None


class InvoiceThreshold(Closed):
    """Why a threshold invoice was issued: the threshold, its number in the period, the cut, what the
    period's usage was rated at then and what earlier threshold invoices had billed."""

    threshold_minor: Minor
    number_in_period: int
    cut_at: Timestamp
    period_start: Timestamp
    period_end: Timestamp
    billed_before_minor: Minor
    rated_to_cut_minor: Minor


class LevelInterval(Closed):
    """One interval behind a time-weighted line (a weighted_sum meter): [from, to), the level at its end,
    the net change in it (null: the level was held all along), the unit-seconds it held, its share of
    the period and of the line's quantity (docs/pricing.md, "Prorated recurring meters")."""

    from_: Timestamp = Field(alias="from")
    to: Timestamp
    level: Quantity
    change: Quantity | None
    seconds: Quantity
    unit_seconds: Quantity
    fraction: Quantity
    quantity: Quantity


class IntervalsMore(Closed):
    """The intervals of a weighted_sum line after the first 48 it shows: how many, their span and what
    they add up to (docs/pricing.md, "Prorated recurring meters")."""

    rows: int
    from_: Timestamp = Field(alias="from")
    to: Timestamp
    seconds: Quantity
    unit_seconds: Quantity
    fraction: Quantity
    quantity: Quantity


class LineSource(Open):
    """What a line was rated from: the usage behind it (hours, events, the billable and free quantity),
    for an adjustment the figures billed and re-rated, for a top-up the request and the grant it funds."""

    aggregation: str | None = None
    hours: int | None = None
    events: int | None = None
    billable_quantity: DecimalText | None = None
    free_units: DecimalText | None = None
    amount: DecimalText | None = None
    billed: LineFigures | None = None
    rerated: LineFigures | None = None
    top_up_request_id: str | None = None
    grant_id: str | None = None
    available_minor: Minor | None = None
    threshold_minor: Minor | None = None
    threshold: ThresholdLine | None = None
    intervals: list[LevelInterval] | None = None  # a weighted_sum line: the level intervals behind it
    intervals_more: IntervalsMore | None = None  # the intervals after the first 48, summed


class LineReference(Closed):
    """What a line refers to: the invoice (and line) an adjustment corrects, or the top-up request and the
    credit grant a top-up's line pays for."""

    invoice_id: str | None = None
    line_id: str | None = None
    number: str | None = None
    top_up_request_id: str | None = None
    grant_id: str | None = None
    threshold_invoices: list[str] | None = Field(
        default=None, description="For a threshold_deduction line: the period's threshold invoices."
    )


class LineTaxRate(Open):
    """One rate's tax on a line."""

    tax_rate_id: str
    percentage: DecimalText
    inclusive: bool
    taxable_minor: Minor
    amount_minor: Minor
    exact_minor: DecimalText


class LineTax(Open):
    """A line's tax: its amount after discounts, the net, the tax it contains and the tax added on top."""

    amount_after_discounts_minor: Minor
    net_minor: Minor
    inclusive_minor: Minor
    exclusive_minor: Minor
    rates: list[LineTaxRate]


class InvoiceLine(Open):
    """One line of an invoice: a meter's usage, a fixed fee, an adjustment of an earlier invoice's line,
    a top-up, or a minimum; money in minor units, quantities and prices as exact decimals."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [_LINE_EXAMPLE]})
    line_id: str
    kind: str = Field(examples=["usage", "fixed", "adjustment", "topup", "minimum", "one_off", "advance"])
    description: str | None = None
    meter_code: str | None = None
    group: GroupValues = Field(default_factory=dict)
    quantity: Quantity = None
    unit_price: DecimalText | None = None
    tiers: list[LineTier] = Field(default_factory=list)
    amount_minor: Minor
    period_start: Timestamp | None = None
    period_end: Timestamp | None = None
    plan_code: str | None = None
    plan_version: int | None = None
    source: LineSource | None = None
    references: LineReference | None = Field(
        default=None,
        description="The line an adjustment corrects, or the top-up request and grant a top-up pays for.",
    )
    pending: bool | None = Field(
        default=None, description="An adjustment or an advance line the next invoice will carry."
    )
    tax: LineTax | None = Field(default=None, description="The line's tax, on its amount after discounts.")
    gross_minor: Minor | None = Field(
        default=None,
        description="An adjustment: the difference before the corrected invoice's discounts (amount_minor "
        "is after them).",
    )
    corrected_terms: bool | None = Field(
        default=None,
        description="An adjustment priced by the invoice it corrects (its discounts and tax rates): the "
        "invoice carrying it applies none of its own discounts to it and keeps its tax.",
    )


class OneOffLineSource(Closed):
    """The one-off charge behind a ``one_off`` line."""

    one_off_charge_id: str
    reason: str | None
    ticket: str | None
    metadata: dict[str, str]
    created_at: str | None


class UpcomingCreditNote(Closed):
    """A credit note the window's invoice will issue when it is billed: negative adjustments that take
    the window below zero, taken back from an invoice still carrying what they correct (docs/billing.md,
    "A window invoice below zero"). Its id and number are given when it is issued."""

    invoice_id: str = Field(description="The invoice it will credit.")
    invoice_number: str | None
    amount_minor: Minor = Field(description="What it will take off, tax included.")
    subtotal_minor: Minor = Field(description="Its amount before tax.")
    tax_minor: Minor = Field(description="The exclusive tax it will give back (the tax those lines paid).")
    adjustments: list[CreditNoteAdjustment] = Field(
        description="The adjustments it will settle: the line each corrects and the amount taken for it."
    )


class UpcomingWindow(Open):
    """One active subscription's current period, rated up to ``as_of`` (a preview, nothing written)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "object": "upcoming_window",
                    "kind": "usage",
                    "subscription_id": "sub_0123456789abcdef0123",
                    "customer_id": "acme",
                    "currency": "USD",
                    "period_start": "2026-03-01T00:00:00Z",
                    "period_end": "2026-04-01T00:00:00Z",
                    "as_of": "2026-03-15T09:30:00Z",
                    "lines": [_LINE_EXAMPLE],
                    "subtotal_minor": 100,
                    "credits_applied": False,
                    "pending_adjustments_minor": 0,
                    "threshold_invoiced_minor": 0,
                    "trial_end": None,
                    "in_trial": False,
                    "trial_until": None,
                }
            ]
        },
    )
    object: Literal["upcoming_window"]
    kind: str | None = None
    subscription_id: str
    customer_id: str
    currency: str
    period_start: Timestamp
    period_end: Timestamp
    as_of: Timestamp | None = None
    lines: list[InvoiceLine]
    subtotal_minor: Minor
    credits_applied: bool
    pending_adjustments_minor: Minor
    threshold_invoiced_minor: Minor = Field(
        default=0,
        description="What the period's threshold invoices already billed, taken off on threshold_deduction"
        " lines as the period-end invoice will (0 when none).",
    )
    credit_notes_to_issue: list[UpcomingCreditNote] = Field(
        default_factory=list,
        description="When negative adjustments take the window below zero: the credit notes billing will "
        "issue for them against the invoices carrying what they correct (they are not lines of it).",
    )
    grant_restorations: list[GrantRestoration] = Field(
        default_factory=list,
        description="What billing will give back to the credit grants that paid usage its negative "
        "adjustments take back (not lines of it: docs/billing.md, 'Usage a credit grant paid, "
        "corrected').",
    )
    trial_end: Timestamp | None = None
    in_trial: bool | None = None
    trial_until: Timestamp | None = None
    tax_status: Literal["computed", "computed_by_stripe_at_finalization"] | None = Field(
        default=None,
        description="computed: tax_minor is the tax Neruba's rates give now; "
        "computed_by_stripe_at_finalization: the customer's tax is delegated to Stripe Tax, which "
        "computes it when the invoice is finalized in Stripe: tax_minor is null and total_minor is "
        "before tax (docs/billing.md, 'The upcoming invoice of a delegated customer').",
    )
    tax_provider: Literal["stripe_tax"] | None = Field(
        default=None, description="stripe_tax when Stripe Tax computes the tax (tax_status says when)."
    )
    tax_location: InvoiceTaxLocation | None = Field(
        default=None,
        description="With tax_provider stripe_tax: where Stripe Tax will be told the customer is.",
    )
    tax_minor: Minor | None = Field(
        default=None, description="Exclusive tax on top; null when Stripe Tax computes it at finalization."
    )
    tax_included_minor: Minor | None = Field(
        default=None, description="Tax inside the lines; null when Stripe Tax computes it at finalization."
    )


class UpcomingInvoice(Closed):
    object: Literal["upcoming_invoice"]
    customer_id: str
    as_of: Timestamp
    credits_applied: bool
    note: str
    windows: list[UpcomingWindow] = Field(description="One per active subscription: its period to date.")


# ---------------------------------------------------------------- events and usage


class ConflictingCopy(Closed):
    """What a copy that conflicted with the stored event carried."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"code": "api_calls", "timestamp": "2026-01-31T12:00:05Z", "properties": {"region": "eu"}}
            ]
        },
    )
    code: str
    timestamp: Timestamp | None = None
    properties: dict[str, PropertyValue] = Field(default_factory=dict)


class EventOutcome(Closed):
    """One copy received under the event's key and what became of it."""

    outcome: Literal["accepted", "duplicate", "conflict", "replay", "failed", "over_limit"]
    request_id: str | None = Field(description="The POST /v1/events request that carried the copy.")
    copy_id: str | None = Field(description="The request id and the event's index in it.")
    at: Timestamp | None = Field(description="When the worker recorded the outcome.")
    reason: str | None = Field(default=None, description="Why a failed copy was parked.")
    payload: ConflictingCopy | None = Field(
        default=None, description="A conflicting copy's code, timestamp and properties, as sent."
    )


class EventVoid(Closed):
    """How and why an event was voided."""

    kind: Literal["void", "amend"]
    reason: str
    ticket: str | None
    at: Timestamp
    actor: str | None
    amended_by: str | None = Field(description="The corrected copy's transaction id (an amend).")


class EventRestore(Closed):
    """How an event voided by a ``mode: replace`` backfill was given back by that backfill's revert."""

    backfill: str = Field(description="The backfill whose revert restored the event.")
    reason: str
    ticket: str | None
    at: Timestamp
    actor: str | None
    void: EventVoid = Field(description="The replace's void the restore undid.")


class StoredEvent(Closed):
    object: Literal["event"]
    transaction_id: str
    customer_id: str
    code: str
    timestamp: Timestamp
    properties: dict[str, PropertyValue]
    status: str = Field(examples=["accepted"])
    reason: str | None
    reason_message: str | None
    late: bool
    received_at: Timestamp | None
    outcomes: list[EventOutcome] = Field(description="Every outcome recorded for this key, oldest first.")
    copies: dict[str, int] = Field(description="How many times each outcome was recorded.")
    void: EventVoid | None = Field(
        default=None, description="Set when the event was voided or amended (its usage no longer counts)."
    )
    amends: str | None = Field(
        default=None, description="On an amend's corrected copy: the transaction id of the event it amends."
    )
    restored: EventRestore | None = Field(
        default=None,
        description="Set on an event a replace backfill voided and its revert gave back (it counts again).",
    )


class EventVoidResult(StoredEvent):
    """The voided event (``POST /admin/events/{id}/void`` and ``/amend``), with the corrected copy."""

    correction: Literal["completed", "pending"] = Field(
        description="completed: the usage is recomputed (and the copy counted); pending: the voids sweep "
        "check finishes it (pending usage not folded yet, or the cell kept changing)."
    )
    amended_by: StoredEvent | None = Field(default=None, description="An amend's corrected copy.")


class EventList(Page[StoredEvent]):
    """A page of a customer's counted events, by hour of their timestamp."""


class OutcomeBucket(Closed):
    start: str = Field(
        description="The bucket's first instant (a minute or an hour), RFC 3339 in UTC with Z.",
        examples=["2026-01-31T12:05:00Z"],
    )
    accepted: int
    duplicate: int
    conflict: int
    replay: int
    failed: int
    over_limit: int = Field(default=0, description="Refused over a hard cap (docs/limits.md).")


class OutcomeCounts(Closed):
    object: Literal["list"]
    granularity: Literal["minute", "hour"]
    data: list[OutcomeBucket]
    totals: dict[str, int]


class UsageBucket(Closed):
    bucket: str = Field(
        description="The bucket's first instant (its hour, day or billing period), RFC 3339 in UTC with Z; "
        "at period granularity `total` (the customer has no subscription) or `before_subscription`.",
        examples=["2026-01-31T12:00:00Z"],
    )
    quantity: DecimalText
    events: int
    group: dict[str, str] | None = None


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
    lines: list[InvoiceLine]
    subtotal_minor: Minor = Field(description="The sum of the lines, discount lines included.")
    discounts_minor: Minor = Field(default=0, description="What the discount lines took off (>= 0).")
    tax_minor: Minor = Field(default=0, description="Exclusive tax added on top of the subtotal.")
    tax_included_minor: Minor = Field(default=0, description="Tax contained in the lines (inclusive rates).")
    credits_applied_minor: Minor
    total_minor: Minor = Field(description="subtotal_minor + tax_minor - credits_applied_minor.")
    billing_reason: Literal[
        "subscription_create", "subscription_cycle", "subscription_threshold", "subscription_update", "manual"
    ] = Field(
        default="manual",
        description="Why it was issued: a subscription's start, its period's end, a threshold crossed "
        "(docs/billing.md, 'Threshold invoices'), an event billed in advance during the period "
        "(docs/pricing.md, 'Pay-in-advance charges'), or anything else (top-ups, one-off charges, "
        "corrections).",
    )
    threshold: InvoiceThreshold | None = Field(
        default=None, description="For a threshold invoice: the threshold and the cut it billed usage to."
    )
    tax_provider: Literal["stripe_tax"] | None = Field(
        default=None,
        description="stripe_tax: Neruba computed no tax; Stripe Tax computes it when the invoice is synced "
        "(docs/billing.md, 'Tax delegated to Stripe Tax').",
    )
    tax_location: InvoiceTaxLocation | None = Field(
        default=None,
        description="With tax_provider stripe_tax: where Stripe Tax is told the customer is (the customer's "
        "tax jurisdiction when the invoice was billed; sent as the Stripe customer's address).",
    )
    stripe_tax: InvoiceStripeTax | None = Field(
        default=None, description="The tax Stripe Tax computed, once recorded (tax_minor includes it)."
    )
    unbillable_lines: list[UnbillableLine] | None = Field(
        default=None,
        description="Lines billed 0 because their usage cannot be billed (a quantity over the line limit, "
        "events the per-event rule has not priced): correct the usage, the next re-rating bills it "
        "(docs/billing.md, 'Corrections against an unbillable line').",
    )
    grant_restorations: list[GrantRestoration] = Field(
        default_factory=list,
        description="What the negative differences this invoice carries gave back to the credit grants "
        "that paid the usage they take back, per corrected invoice, line and grant (window, correction "
        "and revised draft invoices; always present, empty when none: docs/billing.md, 'Usage a credit "
        "grant paid, corrected').",
    )


class UnbillableLine(Closed):
    """A line of an invoice billed 0 because its usage cannot be billed."""

    line_id: str
    unbillable: str = Field(examples=["amount_too_large", "per_event_rule_incomplete"])


class InvoiceTaxLocation(Closed):
    """The place a delegated invoice is taxed for (docs/billing.md, "Tax delegated to Stripe Tax")."""

    country: str = Field(description="ISO 3166-1 alpha-2 country code.", examples=["DE"])
    state: str | None = Field(
        default=None, description="The state or region, when the jurisdiction names one."
    )


class InvoiceStripeTax(Closed):
    """The tax Stripe Tax computed on a delegated invoice, as recorded from its webhook."""

    exclusive_minor: Minor = Field(description="Tax added on top: in tax_minor and total_minor.")
    inclusive_minor: Minor = Field(description="Tax inside the amounts: in tax_included_minor.")
    stripe_invoice_id: str
    event_id: str = Field(description="The Stripe event it was recorded from.")
    recorded_at: Timestamp


class LineAggregate(Closed):
    aggregation: str | None
    quantity: Quantity


class LinePrice(Closed):
    plan_code: str | None
    plan_version: int | None
    unit_price: DecimalText | None
    tiers: list[LineTier]


class CreditApplied(Closed):
    grant_id: str
    amount_minor: Minor


class AdvanceLineSource(Closed):
    """The event behind an ``advance`` line (a pay-in-advance charge billed when the event arrived)."""

    advance_id: str
    transaction_id: str
    event_timestamp: str
    meter_code: str
    subscription_id: str
    delta: DecimalText
    level_before: DecimalText
    level_after: DecimalText
    paid_before: DecimalText
    paid_after: DecimalText
    full_amount: DecimalText
    fraction: DecimalText
    amount: DecimalText
    invoicing: str
    on_removal: str
    billed_in: str | None = Field(description="The invoice that carries the line (null while pending).")
    posting_key: str | None = Field(description="The ledger posting of that invoice (its idempotency key).")


class BackfillLineSource(Closed):
    """The backfill whose commit wrote an adjustment line (docs/billing.md, "Backfills")."""

    backfill_id: str
    reason: str | None
    ticket: str | None


class BackfillLinePart(Closed):
    """One backfill whose events an adjustment line carries, and its share of the line's money
    (docs/billing.md, "Whose events a correction carries")."""

    backfill_id: str
    reason: str | None
    ticket: str | None
    revert: bool = Field(default=False, description="The part is the backfill's revert's.")
    amount_minor: Minor = Field(description="Its share of the line's amount.")


class GrantRestoration(Closed):
    """Credit a correction gave back to a grant that paid the usage it takes back (docs/billing.md,
    "Usage a credit grant paid, corrected")."""

    invoice_id: str = Field(description="The corrected invoice, whose credit the grant paid.")
    invoice_number: str | None = None
    line_id: str = Field(description="The corrected line of that invoice.")
    adjustment_line_id: str = Field(description="The negative difference the grant took back (part of).")
    grant_id: str
    kind: Literal["purchased", "promotional"]
    amount_minor: Minor
    tax_minor: Minor = Field(
        default=0,
        description="The tax of the usage the grant got back: the inclusive tax inside amount_minor "
        "(tax_included_minor, the grant paid it) and the exclusive tax, paid in money and given back the "
        'money way (docs/billing.md, "The tax of usage a grant paid").',
    )
    tax_included_minor: Minor = Field(default=0, description="The part of tax_minor inside amount_minor.")
    closed: Literal["expired", "voided"] | None = Field(
        default=None,
        description="The grant could no longer be used: the credit given back was closed at once "
        "(expired or voided) in the same posting.",
    )
    posting_id: str | None = None


class RestorationSource(Closed):
    """The write that gave credit back to a grant (docs/billing.md, "Usage a credit grant paid,
    corrected")."""

    type: Literal["invoice", "invoice_revision", "correction"] = Field(
        description="invoice: a window or correction invoice (GET /v1/invoices/{invoice_id}); "
        "invoice_revision: a draft's revision (its invoice_id and revision); correction: a correction "
        "after the end the grants took whole, which issued no invoice (its id is not an invoice id; the "
        "rerun's answer names it as correction.correction_id)."
    )
    id: str = Field(description="The source's id, as the posting's metadata.correction_id names it.")
    invoice_id: str | None = Field(description="The invoice to read; null for a correction without one.")
    revision: int | None = None


class LineGrantRestoration(Closed):
    """Credit a correction gave back of one line to a grant that paid it."""

    grant_id: str
    amount_minor: Minor
    source_id: str = Field(
        description="The invoice, correction or draft revision carrying the difference (typed: source)."
    )
    source: RestorationSource
    posting_id: str
    at: Timestamp


class ExplainedLine(Open):
    """One invoice line explained: the meter and aggregate, the hours and events behind it, the price
    version and tiers, the credits applied to it; an adjustment line also names what it corrects."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "line_id": "usage:api_calls::0",
                    "kind": "usage",
                    "description": "api_calls (per_unit)",
                    "meter_code": "api_calls",
                    "group": {},
                    "aggregate": {"aggregation": "count", "quantity": "10"},
                    "hours": 2,
                    "events": 10,
                    "price": {"plan_code": "basic", "plan_version": 1, "unit_price": "0.1", "tiers": []},
                    "amount_minor": 100,
                    "credits_applied": [{"grant_id": "cg_0123456789abcdef0123", "amount_minor": 40}],
                    "credits_applied_minor": 40,
                    "references": None,
                }
            ]
        },
    )
    line_id: str
    kind: str | None
    description: str | None
    meter_code: str | None
    group: GroupValues
    aggregate: LineAggregate
    hours: int | None
    events: int | None
    price: LinePrice
    amount_minor: Minor | None
    credits_applied: list[CreditApplied]
    credits_applied_minor: Minor
    grant_restorations: list[LineGrantRestoration] = Field(
        default_factory=list,
        description="What corrections gave back of this line to the grants that paid it (docs/billing.md, "
        "'Usage a credit grant paid, corrected').",
    )
    references: LineReference | None
    one_off: OneOffLineSource | None = Field(
        default=None, description="For a one_off line: the charge, why it was added, its metadata."
    )
    threshold: ThresholdLine | None = Field(
        default=None,
        description="For a line of a threshold invoice, or a threshold_deduction line: what it was computed"
        " from (the cut, what was billed before, the threshold invoices).",
    )
    intervals: list[LevelInterval] | None = Field(
        default=None,
        description="For a line of a weighted_sum meter: the level intervals behind its time-weighted "
        "quantity, each with its fraction of the period (the first 48).",
    )
    intervals_more: IntervalsMore | None = Field(
        default=None,
        description="When a weighted_sum line has more than 48 intervals: how many are not listed, the "
        "span they cover and what they add up to.",
    )
    advance: AdvanceLineSource | None = Field(
        default=None,
        description="For an advance line: the event that produced it, the price and proration applied,"
        " the ledger posting that booked it.",
    )
    voided_events: list[VoidedEventRef] | None = Field(
        default=None,
        description="For an adjustment line: the events of the corrected period and meter voided or amended"
        ' before this invoice was made (docs/billing.md, "Voiding and amending events").',
    )
    backfill: BackfillLineSource | None = Field(
        default=None,
        description="For an adjustment line written by a backfill's commit: the backfill, its reason"
        " and ticket.",
    )
    backfills: list[BackfillLinePart] | None = Field(
        default=None,
        description="For an adjustment line: every backfill whose events it carries, each with its share"
        " (absent when none).",
    )
    other_minor: Minor | None = Field(
        default=None,
        description="For an adjustment line naming backfills: the part of its amount no backfill accounts"
        " for (voids, amends, late events).",
    )
    credited: LineCredited | None = Field(
        default=None, description="What credit notes took from the line in all (absent when none did)."
    )
    credit_notes: list[LineCreditNote] = Field(
        default_factory=list,
        description="Each credit note that took (some of) the line back, with the correction it settled"
        ' (docs/billing.md, "Explain: credit notes, corrections and ledger entries").',
    )
    postings: list[str] = Field(
        default_factory=list,
        description="The ledger postings booking the line (the invoice's own, then its credit notes'):"
        " ids of the explanation's postings.",
    )


class LineCredited(Closed):
    """What credit notes took from a line: amount, quantity, and the tax given back per rate."""

    amount_minor: Minor
    quantity: str | None
    tax: dict[str, Minor] | None = None


class SettledAdjustment(Closed):
    """An adjustment of a correction settled by a credit note: the line it corrects, its difference,
    and what caused it (the events voided or amended, the backfill)."""

    key: str = Field(description="The adjustment's key: {original invoice}#{line}#{n}.")
    line_id: str | None
    description: str | None
    corrects: LineReference
    quantity: Quantity
    amount_minor: Minor = Field(description="The adjustment's whole difference (negative: taken back).")
    settled_minor: Minor | None = Field(
        description="What this credit note took for it, without tax (null on notes issued before it was"
        " recorded)."
    )
    created_at: Timestamp | None
    backfill: BackfillLineSource | None
    voided_events: list[VoidedEventRef]


class LineCorrection(Closed):
    """The correction (after the end) whose negative difference a credit note took from this line."""

    corrects: LineReference
    adjustments: list[SettledAdjustment]


class LineCreditNote(Closed):
    """A credit note's part of one line."""

    credit_note_id: str
    number: str
    amount_minor: Minor = Field(description="What it took from the line (without tax).")
    quantity: str | None
    tax_minor: Minor = Field(description="The tax it gave back with it (exclusive and inclusive).")
    reason: str | None
    created_at: Timestamp | None
    posting_id: str | None
    correction: LineCorrection | None = Field(
        description="For a note issued by a correction: what it corrects and the adjustments it settled"
        " (null for an operator's note)."
    )


class ExplainedPosting(Closed):
    """A ledger posting booking the invoice (its own, a credit note's, a payment's), as stored."""

    posting_id: str
    idempotency_key: str
    reason: str
    at: Timestamp
    entries: list[PostingEntryView]


class VoidedEventRef(Closed):
    """A voided or amended event an adjustment line's difference comes from (in part)."""

    transaction_id: str
    timestamp: Timestamp
    kind: Literal["void", "amend"]
    reason: str
    ticket: str | None
    at: Timestamp
    amended_by: str | None


class CorrectionCreditNote(Closed):
    """A credit note a correction issued against an invoice carrying what it takes back."""

    id: str
    number: str
    invoice_id: str = Field(description="The invoice credited (the one that still carried the amount).")
    amount_minor: Minor


class CorrectionWait(Closed):
    """A pending difference the next window will not bill yet: an invoice carrying the line it corrects
    has a dispute open (``reason: dispute_open``); it is billed by the first window after the decision."""

    line_id: str = Field(description="The difference's line (one of the correction's lines).")
    invoice_id: str = Field(description="The invoice carrying the corrected line, with a dispute open.")
    reason: Literal["dispute_open"]


class RerunCorrection(Closed):
    """What a rerun of a finalized invoice changed: adjustment lines for the subscription's next invoice
    (``adjustment``), or a correction invoice or credit note issued now."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "adjustment",
                    "applies_to": "the subscription's next invoice",
                    "amount_minor": 20,
                    "lines": [
                        {
                            "line_id": "adjustment:in_0123456789abcdef01234567:usage:api_calls::0:1",
                            "kind": "adjustment",
                            "description": "Adjustment to invoice INV-000002, line usage:api_calls::0",
                            "meter_code": "api_calls",
                            "group": {},
                            "quantity": "2",
                            "amount_minor": 20,
                            "tiers": [],
                            "references": {
                                "invoice_id": "in_0123456789abcdef01234567",
                                "line_id": "usage:api_calls::0",
                                "number": "INV-000002",
                            },
                            "source": {
                                "billed": {"quantity": "10", "amount_minor": 100, "hours": 2, "events": 10},
                                "rerated": {"quantity": "12", "amount_minor": 120, "hours": 2, "events": 12},
                            },
                        }
                    ],
                }
            ]
        },
    )
    type: Literal["adjustment", "correction_invoice", "credit_note", "grant_restoration"]
    invoice_id: str | None = Field(
        default=None,
        description="The correction invoice or credit note invoice issued (none when credit notes against "
        "the invoices carrying the amounts took all of it).",
    )
    correction_id: str | None = Field(
        default=None,
        description="After the end: the correction's id, what its grant restorations' postings name "
        "(metadata.correction_id, explain's grant_restorations[].source). It is the correction invoice's "
        "id when one was issued; when credit notes or the grants took all of it, no invoice has it.",
    )
    applies_to: str
    lines: list[InvoiceLine]
    amount_minor: Minor
    credit_notes: list[CorrectionCreditNote] = Field(
        default_factory=list,
        description="After the end: the credit notes issued against the invoices that still carried what "
        "a negative correction takes back (docs/billing.md, 'Negative corrections settle against what "
        "they correct').",
    )
    grant_restorations: list[GrantRestoration] = Field(
        default_factory=list,
        description="What the credit grants that paid the corrected usage got back (money first, then "
        "the grants: docs/billing.md, 'Usage a credit grant paid, corrected').",
    )
    waiting: list[CorrectionWait] = Field(
        default_factory=list,
        description="Before the end (type adjustment): the lines the next window will keep pending, and "
        "why, until it is decided (docs/billing.md, 'A correction waits for an open dispute').",
    )


class InvoiceExplanation(Closed):
    object: Literal["invoice_explanation"]
    invoice_id: str
    number: str | None
    status: str | None
    period_start: Timestamp | None
    period_end: Timestamp | None
    subtotal_minor: Minor | None
    discounts_minor: Minor = 0
    tax_minor: Minor = 0
    tax_included_minor: Minor = 0
    credits_applied_minor: Minor | None
    total_minor: Minor | None
    corrects: LineReference | None = Field(
        default=None, description="For a correction invoice or credit note: the invoice it corrects."
    )
    billing_reason: str | None = Field(default=None, examples=["subscription_threshold"])
    threshold: InvoiceThreshold | None = None
    lines: list[ExplainedLine]
    postings: list[ExplainedPosting] = Field(
        default_factory=list,
        description="The ledger postings of the invoice, its credit notes and its payments, with entries.",
    )
    grant_restorations: list[GrantRestoration] = Field(
        default_factory=list,
        description="What this invoice's negative differences gave back to the credit grants that paid "
        "the usage they take back (docs/billing.md, 'Usage a credit grant paid, corrected').",
    )


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


class OneOffCharge(Closed):
    """A one-off charge: ``pending`` until an invoice carries it (``invoice_id``), or ``void``."""

    id: str = Field(examples=["ooc_0123456789abcdef01234567"])
    object: Literal["one_off_charge"]
    customer_id: str
    description: str
    amount_minor: Minor
    quantity: str | None
    unit_price: str | None
    currency: str
    mode: Literal["invoice_now", "next_invoice"]
    metadata: dict[str, str]
    reason: str
    ticket: str | None
    status: Literal["pending", "invoiced", "void"]
    invoice_id: str | None
    created_at: str
    voided_at: str | None


class OneOffChargeList(Page[OneOffCharge]):
    """A customer's one-off charges, oldest first (one page: has_more is always false)."""


class RerunDifference(Closed):
    """The money a rerun changes: a draft's amounts, or the differences it corrects, after the invoice's
    own discounts (``subtotal_minor``), its exclusive tax (``tax_minor``) and both (``total_minor``),
    before credits."""

    subtotal_minor: Minor
    tax_minor: Minor
    total_minor: Minor


class InvoiceRerun(Closed):
    object: Literal["invoice_rerun"]
    invoice_id: str
    action: Literal["draft_recomputed", "unchanged", "correction_invoiced", "adjustment_pending"]
    invoice: Invoice
    correction: RerunCorrection | None
    difference: RerunDifference | None = Field(
        default=None, description="The money the rerun changes (absent from answers stored before it)."
    )


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
    metadata: dict[str, Scalar]


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
    credit_balance: bool = False  # true: a payout of customer credit left by credit notes
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
    before: JsonValue = Field(description="The record before the action (its shape depends on the action).")
    after: JsonValue = Field(description="The record after the action.")
    at: Timestamp
    request_id: str | None


# ---------------------------------------------------------------- operations and Stripe


class SweepItem(Open):
    """One repair or failure of a sweep check: its kind, the ids it concerns (customer, meter, hour,
    group, invoice, ...), the values before and after a repair, or the error."""

    kind: str
    customer_id: str | None = None
    error: str | None = None
    before: JsonValue = None
    after: JsonValue = None


class SweepCheck(Closed):
    """One named check of a sweep: what it looked at (counts by kind), found and repaired."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "usage",
                    "checked": {"events": 5, "batches": 1, "aggregate_cells": 1},
                    "found": 1,
                    "repaired": 1,
                    "repairs": [
                        {
                            "kind": "drift",
                            "customer_id": "acme",
                            "meter": "tokens",
                            "hour": "2026-03-01T06:00:00Z",
                            "group": "model=m",
                            "before": {"events": 5, "quantity": "7"},
                            "after": {"events": 5, "quantity": "20"},
                        }
                    ],
                    "details": {"drift_found": 1, "uncounted_found": 0},
                    "error": None,
                    "failures": [],
                }
            ]
        },
    )
    name: str
    checked: dict[str, int]
    found: int
    repaired: int
    repairs: list[SweepItem]
    details: dict[str, JsonValue]
    error: str | None
    failures: list[SweepItem]


class Sweep(Open):
    id: str = Field(examples=["swp_0123456789abcdef0123"])
    object: Literal["sweep"]
    trigger: str
    actor: str | None
    started_at: Timestamp
    finished_at: Timestamp
    window: dict[str, str]
    checks: list[SweepCheck]
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


class DeadLetterQueue(Closed):
    object: Literal["dead_letter_queue"]
    name: str = Field(examples=["IngestDLQ"])
    source_queue: str | None = Field(description="The queue its messages failed from; null when none.")
    redrivable: bool
    depth: int = Field(description="Messages waiting (SQS's approximate count).")
    in_flight: int = Field(description="Messages received and not yet deleted.")


class Alarm(Closed):
    object: Literal["alarm"]
    name: str = Field(examples=["neruba-prod-IngestDLQDepthAlarm-1X2Y3Z"])
    state: Literal["ALARM"]
    description: str | None
    reason: str | None = Field(
        description="Why it is in ALARM: CloudWatch's words for its alarms, ours for `PendingFoldLag`."
    )
    metric: str | None = Field(description="Namespace and metric name; null for a composite alarm.")
    since: Timestamp | None = Field(description="When it went into ALARM.")


class DlqRedrive(Closed):
    object: Literal["dlq_redrive"]
    queue: str
    source_queue: str | None
    depth_before: int
    redriven_at: Timestamp
    method: Literal["moved", "move_task"] = Field(
        description="moved: every message moved before the answer; move_task: an SQS move task started."
    )
    moved: int | None
    not_moved: int | None
    task_handle: str | None


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


class DeadLetterQueueList(Page[DeadLetterQueue]):
    """Every dead-letter queue of the stack (one page)."""


class AlarmList(Page[Alarm]):
    """Every alarm of the stack in ALARM (one page)."""


class CreditedInvoiceLine(Closed):
    kind: str | None
    quantity: str | None
    amount_minor: Minor


class CreditedTaxRate(Closed):
    """The tax one rate gives back with a credited line."""

    tax_rate_id: str
    percentage: str = Field(description="Exact decimal, as text.")
    inclusive: bool
    amount_minor: Minor


class CreditedLineTax(Closed):
    """The tax a credited line gives back: added on top (exclusive) and contained in it (inclusive)."""

    exclusive_minor: Minor
    inclusive_minor: Minor
    rates: list[CreditedTaxRate]


class CreditNoteLine(Closed):
    """What a credit note takes from one invoice line (``tax`` on a taxed line)."""

    line_id: str
    amount_minor: Minor
    quantity: str | None
    description: str | None
    invoice_line: CreditedInvoiceLine
    tax: CreditedLineTax | None = None


class CreditNoteStripe(Closed):
    """The Stripe credit note made for it (``logic.stripe.credit_note_sync``)."""

    credit_note_id: str | None
    status: str = Field(
        examples=["synced", "mismatch"],
        description="mismatch: Stripe credited another amount or tax than the note (docs/billing.md, "
        "'Credit notes of a delegated invoice').",
    )
    tax_minor: Minor | None = Field(
        default=None, description="For an invoice taxed by Stripe Tax: the tax Stripe's credit note credited."
    )
    amount_minor: Minor | None = Field(
        default=None,
        description="For an invoice taxed by Stripe Tax: the total Stripe's credit note credited.",
    )
    last_error: str | None = Field(default=None, description="With mismatch: both sides' amounts.")


class CreditNote(Closed):
    """A credit note against a finalized invoice (docs/billing.md, "Credit notes"); its four amounts add
    up to ``amount_minor``."""

    id: str = Field(examples=["cn_0123456789abcdef01234567"])
    object: Literal["credit_note"]
    number: str = Field(examples=["CN-000001"])
    status: Literal["issued"]
    invoice_id: str
    invoice_number: str | None
    customer_id: str
    currency: str
    amount_minor: Minor = Field(description="subtotal_minor + tax_minor: what the note gives back in all.")
    subtotal_minor: Minor | None = Field(
        default=None,
        description="The credited lines' amounts (absent on notes issued before taxes: amount_minor).",
    )
    tax_minor: Minor = Field(default=0, description="Exclusive tax given back with the lines, added on top.")
    tax_included_minor: Minor = Field(default=0, description="Tax contained in the credited amounts.")
    pre_payment_amount_minor: Minor
    credit_amount_minor: Minor
    refund_amount_minor: Minor
    out_of_band_amount_minor: Minor
    lines: list[CreditNoteLine]
    reason: str
    ticket: str | None
    memo: str | None
    posting_id: str
    created_at: str
    stripe: CreditNoteStripe | None = None
    correction: CreditNoteCorrection | None = Field(
        default=None,
        description="For a note issued by a correction after the end: the adjustments it settled (absent"
        " on an operator's note).",
    )


class CreditNoteAdjustment(Closed):
    """An adjustment a correction's credit note settled, and what the note took for it (without tax)."""

    key: str
    corrects: LineReference
    amount_minor: Minor


class CreditNoteCorrection(Closed):
    adjustments: list[CreditNoteAdjustment]


class CreditNoteList(Page[CreditNote]):
    """An invoice's credit notes, oldest first (one page: has_more is always false)."""


class PostingEntryView(Closed):
    account: str
    debit_minor: Minor
    credit_minor: Minor
    grant_id: str | None = Field(
        default=None, description="The credit grant a prepaid_credit or promotional entry concerns."
    )


class CreditNotePosting(Closed):
    posting_id: str
    entries: list[PostingEntryView]


class ExplainedCreditNoteLine(CreditNoteLine):
    original: InvoiceLine | None


class CreditNoteExplanation(Closed):
    """Each credited line with the invoice line it takes from, and the ledger posting."""

    object: Literal["credit_note_explanation"]
    credit_note_id: str
    number: str
    invoice_id: str
    invoice_number: str | None
    amount_minor: Minor
    lines: list[ExplainedCreditNoteLine]
    posting: CreditNotePosting
    settles: list[SettledAdjustment] = Field(
        default_factory=list,
        description="For a note issued by a correction after the end: the adjustments it settled, with the"
        " voids, amends and backfill behind them (empty for an operator's note).",
    )


class HourRange(Closed):
    start: str
    end: str
    hours: int


class CompletenessAtFinalization(Closed):
    complete: list[HourRange]
    open: list[HourRange]
    complete_hours: int
    open_hours: int


class LateEventCarrier(Closed):
    """The document that took a late difference: an invoice (``kind`` its kind), or a credit note that
    settled it after the subscription's end (``kind`` ``credit_note``, ``credit_note_id`` and ``number``
    the note's, ``invoice_id`` the invoice it credited)."""

    invoice_id: str
    number: str | None
    kind: str | None
    credit_note_id: str | None = None


class LateEventSettlement(LateEventCarrier):
    """A credit note that settled (part of) a late difference after the end: ``settled_minor`` what it
    took back of it (positive, as explain's ``settled_minor``)."""

    settled_minor: Minor


class LateDifference(Closed):
    """A late difference of one line, recorded after finalization, and the invoice that billed it."""

    line_id: str
    quantity: str | None
    amount_minor: Minor
    status: Literal["pending", "applied"]
    recorded_at: str | None
    applied_to: LateEventCarrier | None
    settled_by: list[LateEventSettlement]


class InvoiceCompleteness(Closed):
    """Which hours of the window were closed for late events when the invoice was finalized, which were
    still open (until ``closes_at``), and the late differences applied since and where."""

    object: Literal["invoice_completeness"]
    invoice_id: str
    number: str | None
    status: str
    kind: str | None
    rated_usage: bool
    period_start: str
    period_end: str
    finalized_at: str | None
    late_event_horizon_hours: int
    at_finalization: CompletenessAtFinalization
    closes_at: str | None
    closed_now: bool
    late_events: list[LateDifference]
    late_amount_minor: Minor


class InvoiceVoidResult(Closed):
    """The voided invoice and the invoice issued in its place."""

    object: Literal["invoice_void"]
    invoice: Invoice
    replacement: Invoice
