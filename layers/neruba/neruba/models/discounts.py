"""Coupons, discounts, tax rates and tax jurisdictions: operator request bodies and API answers."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from neruba.models.countries import known_country
from neruba.models.fields import (
    CODE_PATTERN,
    EXTERNAL_ID_PATTERN,
    AsWritten,
    AuditedReason,
    CouponName,
    Currency,
    PlainDecimal,
    TaxName,
    TicketText,
)

Percent = Annotated[
    Decimal,
    Field(gt=0, le=100, allow_inf_nan=False),
    PlainDecimal,
    AfterValidator(AsWritten(digits=12, places=6)),
]
TaxPercent = Annotated[
    Decimal,
    Field(ge=0, le=100, allow_inf_nan=False),
    PlainDecimal,
    AfterValidator(AsWritten(digits=12, places=6)),
]
Country = Annotated[
    str,
    Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. DE, US (a code ISO assigns)."),
    AfterValidator(known_country),
]
State = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,3}$", description="ISO 3166-2 subdivision, e.g. CA.")]
MAX_COUPON_MINOR = 10**15
Minor = Annotated[int, Field(description="Money in minor units of the currency (cents for USD).")]


class _Audited(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: AuditedReason = Field(description="Why (kept in the audit record).")
    ticket: TicketText | None = None


class CouponCreate(_Audited):
    """``POST /admin/coupons``: ``percent_off``, or ``amount_off_minor`` with ``currency``."""

    name: CouponName = Field(description="What the discount line shows.")
    percent_off: Percent | None = Field(
        default=None, description="A percentage (exact decimal, 0 < p <= 100)."
    )
    amount_off_minor: StrictInt | None = Field(default=None, description="A fixed amount in minor units.")
    currency: Currency | None = Field(default=None, description="The currency of amount_off_minor.")
    duration: Literal["once", "repeating", "forever"]
    duration_periods: StrictInt | None = Field(
        default=None, description="repeating only: how many billing periods (1 to 1200)."
    )


class ArchiveRequest(_Audited):
    """Archive a coupon or a tax rate, or remove a discount."""


class DiscountCreate(_Audited):
    """``POST /admin/discounts``: attach a coupon to exactly one of a customer, a subscription (with its
    customer) or a plan version."""

    coupon_id: str = Field(pattern=r"^co_[0-9a-f]{24}$")
    customer_id: str | None = Field(default=None, pattern=EXTERNAL_ID_PATTERN)
    subscription_id: str | None = Field(default=None, max_length=64)
    plan_code: str | None = Field(default=None, pattern=CODE_PATTERN)
    plan_version: StrictInt | None = Field(default=None, ge=1)


class TaxRateCreate(_Audited):
    """``POST /admin/tax-rates``: a rate for a jurisdiction, a plan, or both."""

    display_name: TaxName = Field(description="e.g. VAT, Sales tax.")
    percentage: TaxPercent
    inclusive: StrictBool = Field(description="True: prices already contain it; false: added on top.")
    country: Country | None = None
    state: State | None = Field(default=None, description="Needs country.")
    plan_code: str | None = Field(default=None, pattern=CODE_PATTERN, description="Only lines of this plan.")


class JurisdictionSet(_Audited):
    """``PUT /admin/customers/{id}/tax-jurisdiction``: where the customer is taxed, and by whom."""

    country: Country
    state: State | None = None
    provider: Literal["neruba", "stripe_tax"] = Field(
        default="neruba",
        description="neruba: Neruba's tax rates apply; stripe_tax: Neruba computes no tax for the "
        "customer and Stripe Tax computes it when the invoice is synced (docs/billing.md, 'Tax delegated "
        "to Stripe Tax').",
    )


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Coupon(_Closed):
    id: str = Field(examples=["co_0123456789abcdef01234567"])
    object: Literal["coupon"]
    name: str
    percent_off: str | None
    amount_off_minor: Minor | None
    currency: str | None
    duration: Literal["once", "repeating", "forever"]
    duration_periods: int | None
    status: Literal["active", "archived"]
    created_at: str
    archived_at: str | None = None


class CouponList(_Closed):
    object: Literal["list"]
    data: list[Coupon]
    has_more: bool
    next_cursor: str | None


class Discount(_Closed):
    id: str = Field(examples=["di_0123456789abcdef01234567"])
    object: Literal["discount"]
    coupon_id: str
    coupon: Coupon
    target: Literal["customer", "subscription", "plan"]
    customer_id: str | None
    subscription_id: str | None
    plan_code: str | None
    plan_version: int | None
    status: Literal["active", "removed"]
    created_at: str
    removed_at: str | None = None


class DiscountList(_Closed):
    object: Literal["list"]
    data: list[Discount]
    has_more: bool
    next_cursor: str | None


class TaxRate(_Closed):
    id: str = Field(examples=["txr_0123456789abcdef01234567"])
    object: Literal["tax_rate"]
    display_name: str
    percentage: str
    inclusive: bool
    country: str | None
    state: str | None
    plan_code: str | None
    status: Literal["active", "archived"]
    created_at: str
    archived_at: str | None = None


class TaxRateList(_Closed):
    object: Literal["list"]
    data: list[TaxRate]
    has_more: bool
    next_cursor: str | None


class TaxJurisdiction(_Closed):
    object: Literal["tax_jurisdiction"]
    customer_id: str
    country: str | None
    state: str | None
    provider: Literal["neruba", "stripe_tax"] = Field(
        default="neruba", description="Who computes the tax of the customer's invoices."
    )
    tax_rates: list[TaxRate] = Field(description="The active rates the customer's invoices apply now.")
