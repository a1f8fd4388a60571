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

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from neruba.domain.periods import Interval
from neruba.models.fields import (
    CODE_PATTERN,
    EXTERNAL_ID_PATTERN,
    TIMEZONE_PATTERN,
    AwareInstant,
    Currency,
    Reason,
    Ticket,
)

Aggregation = Literal["count", "sum", "max", "unique_count", "latest"]
NUMERIC_AGGREGATIONS = frozenset({"sum", "max", "latest"})  # those whose field is a number


_PROPERTY_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_METADATA = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500
FILTER_VALUE_MAX = 1_024  # the longest property text an event may carry (models.events.MAX_PROPERTY_TEXT)

Metadata = dict[
    Annotated[str, Field(min_length=1, max_length=METADATA_KEY_MAX)],
    Annotated[str, Field(max_length=METADATA_VALUE_MAX)],
]


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
    name: str = Field(min_length=1, max_length=256)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    currency: Currency
    timezone: str = Field(default="UTC", max_length=64, pattern=TIMEZONE_PATTERN, description=TIMEZONE_NOTE)
    stripe_customer_id: str | None = Field(default=None, max_length=255)
    metadata: Metadata = Field(default_factory=dict, max_length=MAX_METADATA)
    balance_low_threshold_minor: StrictInt | None = Field(
        default=None, ge=0, le=MAX_THRESHOLD, description=THRESHOLD_NOTE
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
    name: str = Field(min_length=1, max_length=256)
    aggregation: Aggregation
    field: str | None = Field(default=None, description="The property aggregated (all but count).")
    filters: dict[str, Annotated[str, Field(max_length=FILTER_VALUE_MAX)]] = Field(
        default_factory=dict, max_length=10
    )
    group_by: list[str] = Field(default_factory=list, max_length=3)
    allow_negative: bool = Field(
        default=False,
        description="Whether a negative value of the field is accepted (sum, max and latest meters). When"
        " false, an event with a negative value is rejected `negative_value`; when true, a period whose"
        " usage nets below zero is billed as 0.",
    )
    created_at: datetime | None = None

    @model_validator(mode="after")
    def _field_matches_aggregation(self) -> Meter:
        if self.aggregation == "count" and self.field is not None:
            raise ValueError("a count meter takes no field")
        if self.allow_negative and self.aggregation not in NUMERIC_AGGREGATIONS:
            raise ValueError(f"allow_negative applies to sum, max and latest meters, not {self.aggregation}")
        if self.aggregation != "count" and not self.field:
            raise ValueError(f"a {self.aggregation} meter needs a field")
        for name in [*((self.field and [self.field]) or []), *self.filters, *self.group_by]:
            if not _PROPERTY_NAME.match(name):
                raise ValueError(f"invalid property name {name!r}")
        return self


_UNSET: Any = None  # the default of an update field that may be left out but never set to null


class CustomerUpdate(BaseModel):
    """Fields a ``PATCH /v1/customers/{id}`` may change (``external_id`` and ``currency`` never change)."""

    model_config = ConfigDict(extra="forbid")

    # A field left out is unchanged. null clears email, stripe_customer_id and balance_low_threshold_minor;
    # name, timezone and metadata
    # always hold a value, so their types refuse null (422 null_not_allowed) while defaulting to "unset".
    name: str = Field(default=_UNSET, min_length=1, max_length=256)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    timezone: str = Field(default=_UNSET, max_length=64, pattern=TIMEZONE_PATTERN, description=TIMEZONE_NOTE)
    stripe_customer_id: str | None = Field(default=None, max_length=255)
    metadata: Metadata = Field(default=_UNSET, max_length=MAX_METADATA)
    balance_low_threshold_minor: StrictInt | None = Field(
        default=None, ge=0, le=MAX_THRESHOLD, description=THRESHOLD_NOTE
    )


Price = Annotated[Decimal, Field(ge=0, allow_inf_nan=False, max_digits=30, decimal_places=12)]
Quantity = Annotated[Decimal, Field(gt=0, allow_inf_nan=False, max_digits=30, decimal_places=6)]


class TierIn(BaseModel):
    """One tier: units up to ``up_to`` (inclusive; null for the last, open tier)."""

    model_config = ConfigDict(extra="forbid")

    up_to: Quantity | None = None
    unit_price: Price
    flat_fee: Price = Decimal(0)


class ChargeIn(BaseModel):
    """How one meter's usage is priced."""

    model_config = ConfigDict(extra="forbid")

    meter_code: str = Field(pattern=CODE_PATTERN)
    model: Literal["per_unit", "graduated", "volume", "package"]
    unit_price: Price | None = None
    tiers: list[TierIn] = Field(default_factory=list, max_length=20)
    package_size: int | None = Field(default=None, ge=1, le=1_000_000_000)
    package_price: Price | None = None
    free_units: Annotated[Decimal, Field(ge=0, allow_inf_nan=False, max_digits=30, decimal_places=6)] = (
        Decimal(0)
    )

    @model_validator(mode="after")
    def _fields_match_model(self) -> ChargeIn:
        needs = {
            "per_unit": {"unit_price"},
            "graduated": {"tiers"},
            "volume": {"tiers"},
            "package": {"package_size", "package_price"},
        }[self.model]
        given = {
            name
            for name in ("unit_price", "package_size", "package_price")
            if getattr(self, name) is not None
        }
        given |= {"tiers"} if self.tiers else set()
        if given != needs:
            raise ValueError(f"a {self.model} charge takes exactly {sorted(needs)}")
        bounds = [t.up_to for t in self.tiers]
        if bounds and (bounds[-1] is not None or any(b is None for b in bounds[:-1])):
            raise ValueError("only the last tier is open-ended (up_to: null)")
        finite = [b for b in bounds if b is not None]
        if finite != sorted(set(finite)):
            raise ValueError("tier bounds must increase")
        return self


class FixedFeeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Price
    timing: Literal["advance", "arrears"] = "advance"
    credit_on_cancel: bool = Field(
        default=True,
        description="On an immediate cancellation, credit the unused part of an advance fee already billed.",
    )


class PlanVersionIn(BaseModel):
    """The body of a plan version (publishing a changed plan makes the next version)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    currency: Currency
    interval: Interval = Field(
        description="The billing period: day, week, month, quarter or year, counted from the subscription's "
        "start in UTC (docs/billing.md, Plan intervals).",
    )
    fixed_fee: FixedFeeIn | None = None
    minimum_commitment: Price | None = None
    charges: list[ChargeIn] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _one_charge_per_meter(self) -> PlanVersionIn:
        codes = [c.meter_code for c in self.charges]
        if len(codes) != len(set(codes)):
            raise ValueError("a plan has at most one charge per meter")
        return self


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
    plan_version: int | None = Field(default=None, ge=1, description="Defaults to the latest version.")
    start_at: AwareInstant | None = Field(
        default=None, description="Defaults to now; anchors the billing periods."
    )
    trial_end: AwareInstant | None = None
    reason: Reason | None = Field(default=None, description="Why (kept in the audit record).")
    ticket: Ticket = None


class PlanChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_code: str = Field(pattern=CODE_PATTERN)
    plan_version: int | None = Field(default=None, ge=1)
    at: AwareInstant | None = Field(
        default=None, description="Defaults to now; must be within the current period."
    )
    reason: Reason | None = Field(default=None, description="Why (kept in the audit record).")
    ticket: Ticket = None


class Cancellation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_period_end: bool = True
    reason: Reason | None = Field(default=None, description="Why (kept in the audit record).")
    ticket: Ticket = None
