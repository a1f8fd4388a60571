"""Usage limits of a customer (hard caps, soft caps, alerts) as the API takes and shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationInfo, field_validator

from neruba.domain.periods import fits_calendar
from neruba.models.fields import CODE_PATTERN, AwareInstant, QuantityText, Reason, StaticValue, Ticket

Interval = Literal["day", "week", "month", "quarter", "year"]
MAX_METERS = 20
MAX_ALERTS = 10
MAX_MINOR = 10**15
AmountLevel = Annotated[StrictInt, Field(ge=1, le=MAX_MINOR)]
BalanceLevel = Annotated[StrictInt, Field(ge=0, le=MAX_MINOR)]


class MeterLimitIn(BaseModel):
    """One meter's limits, in the meter's units (a count meter's events, a sum meter's total)."""

    model_config = ConfigDict(extra="forbid")
    meter_code: str = Field(pattern=CODE_PATTERN)
    hard_cap: QuantityText | None = Field(
        default=None, description="Events that would take the period's usage past it are refused over_limit."
    )
    soft_cap: QuantityText | None = Field(
        default=None, description="Only alerts (alert.triggered, kind soft_cap)."
    )
    alerts: list[QuantityText] = Field(
        default_factory=list, max_length=MAX_ALERTS, description="Usage levels that fire alert.triggered."
    )
    hard_cap_amount_minor: AmountLevel | None = Field(
        default=None,
        description="A cap on the meter's rated amount in the period, in minor units of the plan's currency:"
        " events that would take it past the cap are refused over_limit (docs/limits.md).",
    )


class FeatureIn(BaseModel):
    """A feature the customer is entitled to: on or off (``boolean``), a value (``static``), or an
    allowance of a count or sum meter's usage per limit period (``metered``)."""

    model_config = ConfigDict(extra="forbid")
    feature: str = Field(pattern=CODE_PATTERN)
    kind: Literal["boolean", "static", "metered"]
    enabled: StrictBool = Field(default=True, description="boolean: whether the customer has the feature.")
    value: StaticValue | None = Field(default=None, description="static: the value granted (one line).")
    meter_code: str | None = Field(default=None, pattern=CODE_PATTERN, description="metered: the meter.")
    limit: QuantityText | None = Field(default=None, description="metered: the allowance per period.")


class PlanDefaultsIn(BaseModel):
    """What a plan version sets for every customer subscribed to it, unless the customer has its own
    setting (per meter, per feature, and the threshold; docs/limits.md, "Plan-version defaults")."""

    model_config = ConfigDict(extra="forbid")
    meters: list[MeterLimitIn] = Field(default_factory=list, max_length=MAX_METERS)
    features: list[FeatureIn] = Field(default_factory=list, max_length=MAX_METERS)
    invoice_threshold_minor: StrictInt | None = Field(
        default=None,
        ge=1,
        le=10**15,
        description="Invoice the open period early when what it has not invoiced reaches this amount "
        "(minor units of the plan's currency); the customer's own threshold wins.",
    )


class MeterDefaultView(BaseModel):
    """One meter's limits as a plan version sets them (decimals as text)."""

    model_config = ConfigDict(extra="forbid")
    meter_code: str
    hard_cap: str | None = None
    soft_cap: str | None = None
    alerts: list[str] = Field(default_factory=list)
    hard_cap_amount_minor: int | None = None


class FeatureDefaultView(BaseModel):
    """One feature as a plan version grants it."""

    model_config = ConfigDict(extra="forbid")
    feature: str
    kind: Literal["boolean", "static", "metered"]
    enabled: bool = True
    value: str | None = None
    meter_code: str | None = None
    limit: str | None = None


class PlanDefaultsView(BaseModel):
    """A plan version's defaults as answered (the shape of :class:`PlanDefaultsIn`)."""

    model_config = ConfigDict(extra="forbid")
    meters: list[MeterDefaultView] = Field(default_factory=list)
    features: list[FeatureDefaultView] = Field(default_factory=list)
    invoice_threshold_minor: int | None = None


class EntitlementGrantIn(BaseModel):
    """Raises a metered feature's limit by ``amount`` from now until ``expires_at`` (default: the end of
    the current limit period)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"amount": "500", "reason": "launch week", "ticket": "SUP-12"}]},
    )
    amount: QuantityText = Field(description="Units of the feature's meter added to its limit.")
    expires_at: AwareInstant | None = Field(
        default=None, description="When the grant ends (exclusive); default: the current period's end."
    )
    reason: Reason = Field(description="Why (kept in the audit record).")
    ticket: Ticket = None


class UsageLimitsIn(BaseModel):
    """Replaces every usage limit of the customer (an empty ``meters`` removes them)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "interval": "month",
                    "meters": [{"meter_code": "api_calls", "hard_cap": "1000", "alerts": ["800"]}],
                    "reason": "plan limit",
                }
            ]
        },
    )
    interval: Interval = "month"
    period_anchor: AwareInstant | None = Field(
        default=None,
        description="The phase of the limit periods (default: calendar periods in UTC, from 2000-01-01):"
        " periods run before it as after it, so a future anchor is accepted; its first period must end"
        " by the end of year 9999.",
    )
    meters: list[MeterLimitIn] = Field(default_factory=list, max_length=MAX_METERS)
    features: list[FeatureIn] = Field(default_factory=list, max_length=MAX_METERS)
    spend_alerts_minor: list[AmountLevel] = Field(
        default_factory=list,
        max_length=MAX_ALERTS,
        description="Levels of the period's rated spend (minor units) that fire alert.triggered"
        " (kind spend).",
    )
    balance_alerts_minor: list[BalanceLevel] = Field(
        default_factory=list,
        max_length=MAX_ALERTS,
        description="Levels of the usable credit balance (minor units) whose downward crossing fires"
        " alert.triggered (kind balance).",
    )
    reason: Reason | None = Field(default=None, description="Why (kept in the audit record).")
    ticket: Ticket = None

    @field_validator("period_anchor")
    @classmethod
    def _anchor_fits_calendar(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        interval = info.data.get("interval")
        if value is not None and interval is not None and not fits_calendar(value, interval):
            raise ValueError(f"a {interval} period from this anchor would end after the year 9999")
        return value


class FiredAlert(BaseModel):
    """A level that fired in the current limit period (once per level and period; docs/limits.md,
    "Alerts that fired")."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "alert": "soft:800",
                    "kind": "soft_cap",
                    "meter_code": "api_calls",
                    "threshold": "800",
                    "threshold_minor": None,
                    "currency": None,
                    "period_start": "2026-03-01T00:00:00Z",
                    "period_end": "2026-04-01T00:00:00Z",
                }
            ]
        },
    )
    alert: str = Field(description="The level's identifier, the `alert` of its alert.triggered event.")
    kind: Literal["usage", "soft_cap", "hard_cap", "hard_cap_amount", "spend"] = Field(
        description="usage: an alert level; soft_cap / hard_cap: the meter's caps in units;"
        " hard_cap_amount: the meter's cap in amount; spend: a spend alert."
    )
    meter_code: str | None = Field(description="The meter (null for a spend alert).")
    threshold: str | None = Field(description="usage, soft_cap, hard_cap: the level in units of the meter.")
    threshold_minor: int | None = Field(
        description="spend, hard_cap_amount: the level in minor units of the currency (null for the others)."
    )
    currency: str | None = Field(
        description="spend, hard_cap_amount: the customer's currency (null for the others)."
    )
    period_start: str = Field(description="The limit period the level fired in.")
    period_end: str


class MeterLimitView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    meter_code: str
    hard_cap: str | None
    soft_cap: str | None
    alerts: list[str]
    usage: str = Field(description="The meter's usage in the current period, as counted so far.")
    remaining: str | None = Field(description="Until the hard cap (None without one).")
    alerts_fired: list[FiredAlert] = Field(
        description="The meter's levels that fired in the current period, lowest first."
    )
    hard_cap_amount_minor: int | None = Field(default=None, description="The cap on the meter's amount.")
    amount_minor: int | None = Field(
        default=None, description="The meter's rated amount in the current period (with an amount cap)."
    )


class UsageLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: Literal["usage_limits"]
    customer_id: str
    period_anchor: str
    interval: Interval
    period_start: str
    period_end: str
    meters: list[MeterLimitView]
    spend_alerts_minor: list[int] = Field(default_factory=list)
    spend_minor: int | None = Field(
        default=None, description="The period's rated spend so far (with spend alerts)."
    )
    spend_alerts_fired: list[FiredAlert] = Field(
        default_factory=list, description="The spend levels that fired in the current period, lowest first."
    )
    balance_alerts_minor: list[int] = Field(default_factory=list)


class Entitlement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: Literal["entitlement"]
    customer_id: str
    feature: str
    kind: Literal["boolean", "static", "metered"]
    access: bool = Field(description="Whether the customer may use the feature now.")
    value: str | None = Field(description="static: the value granted.")
    meter_code: str | None
    usage: str | None = Field(description="metered: the usage in the current period.")
    limit: str | None = Field(description="metered: the allowance of the period, grants in force included.")
    granted: str | None = Field(
        default=None, description="metered: what grants in force add to the feature's own limit."
    )
    remaining: str | None
    resets_at: str | None = Field(description="metered: when the period (and the usage) resets.")


class EntitlementList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: Literal["list"]
    data: list[Entitlement]


class EntitlementGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: Literal["entitlement_grant"]
    id: str
    customer_id: str
    feature: str
    amount: str
    starts_at: str
    expires_at: str
    reason: str
    ticket: str | None
    entitlement: Entitlement = Field(description="The feature as it stands with the grant.")
