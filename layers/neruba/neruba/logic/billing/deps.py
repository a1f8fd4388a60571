"""The collaborators billing calls, injected: pricing, credits and the ledger.

Billing owns windows, invoices and their one transaction; it does not price usage or build ledger entries.
Those come through :class:`BillingDeps`, four narrow callables plus the interval arithmetic:

- ``rate_window(subscription, start, end) -> RatedLike``: the usage window, from stored aggregates;
- ``rate_opening(subscription, start, end) -> RatedLike``: the advance fee of the first period;
- ``apply_credits(customer_id, currency, lines, at) -> CreditsResult``: credit applications for the
  chargeable lines plus the TransactWriteItems actions that consume the grants;
- ``invoice_posting_items(request) -> list[action]``: the TransactWriteItems actions of the invoice's
  ledger posting, guarded by the posting's idempotency key;
- ``add_interval(anchor, interval, n)``: ``domain.periods.add_interval`` (tests pass a daily one);
- ``auto_top_up(ctx, customer_id, currency, at) -> invoice id | None`` (optional): called after a window
  that consumed credit committed; ``logic.billing.top_up.auto_top_up`` on the ledger in production.

:func:`default_deps` wires the real modules: ``neruba.logic.pricing.rating``, ``neruba.domain.credits``,
``neruba.dal.ledger`` and ``neruba.logic.ledger.postings`` (imported inside the function, for cold starts).

Example:
    >>> deps = BillingDeps(rate_window=rate, rate_opening=rate, apply_credits=no_credits,
    ...                    invoice_posting_items=lambda request: [])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from neruba.domain.periods import add_interval as _add_interval

if TYPE_CHECKING:
    from neruba.dal.ledger import LedgerRepository
    from neruba.domain.credits import CreditApplication
    from neruba.domain.ledger import Posting
    from neruba.logic.billing.worker import Billing


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
        """The ledger idempotency key: ``invoice:{invoice_id}`` (the key
        ``logic.ledger.postings.invoice_posting`` gives an invoice), then ``invoice:{invoice_id}:rev{n}``
        for the revisions of a draft."""
        base = f"invoice:{self.invoice_id}"
        return base if self.revision == 0 else f"{base}:rev{self.revision}"


RateFn = Callable[[dict[str, Any], datetime, datetime], RatedLike]
CreditsFn = Callable[[str, str, Sequence[ChargeLine], datetime], CreditsResult]
PostingFn = Callable[[PostingRequest], list[dict[str, Any]]]
TopUpFn = Callable[["Billing", str, str, datetime], "str | None"]


@dataclass(frozen=True, slots=True)
class BillingDeps:
    """The injected collaborators of the billing worker, scheduler and reruns."""

    rate_window: RateFn
    rate_opening: RateFn
    apply_credits: CreditsFn
    invoice_posting_items: PostingFn
    add_interval: Callable[[datetime, str, int], datetime] = _add_interval
    auto_top_up: TopUpFn | None = None


def default_deps() -> BillingDeps:
    """The real collaborators on the configured tables.

    - ``neruba.logic.pricing.rating.rate_window(plans, usage, subscription, start, end)`` and
      ``rate_opening(plans, subscription)`` (the opening window is the first period: no start/end);
    - credits: ``LedgerRepository.grants(customer_id, currency, at)``, ``neruba.domain.credits.allocate``
      and ``LedgerRepository.grant_consumption_items(applications, at=at)``;
    - postings: :func:`posting_for` and ``LedgerRepository.posting_items`` (item 0 is the guard);
    - auto top-up: ``logic.billing.top_up.auto_top_up`` on the ledger.
    """
    from neruba.dal.ledger import LedgerRepository
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.logic.pricing import rating
    from neruba.settings import get_settings

    settings = get_settings()
    plans = PlansRepository(settings.catalog_table)
    usage = UsageRepository(settings.usage_table)
    ledger = LedgerRepository(settings.ledger_table)

    def rate_window(subscription: dict[str, Any], start: datetime, end: datetime) -> RatedLike:
        return rating.rate_window(plans, usage, subscription, start, end)

    def rate_opening(subscription: dict[str, Any], start: datetime, end: datetime) -> RatedLike:
        return rating.rate_opening(plans, subscription)

    def apply_credits(
        customer_id: str, currency: str, lines: Sequence[ChargeLine], at: datetime
    ) -> CreditsResult:
        return credits_for(ledger, customer_id, currency, lines, at)

    def invoice_posting_items(request: PostingRequest) -> list[dict[str, Any]]:
        posting = posting_for(request)
        return ledger.posting_items(posting) if posting is not None else []

    def auto_top_up(ctx: Billing, customer_id: str, currency: str, at: datetime) -> str | None:
        from neruba.logic.billing.top_up import auto_top_up as top_up

        return top_up(ctx, ledger, customer_id, currency, at)

    return BillingDeps(
        rate_window, rate_opening, apply_credits, invoice_posting_items, auto_top_up=auto_top_up
    )


def credits_for(
    ledger: LedgerRepository, customer_id: str, currency: str, lines: Sequence[ChargeLine], at: datetime
) -> CreditsResult:
    """Usable grants applied to ``lines`` in the grants' order of use, and their conditional decrements.

    Example:
        >>> lines = [ChargeLine("l1", None, 500)]
        >>> credits_for(LedgerRepository(table), "acme", "USD", lines, now).applications  # doctest: +SKIP
        [CreditApplication(grant_id='cg_1', line_id='l1', amount_minor=500, kind='promotional')]
    """
    from neruba.domain.credits import allocate

    payable = [line for line in lines if line.amount_minor > 0]
    if not payable:
        return CreditsResult()
    grants = ledger.grants(customer_id, currency, at)
    applications = allocate(grants, payable, at) if grants else []
    if not applications:
        return CreditsResult()
    return CreditsResult(list(applications), ledger.grant_consumption_items(applications, at=at))


def posting_for(request: PostingRequest) -> Posting | None:
    """The ledger posting of an invoice (revision 0) or of a draft's revision; None when nothing moves.

    - a positive amount: ``logic.ledger.postings.invoice_posting`` (revenue, credits applied, receivable);
    - zero: nothing (``invoice_posting`` refuses it; billing never applies credit to a zero subtotal);
    - a negative amount (a draft revised lower, or adjustments outweighing the charges): a separate
      reduction posting (``logic.ledger.postings.invoice_reduction_posting``), never an edit of the first one.

    The key is ``request.posting_key`` (``invoice:{invoice_id}``, then ``invoice:{invoice_id}:rev{n}``),
    so every attempt of the same invoice or revision is cancelled by the same guard.

    Example:
        >>> posting_for(PostingRequest("acme", "in_1", "USD", 0, [], now)) is None  # doctest: +SKIP
        True
    """
    from neruba.logic.ledger.postings import invoice_posting, invoice_reduction_posting

    if request.subtotal_minor > 0:
        return invoice_posting(
            request.customer_id,
            request.invoice_id,
            request.currency,
            request.subtotal_minor,
            [_application(a) for a in request.applications],
            request.at,
            idempotency_key=request.posting_key,
        )
    if request.applications:
        raise ValueError("credits are applied only to an invoice with a positive subtotal")
    if request.subtotal_minor == 0:
        return None
    return invoice_reduction_posting(
        request.customer_id,
        request.invoice_id,
        request.currency,
        -request.subtotal_minor,
        request.at,
        idempotency_key=request.posting_key,
    )


def _application(application: ApplicationLike) -> CreditApplication:
    from neruba.domain.credits import CreditApplication

    if isinstance(application, CreditApplication):
        return application
    kind = getattr(application, "kind", None)
    return CreditApplication(application.grant_id, application.line_id, int(application.amount_minor), kind)
