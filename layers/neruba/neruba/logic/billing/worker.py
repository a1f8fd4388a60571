"""Bill one window of a subscription: rate it, apply credits, and commit the invoice, its ledger posting,
the credit consumption and the advance of the billing state in ONE DynamoDB transaction.

Why a retried or duplicated job never bills twice:

- the invoice id is derived from the window (``in_`` + hash of ``{subscription}:{start}:{kind}``) and put
  with ``attribute_not_exists(pk)``; the state advance is conditional on ``next_seq`` still being this
  window. Both are in the same TransactWriteItems as the ledger and credit actions, so either all of them
  commit or none does: a process killed "between" the invoice and the advance cannot exist, because there
  is no between (DynamoDB applies a transaction atomically or not at all).
- a job for window ``k`` bills every open window up to ``k`` in order (catch-up), one transaction each;
  a job whose window was already billed is a no-op.
- if an invoice exists while the state still points at its window (a state restored by hand, say), the
  transaction is cancelled by the invoice's condition alone; the worker then finishes the advance by
  itself, without a second invoice or posting. (Not reading the invoice first saves a read per window.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from neruba.dal.billing import (
    Adjustment,
    BillingRepository,
    BillingState,
    TransactionCancelledError,
)
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.domain.credits import Line
from neruba.domain.phases import Terms, Timeline, timeline
from neruba.logic.billing import sync_due, unbillable
from neruba.logic.billing.adjustment_terms import adjustment_record
from neruba.logic.billing.context import Billing, PostingRequest
from neruba.logic.billing.deltas import line_deltas, line_dict, rated_lines
from neruba.logic.billing.discounts import credit_base
from neruba.logic.billing.document import invoice_document, invoice_event
from neruba.logic.billing.top_up import auto_top_up
from neruba.logic.billing.windows import Window, late_lookback, subscription_end, window_at
from neruba.logic.limits.balance import count_fired
from neruba.models.billing import BillingJob
from neruba.timefmt import parse_ts, ts

if TYPE_CHECKING:
    pass


Applied = Callable[[str], dict[str, Any]]  # an adjustment's record, given what it is applied to


class RetryableBillingError(Exception):
    """The job cannot complete now (contention, a dependency); SQS delivers it again."""


@dataclass
class JobOutcome:
    """What one job did: invoices it created, windows it found already billed or not yet due."""

    invoiced: list[str] = field(default_factory=list)
    already_billed: int = 0
    not_due: int = 0
    top_ups: list[str] = field(default_factory=list)


def ensure_billing_state(billing: BillingRepository, subscription: Terms) -> bool:
    """Create the billing state of a subscription if it has none (True if created).

    Called by the scheduler for subscriptions created before billing existed, and meant as the hook the
    catalog calls when it creates a subscription (it needs no pricing or ledger). The first window (the
    opening) is due at the start.

    Example:
        >>> ensure_billing_state(BillingRepository(table), subscription_doc)  # doctest: +SKIP
        True
    """
    return billing.put_state_if_absent(new_billing_state(subscription))


def new_billing_state(subscription: Terms) -> BillingState:
    """The billing state a new subscription starts with: window 0 (the opening) due at its start."""
    terms = timeline(subscription)
    anchor = ts(terms.anchor)
    return BillingState(
        subscription_id=str(terms.id),
        customer_id=str(terms.customer_id),
        anchor=anchor,
        interval=terms.every,
        next_seq=0,
        status="active",
        due_at=anchor,
    )


def process_job(ctx: Billing, job: BillingJob, now: datetime | None = None) -> JobOutcome:
    """Bill every open window of the job's subscription up to ``job.seq``, oldest first."""
    now = now or datetime.now(UTC)
    ctx.watched.clear()  # what this job's credit applications learn, for its own top-ups only
    outcome = JobOutcome()
    state = ctx.billing.state(job.subscription_id)
    subscription = ctx.subscription(job.subscription_id).timeline
    if state is None:
        ensure_billing_state(ctx.billing, subscription)
        state = ctx.billing.state(job.subscription_id)
        assert state is not None
    if state.next_seq > job.seq:
        outcome.already_billed += 1
        # a retried job: its first attempt may have stopped between the window and its top-up
        _top_up(ctx, outcome, subscription, subscription.currency or "", now)
    while state.status == "active" and state.next_seq <= job.seq:
        seq = state.next_seq
        ends_at = subscription_end(subscription, ctx.add_interval)
        window = _window(ctx, state, seq, ends_at)
        if window is None:
            _end_state(ctx, job.subscription_id, seq)
            break
        if window.due_at > now:
            outcome.not_due += 1
            break
        invoice_id, doc = billed_window(
            ctx, subscription, window, ends_at, job.run_id, now, thresholds_issued=state.thresholds_issued
        )
        if invoice_id:
            outcome.invoiced.append(invoice_id)
            state = _advanced(state, window, ends_at, ctx)  # what the committed transaction wrote
            if int(doc["credits_applied_minor"]) > 0:
                _top_up(ctx, outcome, subscription, str(doc["currency"]), now)
        else:
            outcome.already_billed += 1
            state = ctx.billing.state(job.subscription_id) or state
            _top_up(ctx, outcome, subscription, str(doc["currency"]), now)  # see the retried job above
    return outcome


def _top_up(ctx: Billing, outcome: JobOutcome, subscription: Timeline, currency: str, now: datetime) -> None:
    """After a window's transaction committed (or was found committed): the auto top-up check. It never
    raises (``logic.billing.top_up.auto_top_up`` logs a failure and leaves the stored request to the next
    check), so the window stays billed whatever happens here."""
    if not currency:
        return
    invoice_id = auto_top_up(ctx, ctx.ledger, str(subscription.customer_id), currency, now)
    if invoice_id and invoice_id not in outcome.top_ups:
        outcome.top_ups.append(invoice_id)


def _advanced(state: BillingState, window: Window, ends_at: datetime | None, ctx: Billing) -> BillingState:
    following = _window(ctx, state, window.seq + 1, ends_at)
    return replace(state, next_seq=window.seq + 1, status="active" if following else "ended")


def _window(ctx: Billing, state: BillingState, seq: int, ends_at: datetime | None) -> Window | None:
    return window_at(
        state.subscription_id,
        parse_ts(state.anchor),
        state.interval,
        seq,
        ctx.add_interval,
        ends_at,
    )


def _end_state(ctx: Billing, subscription_id: str, seq: int) -> None:
    """No window ``seq`` exists (the subscription ended): stop billing it."""
    with contextlib.suppress(TransactionCancelledError):
        commit(Transaction([ctx.billing.end_state_item(subscription_id, seq)]))


def billed_window(
    ctx: Billing,
    subscription: Terms,
    window: Window,
    ends_at: datetime | None,
    run_id: str | None,
    now: datetime,
    thresholds_issued: int | None = None,
) -> tuple[str | None, dict[str, Any]]:
    """Create the window's invoice and advance the state in one transaction: the invoice id (None if
    already billed) and the invoice document it built (what was committed when the id is not None).

    ``thresholds_issued`` is the state's threshold invoice count as read: the invoice deducts what they
    billed of its period, and the advance is conditional on that count (``logic.billing.threshold``)."""
    terms = timeline(subscription)
    next_window = window_at(
        window.subscription_id,
        terms.anchor.astimezone(UTC),
        terms.every,
        window.seq + 1,
        ctx.add_interval,
        ends_at,
    )
    next_due = next_window.due_at if next_window else None
    advance = ctx.billing.advance_item(
        window.subscription_id, window.seq, window.invoice_id, next_due, ends_at, thresholds_issued
    )
    doc, actions, guard = build_invoice(ctx, terms, window, now, thresholds_issued)
    unit = Transaction().add(ctx.invoices.put_item(doc, now + ctx.grace), name="invoice")
    unit.add(advance, name="state")
    for index, action in enumerate(actions):
        unit.add(action, name="posting" if index == guard else None)  # the posting's idempotency guard
    if run_id:
        unit.add(ctx.billing.run_counter_item(run_id, "invoiced"))
    try:
        commit(unit)
    except Cancelled as exc:
        invoice_exists, state_moved = exc.failed("invoice"), exc.failed("state")
        posted = exc.failed("posting")  # the posting's guard: this invoice was posted
        if (invoice_exists or posted) and not state_moved:
            _finish_advance(advance)  # the invoice committed while the state did not move: finish alone
            return None, doc
        if invoice_exists or state_moved or posted:
            return None, doc  # another attempt of this job committed first
        raise RetryableBillingError(f"billing {window.window_id} was cancelled: {exc.reasons}") from exc
    sync_due.send_written(ctx, unit)  # the credit notes its settlement issued (else: the scheduler's)
    count_fired(unit)  # balance alerts the credit applied made
    unbillable.report_invoiced(doc)  # a line billed 0 as unbillable: the operator is told
    return window.invoice_id, doc


def _finish_advance(advance: dict[str, Any]) -> None:
    with contextlib.suppress(TransactionCancelledError):  # already advanced
        commit(Transaction([advance]))


def build_invoice(
    ctx: Billing,
    subscription: Terms,
    window: Window,
    now: datetime,
    thresholds_issued: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], int | None]:
    """The invoice document, the other actions of its transaction (adjustments, credits, posting) and
    the index among them of the posting's idempotency guard (None when nothing is posted). A window
    whose negative adjustments take it below zero, the subscription's last or not, settles them by credit
    notes against the invoices carrying what they take back
    (``logic.billing.correction_credits.settled_below_zero``): a credit left on it would lower the
    receivable but no invoice's amount due."""
    from neruba.logic.billing.correction_credits import settled_below_zero, window_audit, within_billed
    from neruba.logic.billing.grant_restores import usable_again
    from neruba.logic.billing.threshold import period_end_lines

    terms = timeline(subscription)
    rate = ctx.rate_opening if window.kind == "opening" else ctx.rate_window
    adjustment_lines: list[dict[str, Any]] = []
    recording: list[Applied] = []
    sources: list[dict[str, Any]] = []  # the backfills' parts of the look-back's lines (BFPART#)
    if window.kind == "usage":  # the earlier windows first: re-rating them stores their closing levels
        adjustment_lines, recording, sources = late_adjustments(ctx, terms, window, now)
    rated = rate(terms, window.start, window.end)
    own = [line_dict(line) for line in rated.lines]
    own += period_end_lines(ctx, window, thresholds_issued, own)  # what threshold invoices billed
    customer_id = str(terms.customer_id)
    features = ctx.features(customer_id)  # which optional features need their reads (dal.features)
    one_off_lines, one_off_actions = ctx.one_off_lines(
        customer_id, rated.currency, window.invoice_id, features
    )  # each picked up by this transaction only while still pending

    def priced(carried: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any], list[Any]]:
        return ctx.invoice_extras(
            customer_id, window.subscription_id, window.invoice_id, [*own, *carried, *one_off_lines],
            rated.currency, (ts(window.start), ts(window.end)), features,
        )  # fmt: skip

    lines, extras, discount_actions = priced(adjustment_lines)
    settled = settled_below_zero(ctx, customer_id, window.invoice_id, lines, adjustment_lines, now)
    absorbed: dict[str, str] = {}
    restored: list[dict[str, Any]] = []
    restoring: list[dict[str, Any]] = []
    if settled is not None:  # the negative adjustments credited against the invoices carrying them
        lines, extras, discount_actions = priced(settled.lines)
        restored = settled.restored
    else:  # a negative difference gives back at most what the customer is still billed for its line
        # (the grants that paid it taking back their part first: logic.billing.grant_restores)
        carried, absorbed, restoration = within_billed(
            ctx, customer_id, adjustment_lines, window.invoice_id, now
        )
        restored, restoring = restoration.view(), restoration.actions
        if restored:  # the grants took (some of) the negative adjustments: audited as a settlement
            restoring = [*restoring, window_audit(customer_id, window.invoice_id, [], restored, now)]
        if absorbed or restoration.taken:
            lines, extras, discount_actions = priced(carried)
    if restored:  # which grants got what back, on the invoice carrying the difference
        extras = {**extras, "grant_restorations": restored}
    credited = {**absorbed, **(settled.credited_by if settled else {})}
    kept = {str(line["line_id"]) for line in lines}
    actions = [
        record(window.invoice_id if line_id in kept else credited.get(line_id, window.invoice_id))
        for line_id, record in zip(
            (str(line["line_id"]) for line in adjustment_lines), recording, strict=True
        )
    ]
    actions += sources  # each backfill's part of the look-back's lines, recorded once
    actions += one_off_actions
    actions += discount_actions  # each discount's period counted by this transaction only
    actions += settled.actions if settled else []
    actions += restoring
    subtotal = sum(int(line["amount_minor"]) for line in lines)
    picked = [str(line["line_id"]) for line in one_off_lines]
    base = credit_base(lines, picked)  # after discounts; credits never pay one-off charges or advance lines
    chargeable = creditable_lines(base, sum(int(line["amount_minor"]) for line in base))
    # the credit this window gives back to a grant pays its own usage too (grant_restores.usable_again)
    back = usable_again(restored)
    credits = ctx.apply_credits(customer_id, rated.currency, chargeable, now, back) if chargeable else None
    applications = list(credits.applications) if credits else []
    doc = invoice_document(
        invoice_id=window.invoice_id,
        customer_id=customer_id,
        subscription_id=window.subscription_id,
        currency=rated.currency,
        kind=window.kind,
        seq=window.seq,
        details={"window": window.to_dict(), **extras},
        period=(ts(window.start), ts(window.end)),
        lines=lines,
        applications=applications,
        created_at=ts(now),
        finalize_at=ts(now + ctx.grace),
    )
    tax = {key: int(doc.get(key) or 0) for key in ("tax_minor", "tax_included_minor")}
    posting = ctx.invoice_posting_items(
        PostingRequest(customer_id, window.invoice_id, rated.currency, subtotal, applications, now, **tax)
    )
    actions += credits.items if credits else []
    actions.append(invoice_event("invoice.created", doc, now))
    every = [*actions, *posting]
    if settled is not None or restoring:  # the notes and restorations post to the invoice's balances
        every = ctx.ledger.combine_grant_moves(ctx.ledger.combine_balance_moves(every))
    guard = next((i for i, action in enumerate(every) if posting and action is posting[0]), None)
    return doc, every, guard


def creditable_lines(lines: list[dict[str, Any]], subtotal: int) -> list[Line]:
    """What credit may pay: the chargeable (positive) lines, never proration credits or negative
    adjustments, and in all no more than the subtotal (negative lines lower what is left to pay, taken
    off the last chargeable lines first).

    Example: lines +800, +300, -500 (subtotal 600): credit may pay 600: 600 of the first, none of the
    second.
    """
    room = max(0, subtotal)
    out: list[Line] = []
    for line in lines:
        amount = min(int(line["amount_minor"]), room)
        if amount > 0:
            out.append(Line(str(line["line_id"]), line.get("meter_code"), amount))
            room -= amount
    return out


MAX_ADJUSTMENT_LINES = 50  # adjustment lines one invoice takes: half its transaction's 100 actions


def late_adjustments(
    ctx: Billing, subscription: Terms, window: Window, now: datetime
) -> tuple[list[dict[str, Any]], list[Applied], list[dict[str, Any]]]:
    """Adjustment lines for the invoice of ``window``: pending corrections from operator reruns, plus late
    events found by re-rating the earlier finalized usage windows (``late_lookback``). Returns (lines,
    per line the action recording it, given what it is applied to: the invoice, or a credit note
    settling it, see ``settled_below_zero``; the Puts recording each backfill's part of the look-back's
    lines, as a rerun records it: ``logic.billing.correction_sources``, and the Puts of the differences
    left pending because an invoice carrying their line has a dispute open: docs/billing.md, "A
    correction waits for an open dispute").

    Each line is one action of the window's transaction, so late differences stop at
    ``MAX_ADJUSTMENT_LINES`` lines (a backfill's part recorded counts as one): the oldest windows first
    (they leave the look-back first), and the differences left out are found again, and billed, by the
    next windows (a difference is always computed against what was billed and adjusted so far)."""
    from neruba.logic.billing.correction_waits import held_for_disputes

    recorded = ctx.billing.adjustments(window.subscription_id)
    lines: list[dict[str, Any]] = []
    actions: list[Applied] = []
    sub_id = window.subscription_id
    customer_id = str(timeline(subscription).customer_id)
    pending = [a for a in recorded if a.status == "pending"]
    waiting = held_for_disputes(ctx, customer_id, [a.line for a in pending])  # stay pending
    for adjustment in pending:
        if str(adjustment.line["line_id"]) not in waiting:
            lines.append(adjustment.line)
            key = adjustment.key
            actions.append(lambda to, key=key: ctx.billing.adjustment_apply_item(sub_id, key, to))  # type: ignore[misc]
    sources: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    room = MAX_ADJUSTMENT_LINES - len(lines)
    hold = partial(held_for_disputes, ctx, customer_id)
    found = lookback_deltas(ctx, subscription, window, recorded, room, sources=sources, hold=(hold, held))
    for delta in found:
        lines.append(delta)
        actions.append(
            lambda to, delta=delta: ctx.billing.adjustment_put_item(  # type: ignore[misc]
                sub_id, adjustment_record(delta, "applied", to, now)
            )
        )
    # left pending: the next windows carry them (each holds them again while the dispute is open)
    sources += [
        ctx.billing.adjustment_put_item(sub_id, adjustment_record(d, "pending", None, now)) for d in held
    ]
    return lines, actions, sources


def lookback_deltas(
    ctx: Billing,
    subscription: Terms,
    window: Window,
    recorded: list[Adjustment],
    room: int,
    *,
    report: bool = True,
    sources: list[dict[str, Any]] | None = None,
    hold: tuple[Callable[[list[dict[str, Any]]], Collection[str]], list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """The differences (at most ``room`` lines, oldest windows first) that re-rating the finalized usage
    windows ``late_lookback`` names finds for the invoice of ``window``: what that invoice will carry for
    late events, voids and amends (the upcoming invoice shows them, ``logic.billing.upcoming``, with
    ``report=False``: a preview neither logs nor counts the differences it withholds).

    With ``sources`` (the window's own billing), each line names the backfills whose events it carries,
    as a rerun's line does, and ``sources`` gets the Puts recording their parts
    (``correction_sources.carried``; each counts in ``room``). With ``hold`` (a test and a list), the
    differences the test names (``correction_waits.held_for_disputes``: an invoice carrying what they
    correct has a dispute open) are left out, into that list, before their backfills' parts are named."""
    terms = timeline(subscription)
    anchor, interval = terms.anchor.astimezone(UTC), terms.every
    earlier_windows = [
        window_at(window.subscription_id, anchor, interval, seq, ctx.add_interval)
        for seq in reversed(late_lookback(anchor, interval, window.seq, ctx.add_interval, ctx.late_events))
    ]
    # the look-back's invoices in one consistent batch read (they were one GetItem each)
    stored = ctx.invoices.get_many([w.invoice_id for w in earlier_windows if w is not None])
    found: list[dict[str, Any]] = []
    for earlier in earlier_windows:
        if room - len(found) <= 0:
            break
        original = stored.get(earlier.invoice_id) if earlier else None
        if original is not None and original.status == "void" and original.document.get("replaced_by"):
            original = ctx.invoices.get(str(original.document["replaced_by"]))  # voided and regenerated
        if earlier is None or original is None or original.status in ("draft", "void"):
            continue
        rerated = rated_lines(
            ctx.rate_window(terms, parse_ts(original.period_start), parse_ts(original.period_end))
        )
        deltas, withheld = unbillable.split(line_deltas(original, rerated, recorded))
        if report:
            unbillable.report(
                withheld, "look-back", billed_on=window.invoice_id, subscription_id=window.subscription_id
            )
        if hold is not None and (waiting := hold[0](deltas)):  # an invoice carrying them is in dispute
            hold[1].extend(d for d in deltas if str(d["line_id"]) in waiting)
            deltas = [d for d in deltas if str(d["line_id"]) not in waiting]
            room -= len(waiting)  # each is recorded pending by the same transaction
        if sources is not None and deltas:
            from neruba.logic.billing.correction_sources import carried

            deltas, named = carried(ctx, original, rerated, deltas, room - len(found))
            parts = named.carried_items(ctx, "adjustment_applied", window.invoice_id) if deltas else []
            room -= len(parts)
            sources += parts
        found += deltas[: room - len(found)]
    return found
