"""Bodies of the operator money actions (admin scope). Each needs a ``reason`` and accepts a ``ticket``.

Example:
    >>> GrantCreate(kind="promotional", amount_minor=5000, reason="launch promo").priority
    0
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from neruba.models.fields import CODE_PATTERN, Currency, Reason, Ticket
from neruba.validation import FieldRuleError

Amount = Annotated[StrictInt, Field(gt=0, le=10**12)]
RefId = Annotated[str | None, Field(default=None, min_length=1, max_length=128)]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
    ticket: Ticket = None


class GrantCreate(_Action):
    """Grant credit: purchased (paid, held as a liability) or promotional (an expense when spent)."""

    kind: Literal["purchased", "promotional"]
    amount_minor: Amount
    currency: Currency | None = None
    priority: Annotated[StrictInt, Field(ge=0, le=1000)] = 0
    effective_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    meter_codes: (
        Annotated[list[Annotated[str, Field(pattern=CODE_PATTERN)]], Field(min_length=1, max_length=50)]
        | None
    ) = None

    @model_validator(mode="after")
    def _expiry_after_start(self) -> GrantCreate:
        if self.expires_at and self.effective_at and self.expires_at <= self.effective_at:
            raise FieldRuleError("expires_at", "must be after effective_at")
        return self


class GrantVoid(_Action):
    """Void a grant's unused remainder."""


class BalanceAdjustment(_Action):
    """Correct the amount due: positive ``amount_minor`` lowers it, negative raises it."""

    amount_minor: Annotated[StrictInt, Field(ge=-(10**12), le=10**12)]
    reason_code: Literal["goodwill", "correction", "refund", "dispute"]
    currency: Currency | None = None

    @model_validator(mode="after")
    def _non_zero(self) -> BalanceAdjustment:
        if self.amount_minor == 0:
            raise FieldRuleError("amount_minor", "must not be 0")
        return self


class _AgainstPayment(_Action):
    amount_minor: Amount
    currency: Currency | None = None
    payment_id: RefId = None
    invoice_id: RefId = None

    @model_validator(mode="after")
    def _names_what(self) -> _AgainstPayment:
        if not (self.payment_id or self.invoice_id):
            raise FieldRuleError("payment_id", "is required unless invoice_id is given (name one of the two)")
        return self


class RefundCreate(_AgainstPayment):
    """Record money given back against an invoice or a payment."""

    credit_balance: StrictBool = Field(
        default=False,
        description="true: pay out the customer's credit balance that credit notes after payment left on"
        " this payment's invoice (credited_balance_minor), instead of what is still refundable of it.",
    )


class DisputeCreate(_AgainstPayment):
    """Record a dispute (chargeback) against an invoice or a payment; the funds are held."""


class DisputeClose(_Action):
    """Close a dispute: ``won`` returns the funds, ``lost`` writes them off."""

    outcome: Literal["won", "lost"]


class AutoTopUpRuleIn(_Action):
    """When available credit falls under ``threshold_minor``, invoice ``amount_minor`` of credit."""

    threshold_minor: Annotated[StrictInt, Field(ge=0, le=10**12)]
    amount_minor: Amount
    currency: Currency | None = None
    enabled: StrictBool = True
