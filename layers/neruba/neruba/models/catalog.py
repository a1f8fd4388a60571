"""Catalog resources as the API and the repositories see them: customers and meters.

Example:
    >>> Meter(code="api_calls", name="API calls", aggregation="count").field is None
    True
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from neruba.domain.periods import Interval
from neruba.models.fields import (
    CODE_PATTERN,
    EXTERNAL_ID_PATTERN,
    MAX_METADATA,
    TIMEZONE_PATTERN,
    AsText,
    AsWritten,
    AwareInstant,
    Currency,
    Metadata,
    Name,
    PlainDecimal,
    Price,
    Quantity,
    Reason,
    Ticket,
)
from neruba.models.limits import PlanDefaultsIn
from neruba.validation import FieldRuleError

Aggregation = Literal["count", "sum", "max", "min", "average", "unique_count", "latest", "weighted_sum"]
# those whose field is a number
NUMERIC_AGGREGATIONS = frozenset({"sum", "max", "min", "average", "latest", "weighted_sum"})


_PROPERTY_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
FILTER_VALUE_MAX = 1_024  # the longest property text an event may carry (models.events.MAX_PROPERTY_TEXT)


TIMEZONE_NOTE = (
    "An IANA time zone name kept for display (how the customer's own systems show times). Billing does "
    "not use it: billing periods, usage hours and every time in the API are UTC (docs/billing.md, "
    "'Time zones')."
)


MAX_THRESHOLD = 10**15
THRESHOLD_NOTE = (
    "Minor units of the customer's currency: when credit applied to an invoice takes the customer's usable "
    "credit from at or above this amount to below it, a balance.low webhook event is sent (once per "
    "crossing). null (the default) sends none (docs/webhooks.md)."
)
INVOICE_THRESHOLD_NOTE = (
    "Minor units of the customer's currency, at least 1: when the usage of a subscription's open period "
    "not invoiced yet reaches this amount, a threshold invoice bills it at once and the period-end "
    "invoice deducts it. null (the default) invoices at the period end only (docs/billing.md, "
    "'Threshold invoices')."
)


class CustomerCreate(BaseModel):
    """A customer of the operator, named by the operator's own ``external_id``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "external_id": "acme",
                    "name": "Acme Corp",
                    "email": "billing@acme.example",
                    "currency": "USD",
                    "timezone": "America/New_York",
                    "metadata": {"crm_id": "0017Q00000abcde"},
                }
            ]
        },
    )

    external_id: str = Field(pattern=EXTERNAL_ID_PATTERN)
    name: Name
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    currency: Currency
    timezone: str = Field(default="UTC", max_length=64, pattern=TIMEZONE_PATTERN, description=TIMEZONE_NOTE)
    stripe_customer_id: str | None = Field(default=None, max_length=255)
    metadata: Metadata = Field(default_factory=dict, max_length=MAX_METADATA)
    balance_low_threshold_minor: StrictInt | None = Field(
        default=None, ge=0, le=MAX_THRESHOLD, description=THRESHOLD_NOTE
    )
    invoice_threshold_minor: StrictInt | None = Field(
        default=None, ge=1, le=MAX_THRESHOLD, description=INVOICE_THRESHOLD_NOTE
    )
    created_at: datetime | None = None


class Customer(CustomerCreate):
    """A customer as stored: what was created, and ``archived_at`` once archived (set only by
    ``POST /v1/customers/{id}/archive``, so not part of the creation body)."""

    archived_at: datetime | None = None


class CustomerArchive(BaseModel):
    """``POST /v1/customers/{id}/archive`` body: why, for the audit record (both optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = Field(default=None, description="Why (kept in the audit record).")
    ticket: Ticket = None


class Meter(BaseModel):
    """What to measure from events with a given ``code`` and how to aggregate it per period."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "tokens",
                    "name": "Tokens",
                    "aggregation": "sum",
                    "field": "tokens",
                    "group_by": ["model"],
                }
            ]
        },
    )

    code: str = Field(pattern=CODE_PATTERN)
    name: Name
    aggregation: Aggregation
    field: str | None = Field(default=None, description="The property aggregated (all but count).")
    filters: dict[str, Annotated[str, Field(max_length=FILTER_VALUE_MAX)]] = Field(
        default_factory=dict, max_length=10
    )
    group_by: list[str] = Field(default_factory=list, max_length=3)
    allow_negative: StrictBool = Field(
        default=False,
        description="Whether a negative value of the field is accepted (meters of a number). When"
        " false, an event with a negative value is rejected `negative_value`; when true, a period whose"
        " usage nets below zero is billed as 0.",
    )
    carry_over: StrictBool = Field(
        default=False,
        description="latest meters: a period with no event bills the last value reported before it (a"
        " level that persists, such as seats or a plan size); with group_by, each group's own.",
    )
    created_at: datetime | None = None

    @model_validator(mode="after")
    def _field_matches_aggregation(self) -> Meter:
        if self.aggregation == "count" and self.field is not None:
            raise FieldRuleError("field", "must not be given: a count meter takes no field")
        if self.allow_negative and self.aggregation not in NUMERIC_AGGREGATIONS:
            raise FieldRuleError(
                "allow_negative",
                "allow_negative applies to sum, max, min, average, latest and weighted_sum meters, not"
                f" {self.aggregation}",
            )
        if self.carry_over and self.aggregation != "latest":
            raise FieldRuleError("carry_over", "carry_over applies to latest meters")
        if self.aggregation != "count" and not self.field:
            raise FieldRuleError("field", f"is required: a {self.aggregation} meter needs a field")
        names = [("field", [self.field] if self.field else []), ("filters", self.filters),
                 ("group_by", self.group_by)]  # fmt: skip
        for param, given in names:
            for name in given:
                if not _PROPERTY_NAME.match(name):
                    raise FieldRuleError(param, f"holds an invalid property name {name!r}")
        return self


_UNSET: Any = None  # the default of an update field that may be left out but never set to null


class CustomerUpdate(BaseModel):
    """Fields a ``PATCH /v1/customers/{id}`` may change (``external_id`` and ``currency`` never change)."""

    model_config = ConfigDict(extra="forbid")

    # A field left out is unchanged. null clears email, stripe_customer_id, balance_low_threshold_minor and
    # invoice_threshold_minor;
    # name, timezone and metadata
    # always hold a value, so their types refuse null (422 null_not_allowed) while defaulting to "unset".
    name: Name = Field(default=_UNSET)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    timezone: str = Field(default=_UNSET, max_length=64, pattern=TIMEZONE_PATTERN, description=TIMEZONE_NOTE)
    stripe_customer_id: str | None = Field(default=None, max_length=255)
    metadata: Metadata = Field(default=_UNSET, max_length=MAX_METADATA)
    balance_low_threshold_minor: StrictInt | None = Field(
        default=None, ge=0, le=MAX_THRESHOLD, description=THRESHOLD_NOTE
    )
    invoice_threshold_minor: StrictInt | None = Field(
        default=None, ge=1, le=MAX_THRESHOLD, description=INVOICE_THRESHOLD_NOTE
    )


Rate = Annotated[
    Decimal,
    Field(ge=0, le=1000, allow_inf_nan=False),
    PlainDecimal,
    AfterValidator(AsWritten(digits=20, places=10)),
    AsText,
    AsWritten,
]


class TierIn(BaseModel):
    """One tier: units up to ``up_to`` (inclusive; null for the last, open tier), priced by ``unit_price``
    (graduated, volume) or by ``rate``, a percentage of the amount in the tier (graduated_percentage)."""

    model_config = ConfigDict(extra="forbid")

    up_to: Quantity | None = None
    unit_price: Price | None = None
    rate: Rate | None = Field(default=None, description="Percent of the amount (graduated_percentage).")
    flat_fee: Price = Decimal(0)


ChargeModel = Literal[
    "per_unit", "graduated", "volume", "package", "percentage", "graduated_percentage", "dynamic"
]
TIERED_MODELS = frozenset({"graduated", "volume", "graduated_percentage"})
AMOUNT_MODELS = frozenset({"percentage", "graduated_percentage", "dynamic"})  # price a sum meter's amount
_NEEDS: dict[str, set[str]] = {
    "per_unit": {"unit_price"},
    "graduated": {"tiers"},
    "volume": {"tiers"},
    "package": {"package_size", "package_price"},
    "percentage": {"rate"},
    "graduated_percentage": {"tiers"},
    "dynamic": set(),
}
_OPTIONAL: dict[str, set[str]] = {
    "percentage": {"fixed_fee", "free_events", "per_event_min", "per_event_max"},
    "dynamic": {"multiplier"},
}
_SINGLE_FIELDS = (
    "unit_price",
    "package_size",
    "package_price",
    "rate",
    "fixed_fee",
    "free_events",
    "multiplier",
)


class Pricing(BaseModel):
    """The price fields of a charge (or of one of its filters); which ones apply depends on the model."""

    model_config = ConfigDict(extra="forbid")

    unit_price: Price | None = None
    tiers: list[TierIn] = Field(default_factory=list, max_length=20)
    package_size: StrictInt | None = Field(default=None, ge=1, le=1_000_000_000)
    package_price: Price | None = None
    free_units: Annotated[
        Decimal,
        Field(ge=0, allow_inf_nan=False),
        PlainDecimal,
        AfterValidator(AsWritten(digits=30, places=6)),
        AsText,
    ] = Decimal(0)
    rate: Rate | None = Field(
        default=None, description="percentage: the percent of the billable amount charged (1.2 = 1.2%)."
    )
    fixed_fee: Price | None = Field(
        default=None, description="percentage: a fee per event, past free_events."
    )
    free_events: StrictInt | None = Field(
        default=None, ge=0, le=1_000_000_000, description="percentage: events that pay no fixed_fee."
    )
    per_event_min: Price | None = Field(
        default=None, description="percentage: the least one event costs (rate and fixed fee included)."
    )
    per_event_max: Price | None = Field(
        default=None, description="percentage: the most one event costs (rate and fixed fee included)."
    )
    multiplier: Price | None = Field(
        default=None, description="dynamic: what the events' summed amount is multiplied by (default 1)."
    )
    zero_usage_flat_fee: StrictBool = Field(
        default=False,
        description="Tiered models: bill the first tier's flat_fee even when no billable unit reaches it"
        " (docs/pricing.md, 'Zero usage and the first tier's flat fee'). Default: no flat fee at zero.",
    )

    def check_for(self, model: str, where: str = "") -> None:
        """Raise ValueError unless these fields fit ``model`` (``where`` prefixes the message)."""
        needs = _NEEDS[model]
        allowed = needs | _OPTIONAL.get(model, set())
        given = {
            name
            for name in (*_SINGLE_FIELDS, "per_event_min", "per_event_max")
            if getattr(self, name) is not None
        }
        given |= {"tiers"} if self.tiers else set()
        if not needs <= given or not given <= allowed:
            extra = f" (and may take {sorted(allowed - needs)})" if allowed != needs else ""
            raise ValueError(f"{where}a {model} charge takes exactly {sorted(needs)}{extra}")
        if self.per_event_min is not None or self.per_event_max is not None:
            if self.free_units or self.free_events is not None:
                raise ValueError(
                    f"{where}per-event bounds price each event on its own: they take no free_units or"
                    " free_events"
                )
            low, high = self.per_event_min, self.per_event_max
            if low is not None and high is not None and low > high:
                raise ValueError(f"{where}per_event_min cannot be above per_event_max")
        if self.zero_usage_flat_fee and model not in TIERED_MODELS:
            raise ValueError(f"{where}zero_usage_flat_fee applies to tiered models, not {model}")
        by_rate = model == "graduated_percentage"
        for index, tier in enumerate(self.tiers):
            if (tier.rate is None) == by_rate or (tier.unit_price is None) != by_rate:
                price, other = ("rate", "unit_price") if by_rate else ("unit_price", "rate")
                raise ValueError(
                    f"{where}each tier of a {model} charge has a {price} and no {other}"
                    f" (tier {index} does not)"
                )
        bounds = [t.up_to for t in self.tiers]
        if bounds and (bounds[-1] is not None or any(b is None for b in bounds[:-1])):
            raise ValueError(f"{where}only the last tier is open-ended (up_to: null)")
        finite = [b for b in bounds if b is not None]
        if finite != sorted(set(finite)):
            raise ValueError(f"{where}tier bounds must increase")


FilterValue = Annotated[str, Field(max_length=FILTER_VALUE_MAX)]


class ChargeFilterIn(Pricing):
    """A price for the usage whose group values match ``values``: each named property (one of the meter's
    ``group_by``) has one of the listed values (any value when the list is empty). The filter's price
    fields replace the charge's."""

    values: dict[str, Annotated[list[FilterValue], Field(max_length=50)]] = Field(
        min_length=1,
        max_length=3,
        description="Property -> accepted values; an empty list accepts any value the property has.",
    )

    @model_validator(mode="after")
    def _property_names(self) -> ChargeFilterIn:
        for name in self.values:
            if not _PROPERTY_NAME.match(name):
                raise ValueError(f"invalid property name {name!r}")
        return self


class PricingUnitIn(BaseModel):
    """A unit of the merchant's own (credits, tokens) that a charge's prices are written in, and what
    one unit is worth in the plan's currency."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE_PATTERN, description="Shown on invoice lines, e.g. credits.")
    conversion_rate: Annotated[
        Decimal,
        Field(gt=0, allow_inf_nan=False),
        PlainDecimal,
        AfterValidator(AsWritten(digits=30, places=12)),
        AsText,
    ] = Field(description="The plan currency's worth of one unit (0.01: 100 units make 1.00).")


class ChargeIn(Pricing):
    """How one meter's usage is priced: the charge's price, or the first of its ``filters`` whose values
    match a group's."""

    meter_code: str = Field(pattern=CODE_PATTERN)
    model: ChargeModel
    filters: list[ChargeFilterIn] = Field(
        default_factory=list,
        max_length=20,
        description="Prices per property value (docs/pricing.md, 'Prices per property value'); the charge's"
        " own price applies to groups no filter matches.",
    )
    pricing_unit: PricingUnitIn | None = Field(
        default=None,
        description="The charge's prices (and its filters') are in this unit, converted to the plan's"
        " currency on each line (docs/pricing.md, 'Custom pricing units').",
    )

    pay_in_advance: StrictBool = Field(
        default=False,
        description="Bill each event when it arrives instead of at the period's end (docs/pricing.md,"
        " 'Pay-in-advance charges'): per_unit, package, graduated or volume on a count, sum or"
        " unique_count meter.",
    )
    advance_invoicing: Literal["invoice_now", "next_invoice"] | None = Field(
        default=None,
        description="pay_in_advance: invoice_now (default) issues an invoice per event at once;"
        " next_invoice gathers the event's line onto the customer's next invoice.",
    )
    prorate: StrictBool | None = Field(
        default=None,
        description="pay_in_advance: bill only the part of the period left after the event (a seat added"
        " mid-period). Default false.",
    )
    on_removal: Literal["none", "credit", "refund"] | None = Field(
        default=None,
        description="pay_in_advance: what a decrease gives back: none (default, what was paid stays"
        " paid), credit (a negative line on the next invoice), refund (a negative invoice at once).",
    )

    @model_validator(mode="after")
    def _fields_match_model(self) -> ChargeIn:
        self.check_for(self.model)
        advance = {"advance_invoicing": self.advance_invoicing, "prorate": self.prorate,
                   "on_removal": self.on_removal}  # fmt: skip
        given = [name for name, value in advance.items() if value is not None]
        if given and not self.pay_in_advance:
            raise FieldRuleError(given[0], f"{given[0]} applies only to a charge with pay_in_advance: true")
        for index, price in enumerate(self.filters):
            price.check_for(self.model, f"filters[{index}]: ")
        return self


class FixedFeeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Price
    timing: Literal["advance", "arrears"] = "advance"
    credit_on_cancel: StrictBool = Field(
        default=True,
        description="On an immediate cancellation, credit the unused part of an advance fee already billed.",
    )


class PlanVersionIn(BaseModel):
    """The body of a plan version (publishing a changed plan makes the next version)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    currency: Currency
    interval: Interval = Field(
        description="The billing period: day, week, month, quarter or year, counted from the subscription's "
        "start in UTC (docs/billing.md, Plan intervals).",
    )
    fixed_fee: FixedFeeIn | None = None
    minimum_commitment: Price | None = None
    charges: list[ChargeIn] = Field(default_factory=list, max_length=50)
    defaults: PlanDefaultsIn | None = Field(
        default=None,
        description="Usage limits, entitlements and the invoice threshold of every customer subscribed "
        "to the version, unless the customer sets its own (docs/limits.md, Plan-version defaults).",
    )

    @field_validator("defaults")
    @classmethod
    def _no_empty_defaults(cls, defaults: PlanDefaultsIn | None) -> PlanDefaultsIn | None:
        """Defaults that set nothing (``{}``, empty lists) are no defaults: the version is stored and
        answered without them, as the answer's description says (absent when none are set)."""
        if defaults is None or defaults.meters or defaults.features:
            return defaults
        return None if defaults.invoice_threshold_minor is None else defaults

    @field_validator("charges")
    @classmethod
    def _one_charge_per_meter(cls, charges: list[ChargeIn]) -> list[ChargeIn]:
        codes = [c.meter_code for c in charges]
        repeated = sorted({code for code in codes if codes.count(code) > 1})
        if repeated:
            names = ", ".join(repr(code) for code in repeated)
            raise ValueError(f"a plan has at most one charge per meter ({names} has more)")
        return charges


class PlanCreate(PlanVersionIn):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "pro",
                    "name": "Pro",
                    "currency": "USD",
                    "interval": "month",
                    "fixed_fee": {"amount": "49.00", "timing": "advance"},
                    "charges": [
                        {
                            "meter_code": "tokens",
                            "model": "graduated",
                            "tiers": [
                                {"up_to": "1000000", "unit_price": "0"},
                                {"up_to": None, "unit_price": "0.000002"},
                            ],
                        }
                    ],
                }
            ]
        },
    )

    code: str = Field(pattern=CODE_PATTERN)


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "acme",
                    "plan_code": "pro",
                    "start_at": "2026-02-01T00:00:00Z",
                    "reason": "signed",
                }
            ]
        },
    )

    customer_id: str = Field(pattern=EXTERNAL_ID_PATTERN)
    plan_code: str = Field(pattern=CODE_PATTERN)
    plan_version: StrictInt | None = Field(default=None, ge=1, description="Defaults to the latest version.")
    start_at: AwareInstant | None = Field(
        default=None,
        description="Defaults to now; anchors the billing periods. Not before now when the plan bills a "
        "meter in advance (invalid_start_time).",
    )
    trial_end: AwareInstant | None = None
    reason: Reason | None = Field(default=None, description="Why (kept in the audit record).")
    ticket: Ticket = None


class PlanChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_code: str = Field(pattern=CODE_PATTERN)
    plan_version: StrictInt | None = Field(default=None, ge=1)
    at: AwareInstant | None = Field(
        default=None,
        description="Defaults to now; must be within the current period. When either plan bills a meter "
        "in advance, the new plan's first whole hour (at, or the next hour) must start later than now plus "
        "the events' accepted lead (300 s); left out in the last minutes of an hour, it is that first hour "
        "allowed: docs/pricing.md, 'A plan change inside an hour'.",
    )
    reason: Reason | None = Field(default=None, description="Why (kept in the audit record).")
    ticket: Ticket = None


class Cancellation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_period_end: StrictBool = Field(
        default=True,
        description="True (the default): the subscription ends when its current period ends; false: it "
        "ends now and its last (partial) period is billed at once.",
    )
    reason: Reason | None = Field(default=None, description="Why (kept in the audit record).")
    ticket: Ticket = None
