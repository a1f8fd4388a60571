"""Double-entry ledger rules: accounts, entries, postings and the balances they add up to.

Every posting belongs to one customer and one currency and has at least two entries whose debits equal
their credits, in integer minor units. Postings are immutable: a correction is a new posting.

Balances are kept *debit-positive*: ``balance = debits - credits``. For an account whose normal balance
is a credit (a liability or an income) the natural amount is therefore ``-balance``; :func:`natural`
gives it.

Example:
    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> p = Posting.build(
    ...     idempotency_key="payment:pay_1", customer_id="acme", currency="USD",
    ...     entries=[Entry("cash", debit_minor=500), Entry("receivable", credit_minor=500)],
    ...     reason="payment", source="payment", source_id="pay_1", actor="system", at=t)
    >>> Book().apply(p).balance("acme", "USD", "receivable")
    -500
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Normal = Literal["debit", "credit"]
Source = Literal["invoice", "payment", "grant", "operator", "stripe", "expiry"]
SOURCES: tuple[str, ...] = ("invoice", "payment", "grant", "operator", "stripe", "expiry")

# Account name -> its normal balance (which side increases it).
ACCOUNTS: dict[str, Normal] = {
    "receivable": "debit",  # asset: what the customer owes (negative: paid more than billed)
    "cash": "debit",  # asset: money received from the customer, net of refunds and disputed funds
    "prepaid_credit": "credit",  # liability: credit the customer can still spend (per grant)
    "promotional_allowance": "debit",  # contra-liability: the part of prepaid_credit nobody paid for
    "revenue": "credit",  # income: invoiced amounts at list price
    "promotional_credit_expense": "debit",  # contra-revenue: promotional credit spent on invoices
    "breakage": "credit",  # income: purchased credit that expired or was voided unused
    "refunds": "debit",  # contra-revenue: money given back
    "disputes": "debit",  # asset: funds held by the card network while a dispute is open
    "dispute_losses": "debit",  # expense: disputes lost, or balances written off as disputed
    "goodwill_expense": "debit",  # expense: balance reductions granted as goodwill
    "tax_payable": "credit",  # liability: tax invoiced, owed to the tax authorities
}
NEVER_NEGATIVE: frozenset[str] = frozenset({"cash"})
"""Accounts whose (debit-positive) balance never goes below zero: a customer's cash cannot be given back
or held by disputes beyond what was received. Storage enforces it with a condition on the balance."""


class LedgerRuleError(ValueError):
    """A posting or entry breaks a rule of double entry."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One side of a posting: exactly one of ``debit_minor`` / ``credit_minor`` is positive.

    ``grant_id`` names the credit grant a ``prepaid_credit`` / ``promotional_allowance`` entry concerns,
    so the credit available per grant is itself a ledger balance.
    """

    account: str
    debit_minor: int = 0
    credit_minor: int = 0
    grant_id: str | None = None

    def __post_init__(self) -> None:
        if self.account not in ACCOUNTS:
            raise LedgerRuleError(f"unknown account {self.account!r}")
        for value in (self.debit_minor, self.credit_minor):
            if isinstance(value, bool) or not isinstance(value, int):
                raise LedgerRuleError("entry amounts are integer minor units")
            if value < 0:
                raise LedgerRuleError("entry amounts are not negative")
        if (self.debit_minor > 0) == (self.credit_minor > 0):
            raise LedgerRuleError("an entry is either a debit or a credit, and not zero")

    @property
    def signed(self) -> int:
        """Debit-positive amount."""
        return self.debit_minor - self.credit_minor

    @property
    def balance_key(self) -> str:
        """The balance this entry moves: the account, or ``account#grant`` for per-grant accounts."""
        return f"{self.account}#{self.grant_id}" if self.grant_id else self.account

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"account": self.account}
        if self.debit_minor:
            out["debit_minor"] = self.debit_minor
        if self.credit_minor:
            out["credit_minor"] = self.credit_minor
        if self.grant_id:
            out["grant_id"] = self.grant_id
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        return cls(
            account=str(data["account"]),
            debit_minor=int(data.get("debit_minor", 0)),
            credit_minor=int(data.get("credit_minor", 0)),
            grant_id=data.get("grant_id"),
        )


def debit(account: str, amount_minor: int, grant_id: str | None = None) -> Entry:
    return Entry(account, debit_minor=amount_minor, grant_id=grant_id)


def credit(account: str, amount_minor: int, grant_id: str | None = None) -> Entry:
    return Entry(account, credit_minor=amount_minor, grant_id=grant_id)


def posting_id_for(customer_id: str, idempotency_key: str) -> str:
    """The posting id is derived from its idempotency key: a retry names the same posting."""
    digest = hashlib.sha256(f"{customer_id}\x1f{idempotency_key}".encode()).hexdigest()
    return "pst_" + digest[:24]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise LedgerRuleError("posting times are timezone-aware")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Posting:
    """A balanced, immutable set of entries for one customer in one currency."""

    posting_id: str
    idempotency_key: str
    customer_id: str
    currency: str
    entries: tuple[Entry, ...]
    reason: str
    source: str
    source_id: str | None
    actor: str
    at: datetime
    effective_at: datetime
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.entries) < 2:
            raise LedgerRuleError("a posting has at least two entries")
        debits = sum(e.debit_minor for e in self.entries)
        credits = sum(e.credit_minor for e in self.entries)
        if debits != credits:
            raise LedgerRuleError(f"debits {debits} != credits {credits}")
        if debits == 0:
            raise LedgerRuleError("a posting moves money")
        if not (len(self.currency) == 3 and self.currency.isupper()):
            raise LedgerRuleError(f"bad currency {self.currency!r}")
        if self.source not in SOURCES:
            raise LedgerRuleError(f"unknown source {self.source!r}")
        if not self.idempotency_key or not self.customer_id or not self.reason or not self.actor:
            raise LedgerRuleError("idempotency_key, customer_id, reason and actor are required")
        _aware(self.at)
        _aware(self.effective_at)

    @classmethod
    def build(
        cls,
        *,
        idempotency_key: str,
        customer_id: str,
        currency: str,
        entries: Iterable[Entry],
        reason: str,
        source: str,
        source_id: str | None,
        actor: str,
        at: datetime,
        effective_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Posting:
        """A validated posting whose id follows from ``(customer_id, idempotency_key)``."""
        return cls(
            posting_id=posting_id_for(customer_id, idempotency_key),
            idempotency_key=idempotency_key,
            customer_id=customer_id,
            currency=currency,
            entries=tuple(entries),
            reason=reason,
            source=source,
            source_id=source_id,
            actor=actor,
            at=_aware(at),
            effective_at=_aware(effective_at or at),
            metadata=dict(metadata or {}),
        )

    @property
    def total_minor(self) -> int:
        """The posting's size: the sum of its debits, which equals the sum of its credits (every posting
        balances). It is not an amount due nor a signed change of any balance: read the entries (or
        ``deltas()``) for that."""
        return sum(e.debit_minor for e in self.entries)

    def deltas(self) -> dict[str, int]:
        """Debit-positive change of each balance key this posting makes."""
        out: dict[str, int] = defaultdict(int)
        for entry in self.entries:
            out[entry.balance_key] += entry.signed
        return dict(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.posting_id,
            "object": "ledger_posting",
            "idempotency_key": self.idempotency_key,
            "customer_id": self.customer_id,
            "currency": self.currency,
            "entries": [e.to_dict() for e in self.entries],
            "total_minor": self.total_minor,
            "reason": self.reason,
            "source": self.source,
            "source_id": self.source_id,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "effective_at": self.effective_at.isoformat(),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Posting:
        return cls(
            posting_id=str(data["id"]),
            idempotency_key=str(data["idempotency_key"]),
            customer_id=str(data["customer_id"]),
            currency=str(data["currency"]),
            entries=tuple(Entry.from_dict(e) for e in data["entries"]),
            reason=str(data["reason"]),
            source=str(data["source"]),
            source_id=data.get("source_id"),
            actor=str(data["actor"]),
            at=datetime.fromisoformat(data["at"]),
            effective_at=datetime.fromisoformat(data["effective_at"]),
            metadata=dict(data.get("metadata") or {}),
        )


def natural(account: str, balance: int) -> int:
    """The balance in the account's own direction (a liability's credit balance as a positive number)."""
    return balance if ACCOUNTS[account] == "debit" else -balance


class Book:
    """An in-memory ledger: applies postings once each and sums their entries (tests, reconciliation)."""

    def __init__(self) -> None:
        self.postings: dict[tuple[str, str], Posting] = {}
        self.balances: dict[tuple[str, str, str], int] = defaultdict(int)

    def apply(self, posting: Posting) -> Book:
        key = (posting.customer_id, posting.idempotency_key)
        if key in self.postings:
            return self
        for balance_key, delta in posting.deltas().items():
            now = self.balances[(posting.customer_id, posting.currency, balance_key)]
            if balance_key in NEVER_NEGATIVE and now + delta < 0:
                raise LedgerRuleError(f"{balance_key} would go below zero ({now} {delta:+d})")
        self.postings[key] = posting
        for balance_key, delta in posting.deltas().items():
            self.balances[(posting.customer_id, posting.currency, balance_key)] += delta
        return self

    def balance(self, customer_id: str, currency: str, balance_key: str) -> int:
        return self.balances.get((customer_id, currency, balance_key), 0)


def summarise(balances: Mapping[str, int]) -> dict[str, Any]:
    """Customer-facing view of debit-positive balances keyed by ``account`` / ``account#grant``.

    Example:
        >>> summarise({"receivable": 700, "cash": 300, "prepaid_credit#cg_1": -200})["amount_due_minor"]
        700
    """
    by_account: dict[str, int] = defaultdict(int)
    by_grant: dict[str, int] = {}
    for key, value in balances.items():
        account, _, grant = key.partition("#")
        by_account[account] += value
        if account == "prepaid_credit" and grant:
            by_grant[grant] = natural("prepaid_credit", value)
    return {
        "amount_due_minor": by_account.get("receivable", 0),
        "credit_available_minor": natural("prepaid_credit", by_account.get("prepaid_credit", 0)),
        "credit_available_by_grant": {g: v for g, v in sorted(by_grant.items()) if v},
        "paid_to_date_minor": by_account.get("cash", 0),
        "accounts": {a: natural(a, v) for a, v in sorted(by_account.items()) if v},
    }
