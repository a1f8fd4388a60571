"""Threshold invoices: invoice the usage of the open period early when what it has not invoiced yet
reaches the customer's ``invoice_threshold_minor``, or the default of the subscription's plan version
when the customer has none (docs/billing.md, "Threshold invoices").

An evaluation of a subscription (after ingest counted a batch of the customer, or from the
``thresholds`` sweep check) rates its open period's usage lines to now, the **cut**, exactly as the
upcoming-invoice preview does, and subtracts what the period's threshold invoices already billed. When
that amount reaches the threshold, ONE TransactWriteItems writes:

1. the threshold invoice (kind ``threshold``, ``billing_reason`` ``subscription_threshold``, a draft due
   for finalization now, ``attribute_not_exists``; its id follows from the period and the invoice's
   number in it, so every attempt of the same crossing writes the same invoice);
2. the claim on the billing state: ``thresholds_issued`` + 1, on the condition that billing is active,
   has not billed the open period's window yet (its next window may be that one, an earlier one, or the
   opening: the check works from the subscription's start) and the count is the one read
   (``dal.thresholds``); a subscription without a state yet gets it created here, count 1;
3. the period's record of what was billed, per line of the rating (cumulative quantity and amount);
4. the credit consumption and the ``invoice.created`` event, and the ledger posting (guard
   ``invoice:{id}``),

and then the invoice is finalized (numbered, ``invoice.finalized``) and sent to Stripe sync at once
(``corrections.issue_now``); a process stopped before that leaves a draft due now, which the scheduler's
next run, or the next evaluation, finalizes and sends.

Each line of a threshold invoice is the difference between the line rated to the cut and what earlier
threshold invoices of the period billed of it. The period-end invoice rates the whole period as always
and carries one ``threshold_deduction`` line per line billed early (minus the quantity and amount the
period's threshold invoices billed of it, naming them); its state advance is conditional on the count it
read, so the two always agree and threshold invoices plus the period-end invoice equal the period's
rating without thresholds, to the minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from neruba.dal.thresholds import BilledLine, PeriodThresholds, ThresholdInvoiceRef
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.domain.numbers import exact_sum
from neruba.domain.phases import Timeline
from neruba.domain.plan_defaults import any_threshold, subscription_threshold
from neruba.logic.billing.context import Billing, PostingRequest
from neruba.logic.billing.corrections import issue_now
from neruba.logic.billing.deltas import line_dict
from neruba.logic.billing.discounts import price_lines, tax_terms
from neruba.logic.billing.document import invoice_document, invoice_event
from neruba.logic.billing.threshold import BILLING_REASON, KIND, thresholds
from neruba.logic.billing.windows import MAX_CATCH_UP, Window, invoice_id_for, subscription_end, window_at
from neruba.logic.billing.worker import creditable_lines, new_billing_state
from neruba.logic.limits.balance import count_fired
from neruba.timefmt import parse_ts, ts

if TYPE_CHECKING:
    from neruba.dal.billing import BillingState

BILLED_KINDS = ("usage",)  # the lines of the rating a threshold invoice bills early (never fees)

Outcome = Literal["issued", "below", "raced", "not_open"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation of a subscription found: ``issued`` (``invoice_id``), ``below`` the threshold,
    ``raced`` (another evaluation or the period's end committed first), ``not_open`` (no open period
    to invoice: billing ended, the subscription has not started, or the period was billed already)."""

    subscription_id: str
    outcome: Outcome
    pending_minor: int = 0
    invoice_id: str | None = None


CHECK = "threshold"  # a billing queue message {"check": "threshold", "customer_id": ...}


def check_message(customer_id: str) -> str:
    """The billing queue message asking for a threshold evaluation of the customer."""
    import json

    return json.dumps({"check": CHECK, "customer_id": customer_id}, separators=(",", ":"))


def enqueue_checks(queue_url: str, customer_ids: list[str]) -> list[str]:
    """Send one threshold check per customer to the billing queue (after ingest counted their usage);
    returns the customers whose message could not be sent (the ``thresholds`` sweep check evaluates
    them later). Never raises: the usage is counted whatever happens here."""
    from neruba.dal.queue import send_batch
    from neruba.observability import logger

    messages = [(str(i), check_message(c)) for i, c in enumerate(customer_ids)]
    try:
        failed = set(send_batch(queue_url, messages))
    except Exception:
        logger.exception("threshold checks not sent; the sweep evaluates them")
        return list(customer_ids)
    lost = [c for i, c in enumerate(customer_ids) if str(i) in failed]
    if lost:
        logger.warning("threshold checks not sent; the sweep evaluates them", extra={"customers": lost})
    return lost


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A customer's invoice threshold and its plan versions' defaults (``domain.plan_defaults``): each
    subscription's threshold is the customer's when set, else its phase's default."""

    own: int | None
    plan: dict[str, str]

    def of(self, subscription_id: str, at: datetime) -> int | None:
        return subscription_threshold(self.own, self.plan.get(subscription_id), at)

    def any(self, at: datetime) -> bool:
        return any_threshold(self.own, self.plan, at)


def customer_thresholds(ctx: Billing, customer_id: str) -> Thresholds | None:
    """The customer's thresholds (one read of its record; None: no such customer)."""
    customer, plan = ctx.plans.customer_with_defaults(customer_id)
    return None if customer is None else Thresholds(customer.invoice_threshold_minor, plan)


def evaluate_customer(
    ctx: Billing, customer_id: str, now: datetime | None = None, thresholds: Thresholds | None = None
) -> list[Evaluation]:
    """Evaluate each active subscription of the customer against its threshold (read from the customer
    unless given); nothing is read beyond the customer when no subscription of it has one."""
    now = now or datetime.now(UTC)
    found_thresholds = thresholds or customer_thresholds(ctx, customer_id)
    if found_thresholds is None or not found_thresholds.any(now):
        return []
    found = []
    for sub in ctx.plans.customer_subscriptions(customer_id):
        threshold = found_thresholds.of(sub.id, now)
        if sub.status in ("active", "trialing") and threshold is not None:
            found.append(evaluate_subscription(ctx, sub.timeline, threshold, now))
    return found


def open_window(ctx: Billing, state: BillingState, subscription: Timeline, now: datetime) -> Window | None:
    """The usage window of the period containing ``now``, when billing has not billed it yet: whatever
    window the state is at (the opening not billed yet, or earlier periods still to bill); None when
    billing ended, the period has not started or was billed already."""
    if state.status != "active":
        return None
    ends_at = subscription_end(subscription, ctx.add_interval)
    anchor = parse_ts(state.anchor)
    for seq in range(max(1, state.next_seq), max(1, state.next_seq) + MAX_CATCH_UP):
        window = window_at(state.subscription_id, anchor, state.interval, seq, ctx.add_interval, ends_at)
        if window is None or window.start > now:
            return None
        if now < window.end:
            return window
    return None


def evaluate_subscription(
    ctx: Billing, subscription: Timeline, threshold_minor: int, now: datetime
) -> Evaluation:
    """Issue the subscription's next threshold invoice if what its open period has not invoiced yet
    reaches ``threshold_minor`` (see the module docstring). A subscription without a billing state yet
    (made before states existed) is evaluated as one at its opening, and the invoice's transaction
    creates the state."""
    ctx.watched.clear()  # what the credit application below learns, for the top-up after it only
    subscription_id = str(subscription.id)
    stored = ctx.billing.state(subscription_id)
    state = stored or new_billing_state(subscription)
    window = open_window(ctx, state, subscription, now)
    if window is None:
        return Evaluation(subscription_id, "not_open")
    record = thresholds(ctx).period(subscription_id, ts(window.start)) if state.thresholds_issued else None
    if record is not None and record.invoices:
        _finish(ctx, record.invoices[-1].invoice_id, now)  # a first attempt may have stopped before it
    record = record or PeriodThresholds(
        subscription_id, str(subscription.customer_id), ts(window.start), ts(window.end)
    )
    rated = as_billed_when_unbillable(rated_to(ctx, subscription, window, now), record, subscription_id)
    pending = sum(int(line["amount_minor"]) for line in rated) - record.billed_minor
    if pending < threshold_minor:
        return Evaluation(subscription_id, "below", pending)
    claim = (
        ctx.billing.threshold_claim_item(subscription_id, window.seq, state.thresholds_issued)
        if stored is not None
        else ctx.billing.state_put_item(replace(state, thresholds_issued=1))
    )
    doc, actions = threshold_invoice(ctx, subscription, window, record, rated, claim, threshold_minor, now)
    try:
        commit(Transaction(actions))
    except Cancelled:
        return Evaluation(subscription_id, "raced", pending)  # the next evaluation sees what won
    count_fired(actions)  # balance alerts the credit applied made
    _finish(ctx, str(doc["id"]), now)
    if int(doc["credits_applied_minor"]) > 0:
        from neruba.logic.billing.top_up import auto_top_up

        auto_top_up(ctx, ctx.ledger, str(doc["customer_id"]), str(doc["currency"]), now)
    return Evaluation(subscription_id, "issued", pending, str(doc["id"]))


def _finish(ctx: Billing, invoice_id: str, now: datetime) -> None:
    """Finalize and send a threshold invoice still a draft (safe to repeat)."""
    invoice = ctx.invoices.get(invoice_id)
    if invoice is not None and invoice.status == "draft":
        issue_now(ctx, invoice_id, now)


def rated_to(ctx: Billing, subscription: Timeline, window: Window, cut: datetime) -> list[dict[str, Any]]:
    """The lines a threshold invoice bills early: the period's usage lines rated with usage to ``cut``
    (hours starting before it), as the upcoming-invoice preview rates them."""
    from neruba.logic.pricing.rating import rate_window

    rated = rate_window(ctx.plans, ctx.usage, subscription, window.start, window.end, as_of=cut)
    return [line_dict(line) for line in rated.lines if line.kind in BILLED_KINDS]


def as_billed_when_unbillable(
    rated: list[dict[str, Any]], record: PeriodThresholds, subscription_id: str
) -> list[dict[str, Any]]:
    """``rated`` with each line rated 0 as unbillable counted as what the period's threshold invoices
    billed of it so far: no threshold invoice takes back what they billed for a line whose usage cannot
    be billed (``logic.billing.unbillable``); a difference withheld so is logged and counted."""
    from neruba.logic.billing import unbillable

    out = []
    withheld = []
    for line in rated:
        if unbillable.flag(line):
            before = record.lines.get(str(line["line_id"]), BilledLine(Decimal(0), 0))
            if before.amount_minor or before.quantity:
                withheld.append({"line_id": line["line_id"], "unbillable": unbillable.flag(line),
                                 "amount_minor": -before.amount_minor})  # fmt: skip
            line = {**line, "quantity": before.quantity, "amount_minor": before.amount_minor}
        out.append(line)
    unbillable.report(withheld, "threshold", subscription_id=subscription_id)
    return out


def increment_lines(
    rated: list[dict[str, Any]], record: PeriodThresholds, cut: datetime
) -> list[dict[str, Any]]:
    """Per line: what is rated to the cut less what the period's earlier threshold invoices billed of it
    (lines whose quantity and amount did not move are left out)."""
    out = []
    seen = set()
    for line in rated:
        line_id = str(line["line_id"])
        seen.add(line_id)
        before = record.lines.get(line_id, BilledLine(Decimal(0), 0))
        out.append(_increment(line, before, Decimal(str(line["quantity"])), int(line["amount_minor"]), cut))
    for line_id, before in sorted(record.lines.items()):
        if line_id not in seen:  # billed before, not rated any more (usage corrected down to nothing)
            gone = {"line_id": line_id, "kind": "usage", "description": line_id, "tiers": [], "source": {}}
            out.append(_increment(gone, before, Decimal(0), 0, cut))
    return [line for line in out if line["quantity"] != 0 or line["amount_minor"] != 0]


def _increment(
    line: dict[str, Any], before: BilledLine, quantity: Decimal, amount: int, cut: datetime
) -> dict[str, Any]:
    first = before.quantity == 0 and before.amount_minor == 0
    return {
        **line,
        "quantity": exact_sum([quantity, -before.quantity]),
        "amount_minor": amount - before.amount_minor,
        "description": str(line.get("description") or line["line_id"])
        + ("" if first else " (less earlier threshold invoices of the period)"),
        "tiers": line.get("tiers", []) if first else [],  # tiers price the whole usage to the cut
        "source": {
            **dict(line.get("source") or {}),
            "threshold": {
                "cut_at": ts(cut),
                "rated_to_cut": {"quantity": quantity, "amount_minor": amount},
                "billed_before": {"quantity": before.quantity, "amount_minor": before.amount_minor},
            },
        },
    }


def threshold_invoice(
    ctx: Billing,
    subscription: Timeline,
    window: Window,
    record: PeriodThresholds,
    rated: list[dict[str, Any]],
    claim: dict[str, Any],
    threshold_minor: int,
    now: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The next threshold invoice of the period and every action of its one transaction (``claim``: the
    write on the billing state that serialises it with the period-end invoice)."""
    n = record.count + 1
    invoice_id = invoice_id_for(f"{window.window_id}:threshold:{n}")
    customer_id, currency = str(subscription.customer_id), str(subscription.currency)
    lines = increment_lines(rated, record, now)
    terms = tax_terms(ctx.billing.discounts, customer_id)  # taxed as any invoice; discounts: period end
    rates = terms.rates
    if rates:
        lines = price_lines(lines, [], rates, currency, (ts(window.start), ts(now)))
    subtotal = sum(int(line["amount_minor"]) for line in lines)
    chargeable = creditable_lines(lines, subtotal)
    credits = ctx.apply_credits(customer_id, currency, chargeable, now) if chargeable else None
    applications = list(credits.applications) if credits else []
    details: dict[str, Any] = {
        "billing_reason": BILLING_REASON,
        "threshold": {
            "threshold_minor": threshold_minor,
            "number_in_period": n,
            "cut_at": ts(now),
            "period_start": ts(window.start),
            "period_end": ts(window.end),
            "billed_before_minor": record.billed_minor,
            "rated_to_cut_minor": record.billed_minor + subtotal,
        },
    }
    details.update(terms.details())
    doc = invoice_document(
        invoice_id=invoice_id,
        customer_id=customer_id,
        subscription_id=window.subscription_id,
        currency=currency,
        kind=KIND,
        seq=n,
        details=details,
        period=(ts(window.start), ts(now)),
        lines=lines,
        applications=applications,
        created_at=ts(now),
        finalize_at=ts(now),
    )
    billed = {line_id: BilledLine(Decimal(0), 0) for line_id in record.lines}  # gone: billed back to 0
    for line in rated:
        billed[str(line["line_id"])] = BilledLine(Decimal(str(line["quantity"])), int(line["amount_minor"]))
    after = PeriodThresholds(
        record.subscription_id,
        record.customer_id,
        record.period_start,
        record.period_end,
        count=n,
        billed_minor=record.billed_minor + subtotal,
        lines=billed,
        invoices=(*record.invoices, ThresholdInvoiceRef(invoice_id, n, ts(now), subtotal)),
    )
    repo = thresholds(ctx)
    actions = [
        ctx.invoices.put_item(doc, now),
        claim,
        repo.put_item(after),
        *(credits.items if credits else []),
        invoice_event("invoice.created", doc, now),
    ]
    tax = {key: int(doc.get(key) or 0) for key in ("tax_minor", "tax_included_minor")}
    actions += ctx.invoice_posting_items(
        PostingRequest(customer_id, invoice_id, currency, subtotal, applications, now, **tax)
    )
    return doc, actions


def handle_check(ctx: Billing, body: str, now: datetime) -> list[Evaluation]:
    """A threshold check from the billing queue: evaluate the customer (malformed: ValueError, so the
    message fails on to the billing DLQ)."""
    import json

    from neruba.observability import logger, metrics

    message = json.loads(body)
    if not isinstance(message, dict) or message.get("check") != CHECK or not message.get("customer_id"):
        raise ValueError("not a threshold check")
    found = evaluate_customer(ctx, str(message["customer_id"]), now)
    issued = [e for e in found if e.outcome == "issued"]
    for one in issued:
        logger.info(
            "threshold invoice issued",
            extra={"invoice_id": one.invoice_id, "subscription_id": one.subscription_id},
        )
    if issued:
        metrics.add_metric(name="ThresholdInvoicesIssued", unit="Count", value=len(issued))
    return found
