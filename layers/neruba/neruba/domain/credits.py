"""Credit grants and how they pay invoice lines: pure rules, no storage.

Order of use (:func:`allocate`): lower ``priority`` number first, then the soonest ``expires_at``
(grants without expiry last), then the oldest ``effective_at``, then ``grant_id``. Across lines a grant
earlier in that order never keeps credit that could pay a line a later grant paid, and the total applied
is the most the grants can pay (docs/ledger.md, "Allocation across lines"). A grant is usable at
``at`` when ``effective_at <= at < expires_at``: a grant expiring at ``t`` is *not* usable at ``t``.

Example:
    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> g = CreditGrant("cg_1", "acme", "promotional", 1000, 1000, "USD", 0, t, None, None)
    >>> allocate([g], [Line("l1", None, 600), Line("l2", "api_calls", 600)], t)
    [CreditApplication(grant_id='cg_1', line_id='l1', amount_minor=600, kind='promotional'), \
CreditApplication(grant_id='cg_1', line_id='l2', amount_minor=400, kind='promotional')]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from neruba.domain.allocation import allocate_ranked

GrantKind = Literal["purchased", "promotional"]
GrantStatus = Literal["active", "expired", "voided"]
GRANT_KINDS: tuple[str, ...] = ("purchased", "promotional")


class CreditRuleError(ValueError):
    """A grant or an application breaks a credit rule."""


class LineLike(Protocol):
    """What allocation needs of an invoice line (``neruba.domain.pricing.InvoiceLine`` fits)."""

    @property
    def line_id(self) -> str: ...
    @property
    def meter_code(self) -> str | None: ...
    @property
    def amount_minor(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Line:
    """A minimal invoice line for allocation (tests, top-up checks)."""

    line_id: str
    meter_code: str | None
    amount_minor: int


@dataclass(frozen=True, slots=True)
class CreditGrant:
    """Credit given to a customer. ``meter_codes`` None means usable on any line."""

    grant_id: str
    customer_id: str
    kind: GrantKind
    amount_minor: int
    remaining_minor: int
    currency: str
    priority: int
    effective_at: datetime
    expires_at: datetime | None
    meter_codes: tuple[str, ...] | None
    status: GrantStatus = "active"
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in GRANT_KINDS:
            raise CreditRuleError(f"unknown grant kind {self.kind!r}")
        for value in (self.amount_minor, self.remaining_minor, self.priority):
            if isinstance(value, bool) or not isinstance(value, int):
                raise CreditRuleError("grant amounts and priority are integers")
        if self.amount_minor <= 0:
            raise CreditRuleError("a grant's amount is positive")
        if not 0 <= self.remaining_minor <= self.amount_minor:
            raise CreditRuleError("a grant's remainder is between 0 and its amount")
        if self.effective_at.tzinfo is None or (self.expires_at and self.expires_at.tzinfo is None):
            raise CreditRuleError("grant times are timezone-aware")
        if self.expires_at is not None and self.expires_at <= self.effective_at:
            raise CreditRuleError("a grant expires after it takes effect")

    def usable_at(self, at: datetime) -> bool:
        """Active, effective, not expired at ``at`` (expiry is exclusive), with a remainder."""
        return (
            self.status == "active"
            and self.remaining_minor > 0
            and self.effective_at <= at
            and (self.expires_at is None or at < self.expires_at)
        )

    def covers(self, meter_code: str | None) -> bool:
        """Whether the grant may pay a line of ``meter_code`` (restricted grants pay only their meters)."""
        return self.meter_codes is None or (meter_code is not None and meter_code in self.meter_codes)

    def sort_key(self) -> tuple[int, int, datetime, datetime, str]:
        far = datetime.max.replace(tzinfo=UTC)
        return (
            self.priority,
            1 if self.expires_at is None else 0,
            self.expires_at or far,
            self.effective_at,
            self.grant_id,
        )

    def consumed(self, amount_minor: int) -> CreditGrant:
        if not 0 < amount_minor <= self.remaining_minor:
            raise CreditRuleError("a grant never goes below zero")
        return replace(self, remaining_minor=self.remaining_minor - amount_minor)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.grant_id,
            "object": "credit_grant",
            "customer_id": self.customer_id,
            "kind": self.kind,
            "amount_minor": self.amount_minor,
            "remaining_minor": self.remaining_minor,
            "currency": self.currency,
            "priority": self.priority,
            "effective_at": self.effective_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "meter_codes": list(self.meter_codes) if self.meter_codes is not None else None,
            "status": self.status,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True, slots=True)
class CreditApplication:
    """``amount_minor`` of grant ``grant_id`` pays part of line ``line_id``; ``kind`` is the grant's."""

    grant_id: str
    line_id: str
    amount_minor: int
    kind: GrantKind | None = None


def grant_id_for(customer_id: str, idempotency_key: str) -> str:
    """Grant ids follow from the request's idempotency key, so a retried grant names the same grant."""
    return "cg_" + hashlib.sha256(f"{customer_id}\x1f{idempotency_key}".encode()).hexdigest()[:24]


def allocate(
    grants: Iterable[CreditGrant],
    lines: Sequence[LineLike],
    at: datetime,
    limit_minor: int | None = None,
) -> list[CreditApplication]:
    """Apply the grants usable at ``at`` to ``lines`` (docs/ledger.md, "Allocation across lines").

    Grants are taken in use order (:meth:`CreditGrant.sort_key`); each pays as much as it can without
    lowering what the grants before it pay, by moving them to other lines they may pay when that frees
    a line it may pay (``domain.allocation.allocate_ranked``). So the total applied is the most any
    allocation could apply, and no grant keeps a remainder that could pay a line a later grant paid.
    A grant pays first the lines fewer usable grants may pay, then lines in the order given.

    Never more than a line's amount nor a grant's remainder, nor ``limit_minor`` in all; lines of
    amount <= 0 take nothing. Applications come grant by grant in use order, lines in the order given.
    """
    if at.tzinfo is None:
        raise CreditRuleError("allocation time is timezone-aware")
    unpaid: dict[str, int] = {}
    meters: dict[str, str | None] = {}
    for line in lines:
        unpaid[line.line_id] = unpaid.get(line.line_id, 0) + max(0, int(line.amount_minor))
        meters.setdefault(line.line_id, line.meter_code)
    usable = sorted((g for g in grants if g.usable_at(at)), key=CreditGrant.sort_key)
    by_id = {g.grant_id: g for g in usable}
    paid = allocate_ranked(
        [(g.grant_id, g.remaining_minor) for g in usable],
        list(unpaid.items()),
        lambda grant_id, line_id: by_id[grant_id].covers(meters[line_id]),
        None if limit_minor is None else max(0, limit_minor),
    )
    return [
        CreditApplication(g.grant_id, line_id, paid[(g.grant_id, line_id)], g.kind)
        for g in usable
        for line_id in unpaid
        if (g.grant_id, line_id) in paid
    ]


def applied_by_grant(applications: Iterable[CreditApplication]) -> dict[str, int]:
    """Total applied per grant id."""
    out: dict[str, int] = {}
    for app in applications:
        out[app.grant_id] = out.get(app.grant_id, 0) + app.amount_minor
    return out


def with_kinds(
    applications: Iterable[CreditApplication], grants: Mapping[str, CreditGrant] | None
) -> list[CreditApplication]:
    """Fill in each application's grant kind from ``grants`` (id -> grant) where it is missing."""
    out = []
    for app in applications:
        if app.kind is None:
            grant = (grants or {}).get(app.grant_id)
            if grant is None:
                raise CreditRuleError(f"kind of grant {app.grant_id!r} unknown; pass the grants")
            app = replace(app, kind=grant.kind)
        out.append(app)
    return out


@dataclass(frozen=True, slots=True)
class AutoTopUpRule:
    """When available credit falls under ``threshold_minor``, invoice ``amount_minor`` of purchased credit.

    ``armed`` is False between a top-up request and the moment credit is back at or over the threshold,
    so one crossing yields one request.
    """

    customer_id: str
    currency: str
    threshold_minor: int
    amount_minor: int
    enabled: bool = True
    armed: bool = True
    crossings: int = 0

    def should_rearm(self, available_minor: int) -> bool:
        return self.enabled and not self.armed and available_minor >= self.threshold_minor


@dataclass(frozen=True, slots=True)
class TopUpRequest:
    """What billing must invoice: a purchased-credit top-up of ``amount_minor``."""

    request_id: str
    customer_id: str
    currency: str
    amount_minor: int
    available_minor: int
    threshold_minor: int
    requested_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "object": "top_up_request",
            "customer_id": self.customer_id,
            "currency": self.currency,
            "amount_minor": self.amount_minor,
            "available_minor": self.available_minor,
            "threshold_minor": self.threshold_minor,
            "requested_at": self.requested_at.isoformat(),
        }
