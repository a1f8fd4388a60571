"""The collaborators billing calls, injected: pricing, credits and the ledger.

Billing owns windows, invoices and their one transaction; it does not price usage or build ledger entries.
Those come through :class:`BillingDeps`, four narrow callables plus the interval arithmetic:

- ``rate_window(subscription, start, end) -> RatedLike``: the usage window, from stored aggregates;
- ``rate_opening(subscription, start, end) -> RatedLike``: the advance fee of the first period;
- ``apply_credits(customer_id, currency, lines, at) -> CreditsResult``: credit applications for the
  chargeable lines plus the TransactWriteItems actions that consume the grants;
- ``invoice_posting_items(request) -> list[action]``: the TransactWriteItems actions of the invoice's
  ledger posting, guarded by the posting's idempotency key;
- ``add_interval(anchor, interval, n)``: ``domain.periods.add_interval`` (tests pass a daily one).

:func:`default_deps` imports the real modules lazily by their contract names
(``neruba.logic.rating``, ``neruba.domain.credits``, ``neruba.dal.ledger``, ``neruba.logic.ledger``).

Example:
    >>> deps = BillingDeps(rate_window=rate, rate_opening=rate, apply_credits=no_credits,
    ...                    invoice_posting_items=lambda request: [])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from neruba.domain.periods import add_interval as _add_interval


class RatedLineLike(Protocol):
    """What billing reads from a priced line (``neruba.domain.pricing.InvoiceLine``)."""

    @property
    def line_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def meter_code(self) -> str | None: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def amount_minor(self) -> int: ...
    def to_dict(self) -> dict[str, Any]: ...


class RatedLike(Protocol):
    """What billing reads from a priced window (``neruba.domain.pricing.RatedWindow``)."""

    @property
    def currency(self) -> str: ...
    @property
    def lines(self) -> Sequence[RatedLineLike]: ...
    @property
    def subtotal_minor(self) -> int: ...


class ApplicationLike(Protocol):
    """A credit applied to a line (``neruba.domain.credits.CreditApplication``)."""

    @property
    def grant_id(self) -> str: ...
    @property
    def line_id(self) -> str: ...
    @property
    def amount_minor(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """A line as the credit allocator sees it (priced lines and adjustment lines alike)."""

    line_id: str
    meter_code: str | None
    amount_minor: int


@dataclass(frozen=True, slots=True)
class CreditsResult:
    """Applied credits and the grant-consumption actions to commit with the invoice."""

    applications: list[ApplicationLike] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PostingRequest:
    """What the ledger posting of an invoice (or of a revision of a draft) is built from.

    ``revision`` is 0 for the invoice itself; a draft recomputed later posts the *difference* as revision
    1, 2, ... (``subtotal_minor`` may then be negative, ``applications`` empty).
    """

    customer_id: str
    invoice_id: str
    currency: str
    subtotal_minor: int
    applications: list[ApplicationLike]
    at: datetime
    revision: int = 0

    @property
    def posting_key(self) -> str:
        """The idempotency key of this posting: the invoice id, then ``{invoice_id}:rev{n}``."""
        return self.invoice_id if self.revision == 0 else f"{self.invoice_id}:rev{self.revision}"


RateFn = Callable[[dict[str, Any], datetime, datetime], RatedLike]
CreditsFn = Callable[[str, str, Sequence[ChargeLine], datetime], CreditsResult]
PostingFn = Callable[[PostingRequest], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class BillingDeps:
    """The injected collaborators of the billing worker, scheduler and reruns."""

    rate_window: RateFn
    rate_opening: RateFn
    apply_credits: CreditsFn
    invoice_posting_items: PostingFn
    add_interval: Callable[[datetime, str, int], datetime] = _add_interval


def default_deps() -> BillingDeps:  # pragma: no cover - wired when the pricing and ledger branches merge
    """The real collaborators, imported lazily by their contract names.

    - ``neruba.logic.rating.rate_window(plans, usage, subscription, start, end)`` and
      ``rate_opening(plans, subscription, start, end)``;
    - ``neruba.dal.ledger.LedgerRepository(ledger_table).grants(customer_id, currency, at)``,
      ``neruba.domain.credits.allocate(grants, lines, at)``,
      ``LedgerRepository.grant_consumption_items(applications)``;
    - ``neruba.logic.ledger.invoice_posting(customer_id, invoice_id, currency, subtotal_minor,
      applications, at)`` and ``LedgerRepository.posting_items(posting)``.
    """
    import importlib

    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.settings import get_settings

    settings = get_settings()
    rating: Any = importlib.import_module("neruba.logic.rating")
    credits: Any = importlib.import_module("neruba.domain.credits")
    ledger_dal: Any = importlib.import_module("neruba.dal.ledger")
    ledger_logic: Any = importlib.import_module("neruba.logic.ledger")
    plans = PlansRepository(settings.catalog_table)
    usage = UsageRepository(settings.usage_table)
    ledger = ledger_dal.LedgerRepository(settings.ledger_table)

    def rate_window(subscription: dict[str, Any], start: datetime, end: datetime) -> RatedLike:
        rated: RatedLike = rating.rate_window(plans, usage, subscription, start, end)
        return rated

    def rate_opening(subscription: dict[str, Any], start: datetime, end: datetime) -> RatedLike:
        rated: RatedLike = rating.rate_opening(plans, subscription, start, end)
        return rated

    def apply_credits(
        customer_id: str, currency: str, lines: Sequence[ChargeLine], at: datetime
    ) -> CreditsResult:
        grants = ledger.grants(customer_id, currency, at)
        applications = credits.allocate(grants, list(lines), at) if grants else []
        items = ledger.grant_consumption_items(applications) if applications else []
        return CreditsResult(list(applications), list(items))

    def invoice_posting_items(request: PostingRequest) -> list[dict[str, Any]]:
        posting = ledger_logic.invoice_posting(
            request.customer_id,
            request.posting_key,
            request.currency,
            request.subtotal_minor,
            request.applications,
            request.at,
        )
        return list(ledger.posting_items(posting))

    return BillingDeps(rate_window, rate_opening, apply_credits, invoice_posting_items)
