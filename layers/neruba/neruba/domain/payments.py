"""What is still refundable of a payment: refunds and disputes never take back more than was paid.

A payment record tracks one payment of one customer in one currency (with the invoice it paid, if any):

- ``paid_minor``: what the payment collected;
- ``refunded_minor``: what refunds gave back;
- ``disputed_minor``: what disputes hold (open) or took (lost); a won dispute gives it back;
- ``credited_minor``: what credit notes took back from it as a balance in the customer's favour or
  returned outside the system (their refunds count in ``refunded_minor``);
- ``refundable_minor = paid - refunded - disputed - credited``, never below zero.

Each move returns the new record or raises :class:`RefundableExceededError`; the storage applies the
same rule as a conditional write on ``refundable_minor`` (``neruba.dal.payments``), so two concurrent
refunds can never both pass.

Example:
    >>> p = PaymentRecord("acme", "ch_1", "in_1", "USD", paid_minor=1000)
    >>> p.refund(400).open_dispute(500).refundable_minor
    100
    >>> p.refund(1001)
    Traceback (most recent call last):
    ...
    neruba.domain.payments.RefundableExceededError: 1001 exceeds the 1000 still refundable of payment ch_1
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

DisputeOutcome = Literal["won", "lost"]


class RefundableExceededError(ValueError):
    """A refund or dispute larger than what is still refundable of the payment."""


def _amount(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("amounts are positive integer minor units")
    return value


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    customer_id: str
    payment_id: str
    invoice_id: str | None
    currency: str
    paid_minor: int
    refunded_minor: int = 0
    disputed_minor: int = 0
    lost_minor: int = 0
    credited_minor: int = 0

    def __post_init__(self) -> None:
        _amount(self.paid_minor)
        if min(self.refunded_minor, self.disputed_minor, self.lost_minor, self.credited_minor) < 0:
            raise ValueError("refunded, disputed and lost amounts are not negative")
        if self.lost_minor > self.disputed_minor or self.refundable_minor < 0:
            raise ValueError("a payment record never takes back more than was paid")

    @property
    def refundable_minor(self) -> int:
        return self.paid_minor - self.refunded_minor - self.disputed_minor - self.credited_minor

    def _check(self, amount_minor: int, what: str) -> int:
        if _amount(amount_minor) > self.refundable_minor:
            raise RefundableExceededError(
                f"{amount_minor} exceeds the {self.refundable_minor} still refundable"
                f" of payment {self.payment_id}" + (f" ({what})" if what != "refund" else "")
            )
        return amount_minor

    def refund(self, amount_minor: int) -> PaymentRecord:
        amount = self._check(amount_minor, "refund")
        return dataclasses.replace(self, refunded_minor=self.refunded_minor + amount)

    def pay_out_credit(self, amount_minor: int) -> PaymentRecord:
        """Customer credit a credit note took from this payment, paid out as a refund after all."""
        amount = _amount(amount_minor)
        if amount > self.credited_minor:
            raise RefundableExceededError(
                f"{amount} exceeds the {self.credited_minor} credited from payment {self.payment_id}"
            )
        return dataclasses.replace(
            self, credited_minor=self.credited_minor - amount, refunded_minor=self.refunded_minor + amount
        )

    def credit(self, amount_minor: int) -> PaymentRecord:
        """A credit note takes ``amount_minor`` back as customer credit (or returned out of band)."""
        amount = self._check(amount_minor, "credit note")
        return dataclasses.replace(self, credited_minor=self.credited_minor + amount)

    def open_dispute(self, amount_minor: int) -> PaymentRecord:
        amount = self._check(amount_minor, "dispute")
        return dataclasses.replace(self, disputed_minor=self.disputed_minor + amount)

    def close_dispute(self, amount_minor: int, outcome: DisputeOutcome) -> PaymentRecord:
        """``won`` gives the held amount back (refundable again); ``lost`` keeps it taken."""
        amount = _amount(amount_minor)
        if amount > self.disputed_minor - self.lost_minor:
            raise ValueError(f"payment {self.payment_id} holds less than {amount} in open disputes")
        if outcome == "won":
            return dataclasses.replace(self, disputed_minor=self.disputed_minor - amount)
        return dataclasses.replace(self, lost_minor=self.lost_minor + amount)

    def to_dict(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "invoice_id": self.invoice_id,
            "currency": self.currency,
            "paid_minor": self.paid_minor,
            "refunded_minor": self.refunded_minor,
            "disputed_minor": self.disputed_minor,
            "credited_minor": self.credited_minor,
            "refundable_minor": self.refundable_minor,
        }
