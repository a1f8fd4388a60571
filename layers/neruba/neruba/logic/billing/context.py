"""The billing context: what billing code works with, and the collaborators it calls.

Billing owns windows, invoices and their one transaction; it does not price usage or build ledger entries.
:class:`Billing` holds the repositories and calls, through four methods, the capabilities that do:

- :meth:`Billing.rate_window` / :meth:`Billing.rate_opening`: ``neruba.logic.pricing.rating`` on the
  stored aggregates (a ``domain.pricing.RatedWindow``);
- :meth:`Billing.apply_credits`: the usable grants applied to the chargeable lines
  (``domain.credits.allocate``) and the actions that consume them (:func:`credits_for`);
- :meth:`Billing.invoice_posting_items`: the actions of the invoice's ledger posting (:func:`posting_for`),
  guarded by the posting's idempotency key;
- ``add_interval``: ``domain.periods.add_interval`` (tests pass daily windows).

``neruba.bootstrap.billing()`` builds the context of a process from the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from neruba.domain.periods import add_interval as _add_interval

if TYPE_CHECKING:  # imported where used: a handler pays at cold start only for what it calls
    from neruba.dal.billing import BillingRepository
    from neruba.dal.features import Features
    from neruba.dal.invoices import InvoicesRepository
    from neruba.dal.ledger import LedgerRepository
    from neruba.dal.plans import PlansRepository, Subscription
    from neruba.dal.usage import UsageRepository
    from neruba.domain.credits import CreditApplication, Line
    from neruba.domain.ledger import Posting
    from neruba.domain.phases import Terms
    from neruba.domain.pricing import RatedWindow
    from neruba.logic.limits.balance import BalanceWatch

Levels = tuple[int | None, "BalanceWatch | None"]  # the balance.low threshold, the balance alerts' watch


@dataclass(frozen=True, slots=True)
class CreditsResult:
    """Applied credits and the grant-consumption actions to commit with the invoice."""

    applications: list[CreditApplication] = field(default_factory=list)
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
    applications: list[CreditApplication]
    at: datetime
    revision: int = 0
    tax_minor: int = 0  # exclusive tax added on top (or its change in a revision)
    tax_included_minor: int = 0  # tax contained in the lines (inclusive rates)

    @property
    def posting_key(self) -> str:
        """The ledger idempotency key: ``invoice:{invoice_id}`` (the key
        ``logic.ledger.postings.invoice_posting`` gives an invoice), then ``invoice:{invoice_id}:rev{n}``
        for the revisions of a draft."""
        base = f"invoice:{self.invoice_id}"
        return base if self.revision == 0 else f"{base}:rev{self.revision}"


def request_for(
    doc: dict[str, Any], at: datetime, applications: Sequence[CreditApplication] = ()
) -> PostingRequest:
    """The posting request of a new invoice document: its subtotal (after discounts) and its tax."""
    return PostingRequest(
        str(doc["customer_id"]),
        str(doc["id"]),
        str(doc["currency"]),
        int(doc["subtotal_minor"]),
        list(applications),
        at,
        tax_minor=int(doc.get("tax_minor") or 0),
        tax_included_minor=int(doc.get("tax_included_minor") or 0),
    )


@dataclass
class Billing:
    """What billing code works with: repositories, the pricing/credits/ledger calls, the grace period."""

    billing: BillingRepository
    invoices: InvoicesRepository
    plans: PlansRepository
    usage: UsageRepository
    ledger: LedgerRepository
    grace: timedelta = timedelta(hours=1)
    late_events: timedelta = timedelta(days=36)  # re-rate periods this long after they end (max age + 1 day)
    ops_table: str = ""
    billing_queue_url: str = ""
    sync_queue_url: str = ""
    catalog_table: str = ""
    add_interval: Callable[[datetime, str, int], datetime] = _add_interval
    # customer -> whether it had balance alert levels at its credit application just made: the auto
    # top-up that follows takes it (popped) instead of reading the customer again (logic.billing.top_up)
    watched: dict[str, bool] = field(default_factory=dict)
    features_trusted: bool = False  # the features backfill ran (logic.billing.features); never reset

    def subscription(self, subscription_id: str) -> Subscription:
        """The stored subscription (``PlansRepository.subscription``)."""
        return self.plans.subscription(subscription_id)

    def rate_window(self, subscription: Terms, start: datetime, end: datetime) -> RatedWindow:
        """The usage window [start, end) priced from the stored aggregates."""
        from neruba.logic.pricing import rating

        return rating.rate_window(self.plans, self.usage, subscription, start, end)

    def rate_opening(self, subscription: Terms, start: datetime, end: datetime) -> RatedWindow:
        """The advance fee of the first period (the opening window has no usage of its own)."""
        from neruba.logic.pricing import rating

        return rating.rate_opening(self.plans, subscription)

    def apply_credits(
        self,
        customer_id: str,
        currency: str,
        lines: Sequence[Line],
        at: datetime,
        restored: Mapping[str, int] | None = None,
    ) -> CreditsResult:
        """Credit applications for the chargeable ``lines`` and the actions consuming the grants (with the
        ``credit_grant.depleted`` and ``balance.low`` events they cause). ``restored``: per grant what the
        same transaction gives back to it (``credits_for``)."""

        def threshold() -> Levels:  # read only when credit is applied
            from neruba.logic.limits.balance import watch_of

            customer, limits, version = self.plans.customer_limits_and_balance_version(customer_id)
            watch = watch_of(self.plans.table_name, customer_id, limits, version)
            self.watched[customer_id] = watch is not None
            return (customer.balance_low_threshold_minor if customer is not None else None, watch)

        return credits_for(self.ledger, customer_id, currency, lines, at, threshold, restored)

    def features(self, customer_id: str) -> Features:
        """The flags by which a window of the customer skips the reads of unused features
        (``dal.features``): all unknown until the backfill's marker is found (``logic.billing.features``);
        once found, remembered (a marker is never removed)."""
        from neruba.dal.features import MARKER, UNKNOWN

        if not self.features_trusted:
            self.features_trusted = self.billing.marker(MARKER) is not None
        return self.billing.features.read(customer_id) if self.features_trusted else UNKNOWN

    def one_off_lines(
        self, customer_id: str, currency: str, invoice_id: str, features: Features | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The pending one-off charges and pay-in-advance lines a window invoice carries and the
        conditional actions that mark them invoiced, for that invoice's own transaction
        (``logic.billing.one_off_lines.pick_up``, then ``logic.billing.advance_lines.pick_up`` in the room
        left: at most ``MAX_PICK_UP`` in all)."""
        from neruba.dal.features import ADVANCE, ONE_OFF, UNKNOWN
        from neruba.logic.billing import advance_lines as advance
        from neruba.logic.billing.one_off_lines import MAX_PICK_UP, pick_up

        flags = features or UNKNOWN
        lines: list[dict[str, Any]] = []
        actions: list[dict[str, Any]] = []
        if flags.uses(ONE_OFF):
            lines, actions = pick_up(self.billing.one_offs, customer_id, currency, invoice_id)
        room = MAX_PICK_UP - len(lines)
        if not flags.uses(ADVANCE):
            return lines, actions
        more, more_actions = advance.pick_up(self.billing.advance, customer_id, currency, invoice_id, room)
        return lines + more, actions + more_actions

    def invoice_extras(
        self,
        customer_id: str,
        subscription_id: str,
        invoice_id: str,
        lines: Sequence[dict[str, Any]],
        currency: str,
        period: tuple[str, str],
        features: Features | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
        """A window invoice's discounts and taxes: its lines (discount lines added, each line's tax), the
        snapshots it stores, and the actions counting the discounts' periods in its own transaction
        (``logic.billing.discounts.window_extras``)."""
        from neruba.logic.billing.discounts import window_extras

        return window_extras(
            self.billing.discounts,
            customer_id,
            subscription_id,
            invoice_id,
            lines,
            currency,
            period,
            features,
        )

    def standalone_extras(
        self,
        customer_id: str,
        subscription_id: str | None,
        lines: Sequence[dict[str, Any]],
        currency: str,
        period: tuple[str, str],
        invoice_id: str,
        period_start: str | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
        """The discounts and taxes of an invoice billed outside a window, in the billing period starting
        at ``period_start``, and the actions recording the discounts' use in it
        (``logic.billing.discounts.standalone_extras``)."""
        from neruba.logic.billing.discounts import standalone_extras

        return standalone_extras(
            self.billing.discounts,
            customer_id,
            subscription_id,
            lines,
            currency,
            period,
            invoice_id,
            period_start,
        )

    def current_period_start(self, subscription_id: str) -> str | None:
        """The start of the billing period the subscription's next window invoice bills (None when it
        has no billing state yet, or bills no further window)."""
        from neruba.logic.billing.windows import window_at
        from neruba.timefmt import parse_ts, ts

        state = self.billing.state(subscription_id)
        if state is None or state.status != "active":
            return None
        window = window_at(
            subscription_id,
            parse_ts(state.anchor),
            state.interval,
            state.next_seq,
            self.add_interval,
            parse_ts(state.ends_at) if state.ends_at else None,
        )
        return None if window is None else ts(window.start)

    def invoice_posting_items(self, request: PostingRequest) -> list[dict[str, Any]]:
        """The actions of the invoice's ledger posting (item 0 is its idempotency guard); none when
        nothing moves."""
        posting = posting_for(request)
        return self.ledger.posting_items(posting) if posting is not None else []


def credits_for(
    ledger: LedgerRepository,
    customer_id: str,
    currency: str,
    lines: Sequence[Line],
    at: datetime,
    threshold: Callable[[], Levels] | None = None,
    restored: Mapping[str, int] | None = None,
) -> CreditsResult:
    """Usable grants applied to ``lines`` in the grants' order of use, and their conditional decrements,
    with the events they cause (:func:`credit_events`; ``balance.low`` when ``threshold()`` gives the
    customer's threshold, ``alert.triggered`` for the balance alert levels it gives). With levels, the
    grants are read again after the balance version read with the levels, and the version's guard joins
    the actions (``logic.limits.balance``): a change of the balance committing meanwhile cancels them.

    ``restored``: per grant what the same transaction gives back to it (a window's corrections of usage
    the grant paid, ``logic.billing.grant_restores``; never a grant closed at once). Each grant is
    allocated from its remainder as read plus that, so the credit given back pays the window's own
    usage; the caller merges the grant's decrement and restoration into one update
    (``LedgerRepository.combine_grant_moves``, conditional on the remainder as read covering the
    difference).

    Example:
        >>> lines = [Line("l1", None, 500)]
        >>> credits_for(LedgerRepository(table), "acme", "USD", lines, now).applications  # doctest: +SKIP
        [CreditApplication(grant_id='cg_1', line_id='l1', amount_minor=500, kind='promotional')]
    """
    from neruba.domain.credits import allocate

    payable = [line for line in lines if line.amount_minor > 0]
    if not payable:
        return CreditsResult()
    grants = _usable(ledger, customer_id, currency, at, restored)
    applications = allocate(grants, payable, at) if grants else []
    if not applications:
        return CreditsResult()
    low, watch = threshold() if threshold else (None, None)
    guard: list[dict[str, Any]] = []
    if watch is not None:  # the balance the levels are evaluated from: read after the version
        grants = _usable(ledger, customer_id, currency, at, restored)
        applications = allocate(grants, payable, at) if grants else []
        if not applications:
            return CreditsResult()
        guard = [watch.guard()]
    items = ledger.grant_consumption_items(applications, at=at)
    levels = watch.levels if watch is not None else ()
    events = credit_events(grants, applications, at, low, levels)
    return CreditsResult(list(applications), [*items, *events, *guard])


def _usable(
    ledger: LedgerRepository,
    customer_id: str,
    currency: str,
    at: datetime,
    restored: Mapping[str, int] | None,
) -> list[Any]:
    """The grants usable at ``at``, each with what this transaction gives back to it (``restored``)
    added to its remainder as read: a grant the window depleted before is usable again."""
    from dataclasses import replace

    if not restored:
        return ledger.grants(customer_id, currency, at)
    grants = [
        replace(g, remaining_minor=g.remaining_minor + int(restored.get(g.grant_id, 0)))
        for g in ledger.grants(customer_id, currency)
    ]
    return [g for g in grants if g.usable_at(at)]


def credit_events(
    grants: Sequence[Any],
    applications: Sequence[CreditApplication],
    at: datetime,
    threshold_minor: int | None,
    balance_levels: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """The outbox actions of a consumption: ``credit_grant.depleted`` for each grant whose whole remainder
    (as read) is applied (its decrement is conditional on at least that remainder, and a remainder only
    falls, so it is then exactly 0), and ``balance.low`` when the usable credit crosses from at or above
    ``threshold_minor`` to below it. They commit with the invoice, so a retried run (cancelled by the
    invoice's guard) writes none again."""
    from dataclasses import replace

    from neruba.domain.credits import applied_by_grant
    from neruba.logic.ledger.credits import grant_event
    from neruba.logic.webhooks.outbox import event_action

    used = applied_by_grant(applications)
    events = [
        grant_event("credit_grant.depleted", replace(g, remaining_minor=0), at)
        for g in grants
        if used.get(g.grant_id, 0) == g.remaining_minor > 0
    ]
    before = sum(g.remaining_minor for g in grants)
    after = before - sum(used.values())
    if threshold_minor is not None and before >= threshold_minor > after and grants:
        data = {
            "customer_id": grants[0].customer_id,
            "currency": grants[0].currency,
            "available_minor": after,
            "previous_available_minor": before,
            "threshold_minor": threshold_minor,
        }
        events.append(event_action("balance.low", grants[0].customer_id, data, at))
    if grants:
        from neruba.logic.limits.balance import balance_alerts

        customer_id, currency = grants[0].customer_id, grants[0].currency
        events += balance_alerts(customer_id, currency, before, after, balance_levels, at)
    return events


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
    base = _posting_without_tax(request)
    return with_tax(request, base)


def with_tax(request: PostingRequest, base: Posting | None) -> Posting | None:
    """The posting with the invoice's tax entries added (``logic.ledger.postings.tax_posting``: Cr
    ``tax_payable``, Dr ``receivable`` for exclusive tax, Dr ``revenue`` for inclusive tax): one posting
    per invoice or revision, so its balances move once in the transaction."""
    from neruba.domain.ledger import Posting
    from neruba.logic.ledger.postings import tax_posting

    tax = tax_posting(
        request.customer_id,
        request.invoice_id,
        request.currency,
        request.tax_minor,
        request.tax_included_minor,
        request.at,
        idempotency_key=request.posting_key,
    )
    if tax is None:
        return base
    if base is None:
        return tax
    return Posting.build(
        idempotency_key=base.idempotency_key,
        customer_id=base.customer_id,
        currency=base.currency,
        entries=[*base.entries, *tax.entries],
        reason=base.reason,
        source=base.source,
        source_id=base.source_id,
        actor=base.actor,
        at=base.at,
        metadata={**base.metadata, **tax.metadata},
    )


def _posting_without_tax(request: PostingRequest) -> Posting | None:
    from neruba.logic.ledger.postings import invoice_posting, invoice_reduction_posting

    if request.subtotal_minor > 0:
        return invoice_posting(
            request.customer_id,
            request.invoice_id,
            request.currency,
            request.subtotal_minor,
            list(request.applications),
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
