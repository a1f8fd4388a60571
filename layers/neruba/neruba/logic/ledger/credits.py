"""Credit grant use cases: grant, void a remainder, expire, auto top-up.

A grant credits ``prepaid_credit#{grant}``. Purchased credit is paid money held as a liability (debit
``cash``, or ``receivable`` when it is invoiced, e.g. a top-up); promotional credit is backed by
``promotional_allowance`` (a contra-liability), so it becomes an expense only when spent. docs/ledger.md
has the full table.

Example::

    grant, posting = create_grant(repo, customer_id="acme", kind="promotional", amount_minor=5000,
                                  currency="USD", idempotency_key="op:grant:k1", actor="key:ab12")
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from neruba.dal.dynamo import is_cancellation
from neruba.dal.ledger import LedgerConflictError, LedgerRepository
from neruba.dal.transaction import Transaction, commit
from neruba.domain.credits import CreditGrant, GrantKind, TopUpRequest, grant_id_for
from neruba.domain.ledger import Entry, Posting, credit, debit
from neruba.logic.ledger.postings import ItemsFor

if TYPE_CHECKING:
    from neruba.logic.limits.balance import BalanceWatch, BalanceWatches

Funding = Literal["cash", "receivable"]


def grant_posting(
    grant: CreditGrant,
    *,
    idempotency_key: str,
    actor: str,
    at: datetime,
    funding: Funding = "cash",
    source: str = "grant",
    metadata: dict[str, Any] | None = None,
) -> Posting:
    """The posting that makes a grant's credit available.

    Example:
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> g = CreditGrant("cg_1", "acme", "purchased", 900, 900, "USD", 0, t, None, None)
        >>> [e.to_dict() for e in grant_posting(g, idempotency_key="k", actor="a", at=t).entries]
        [{'account': 'cash', 'debit_minor': 900}, {'account': 'prepaid_credit', 'credit_minor': 900, \
'grant_id': 'cg_1'}]
    """
    source_account = "promotional_allowance" if grant.kind == "promotional" else funding
    entries = [
        debit(source_account, grant.amount_minor),
        credit("prepaid_credit", grant.amount_minor, grant.grant_id),
    ]
    return Posting.build(
        idempotency_key=idempotency_key,
        customer_id=grant.customer_id,
        currency=grant.currency,
        entries=entries,
        reason=f"credit_grant_{grant.kind}",
        source=source,
        source_id=grant.grant_id,
        actor=actor,
        at=at,
        effective_at=grant.effective_at,
        metadata={"funding": funding if grant.kind == "purchased" else None, **(metadata or {})},
    )


def grant_event(event_type: str, grant: CreditGrant, now: datetime, **more: Any) -> dict[str, Any]:
    """The outbox action of a ``credit_grant.*`` event, for the transaction that changes the grant."""
    from neruba.logic.webhooks.outbox import event_action
    from neruba.timefmt import iso

    data = {
        "id": grant.grant_id,
        "customer_id": grant.customer_id,
        "kind": grant.kind,
        "amount_minor": grant.amount_minor,
        "remaining_minor": grant.remaining_minor,
        "currency": grant.currency,
        "status": grant.status,
        "priority": grant.priority,
        "effective_at": iso(grant.effective_at),
        "expires_at": iso(grant.expires_at) if grant.expires_at else None,
        "meter_codes": list(grant.meter_codes) if grant.meter_codes is not None else None,
        **more,
    }
    return event_action(event_type, grant.customer_id, data, now)


def closing_entries(grant: CreditGrant) -> list[Entry]:
    """Entries that remove a grant's remainder: to ``breakage`` (purchased) or back to
    ``promotional_allowance`` (promotional)."""
    target = "promotional_allowance" if grant.kind == "promotional" else "breakage"
    return [
        debit("prepaid_credit", grant.remaining_minor, grant.grant_id),
        credit(target, grant.remaining_minor),
    ]


def create_grant(
    repo: LedgerRepository,
    *,
    customer_id: str,
    kind: GrantKind,
    amount_minor: int,
    currency: str,
    idempotency_key: str,
    actor: str,
    priority: int = 0,
    effective_at: datetime | None = None,
    expires_at: datetime | None = None,
    meter_codes: Sequence[str] | None = None,
    funding: Funding = "cash",
    source: str = "grant",
    at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    extra_items: Sequence[dict[str, Any]] = (),
    items_for: ItemsFor | None = None,
) -> tuple[CreditGrant, Posting]:
    """Create a grant and its posting in one transaction; a retry returns the first grant and posting."""
    now = at or datetime.now(UTC)
    grant = CreditGrant(
        grant_id=grant_id_for(customer_id, idempotency_key),
        customer_id=customer_id,
        kind=kind,
        amount_minor=amount_minor,
        remaining_minor=amount_minor,
        currency=currency,
        priority=priority,
        effective_at=(effective_at or now).astimezone(UTC),
        expires_at=expires_at.astimezone(UTC) if expires_at else None,
        meter_codes=tuple(meter_codes) if meter_codes is not None else None,
        created_at=now,
    )
    posting = grant_posting(
        grant,
        idempotency_key=idempotency_key,
        actor=actor,
        at=now,
        funding=funding,
        source=source,
        metadata=metadata,
    )
    extra = [
        *extra_items,
        *(items_for(posting) if items_for else ()),
        grant_event("credit_grant.created", grant, now),
    ]
    stored = repo.post(posting, [repo.grant_item(grant), *extra])
    current = repo.grant(stored.source_id or grant.grant_id)
    return (current or grant), stored


def close_remainder(
    repo: LedgerRepository,
    grant: CreditGrant,
    status: Literal["expired", "voided"],
    *,
    idempotency_key: str,
    actor: str,
    source: str,
    at: datetime | None = None,
    effective_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    extra_items: Sequence[dict[str, Any]] = (),
    items_for: ItemsFor | None = None,
    watch: BalanceWatch | None = None,
) -> Posting | None:
    """Set a grant's remainder to 0 (expiry or void) with its posting; None when there was no remainder.

    The grant update is conditional on the remainder read, so credit consumed meanwhile cancels the
    transaction (LedgerConflictError) instead of being posted twice. ``watch``: the customer's balance
    alert levels and balance version, read before this call; the downward crossings of the levels fire
    with the posting, which also moves the version on condition that it is still the one read (a change
    of the balance committed meanwhile cancels it: LedgerConflictError) (``logic.limits.balance``).
    """
    now = at or datetime.now(UTC)
    closed = replace(grant, remaining_minor=0, status=status)
    event = grant_event(f"credit_grant.{status}", closed, now, closed_minor=grant.remaining_minor)
    alerts: list[dict[str, Any]] = []
    if watch is not None and grant.remaining_minor > 0:
        from neruba.logic.limits.balance import after_closing, balance_alerts

        moment = effective_at - timedelta(microseconds=1) if effective_at else now  # just before it closed
        usable = repo.grants(grant.customer_id, grant.currency, moment)
        before, after = after_closing(usable, grant.grant_id, grant.remaining_minor)
        alerts = balance_alerts(grant.customer_id, grant.currency, before, after, watch.levels, now)
        alerts.append(watch.guard())
    if grant.remaining_minor == 0:
        commit(Transaction([repo.grant_close_item(grant, status), *extra_items, event]))
        return None
    posting = Posting.build(
        idempotency_key=idempotency_key,
        customer_id=grant.customer_id,
        currency=grant.currency,
        entries=closing_entries(grant),
        reason=f"credit_grant_{status}",
        source=source,
        source_id=grant.grant_id,
        actor=actor,
        at=now,
        effective_at=effective_at or now,
        metadata=metadata,
    )
    extra = [*extra_items, *(items_for(posting) if items_for else ()), event, *alerts]
    stored = repo.post(posting, [repo.grant_close_item(grant, status), *extra])
    if stored is posting and alerts:  # this call committed (a retry returns the stored posting)
        from neruba.logic.limits.balance import count_fired

        count_fired(alerts)
    return stored


def expire_due(
    repo: LedgerRepository,
    now: datetime | None = None,
    limit: int = 100,
    pages: int = 20,
    balance_watch: BalanceWatches | None = None,
) -> dict[str, Any]:
    """Expire every active grant whose ``expires_at`` has passed; each posting is effective exactly at
    ``expires_at`` and keyed ``expiry:{grant_id}`` (running twice posts once). ``balance_watch`` reads a
    customer's balance alert levels and version (``logic.limits.balance``), the flags of each page's
    customers first in one batch (no read more for a customer without levels); an expiry cancelled by a
    change of the balance committed meanwhile is decided again at once from the grant read again."""
    from neruba.observability import logger

    moment = now or datetime.now(UTC)
    report: dict[str, Any] = {"expired": [], "conflicts": [], "posted_minor": 0}
    for _page in range(pages):
        due = [g for g in repo.grants_due(moment, limit) if g.status == "active"]
        fresh = [g for g in due if g.grant_id not in report["conflicts"]]
        if balance_watch is not None:
            balance_watch.prefetch(g.customer_id for g in fresh)
        for grant in fresh:
            try:
                posting = _expire(repo, grant, moment, balance_watch)
            except Exception as exc:
                if not (isinstance(exc, LedgerConflictError) or is_cancellation(exc)):
                    raise
                logger.warning(
                    "grant changed while expiring; retried next run", extra={"grant_id": grant.grant_id}
                )
                report["conflicts"].append(grant.grant_id)
                continue
            report["expired"].append(grant.grant_id)
            report["posted_minor"] += posting.total_minor if posting else 0
        if len(due) < limit or not fresh:
            break
    return report


def _expire(
    repo: LedgerRepository,
    grant: CreditGrant,
    moment: datetime,
    balance_watch: Callable[[str], BalanceWatch | None] | None,
    attempts: int = 3,
) -> Posting | None:
    """Expire one grant; when only the balance version moved meanwhile (the grant is as read), read the
    watch and the balance again and decide again (``attempts`` in all)."""
    attempt = 1
    while True:
        watch = balance_watch(grant.customer_id) if balance_watch else None
        try:
            return close_remainder(
                repo,
                grant,
                "expired",
                idempotency_key=f"expiry:{grant.grant_id}",
                actor="system:credit_expiry",
                source="expiry",
                at=moment,
                effective_at=grant.expires_at,
                watch=watch,
            )
        except LedgerConflictError:
            if watch is None or attempt >= attempts or repo.grant(grant.grant_id) != grant:
                raise
            attempt += 1


def available_minor(repo: LedgerRepository, customer_id: str, currency: str, at: datetime) -> int:
    """Credit usable at ``at`` (active, effective, unexpired grants' remainders)."""
    return sum(g.remaining_minor for g in repo.grants(customer_id, currency, at))


def check_auto_top_up(
    repo: LedgerRepository,
    customer_id: str,
    currency: str,
    *,
    at: datetime | None = None,
    available: int | None = None,
    _attempts: int = 3,
) -> TopUpRequest | None:
    """After credit is consumed: the top-up billing must invoice, or None.

    One request per crossing under the threshold: the first call below it disarms the rule and stores
    the request; later calls until credit is back at or over the threshold return that SAME request
    (same ``request_id``), so billing invoices it idempotently by id. At or over the threshold the rule
    is armed again.
    """
    moment = at or datetime.now(UTC)
    rules = repo.top_ups
    rule = rules.rule(customer_id, currency)
    if rule is None or not rule.enabled:
        return None
    level = available if available is not None else available_minor(repo, customer_id, currency, moment)
    if rule.should_rearm(level):
        rules.rearm(rule)
        return None
    if level >= rule.threshold_minor:
        return None
    crossing = rule.crossings + 1 if rule.armed else rule.crossings
    seed = f"{customer_id}\x1f{currency}\x1f{crossing}"
    request = TopUpRequest(
        request_id="tu_" + hashlib.sha256(seed.encode()).hexdigest()[:24],
        customer_id=customer_id,
        currency=currency,
        amount_minor=rule.amount_minor,
        available_minor=level,
        threshold_minor=rule.threshold_minor,
        requested_at=moment,
    )
    if rule.armed and not rules.raise_request(rule, request):
        if _attempts <= 1:
            raise LedgerConflictError("the auto top-up rule kept changing")
        return check_auto_top_up(
            repo, customer_id, currency, at=moment, available=level, _attempts=_attempts - 1
        )
    for stored in rules.requests(customer_id):
        if stored.request_id == request.request_id:
            return stored
    return request
