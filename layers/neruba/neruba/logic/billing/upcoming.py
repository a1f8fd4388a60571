"""The upcoming invoice: each active subscription's current period rated to date (a preview; no writes).

Example:
    >>> upcoming_invoice(plans, usage, "acme")["object"]  # doctest: +SKIP
    'upcoming_invoice'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.periods import period_containing
from neruba.domain.phases import Timeline, timeline_at
from neruba.errors import NotFoundError
from neruba.logic.billing.threshold import upcoming_deductions
from neruba.timefmt import iso

if TYPE_CHECKING:
    from neruba.dal.billing import BillingRepository
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.logic.billing.context import Billing
    from neruba.logic.billing.correction_credits import Settlement


def upcoming_invoice(
    plans: PlansRepository,
    usage: UsageRepository,
    customer_id: str,
    now: datetime | None = None,
    billing: BillingRepository | None = None,
    late: Billing | None = None,
) -> dict[str, Any]:
    """One window per active, started subscription: its current period with usage up to ``now``.

    With ``late`` (the billing context), the **late differences** the next invoice will carry are shown
    too, as pending adjustment lines: the re-rating of the finalized usage windows its look-back covers
    (``logic.billing.worker.lookback_deltas``: voids, amends and late events of finalized periods).

    A subscription canceled at period end counts as ended once that end has passed
    (``domain.phases.timeline_at``): no window is shown for a period that will never be billed.

    Credits are not applied (``credits_applied`` is false): the amounts are the subtotal before any
    credit grant. A customer without an active subscription gets an empty ``windows`` list. Each window
    says which part is a trial: ``trial_end`` (the subscription's, or null), ``in_trial`` (now is before
    it) and ``trial_until`` (the end of the trial part of this window, null when none of it is trial).

    With ``billing``, the subscription's **pending adjustments** (corrections of finalized invoices that
    its next invoice carries) are added as lines of their own, ``pending: true``, counted in the
    subtotal and in ``pending_adjustments_minor``; so are the customer's **pending one-off charges**
    (``next_invoice``) and **pending advance lines** (pay-in-advance events gathered for the next
    invoice, ``logic.billing.advance``), on the first window in their currency, as many as the invoice
    will carry (``one_off_lines.MAX_PICK_UP`` in all, charges first). What the period's **threshold
    invoices** already billed is taken off as the period-end invoice will (``threshold_deduction``
    lines), and ``threshold_invoiced_minor`` is its sum (0 when none). Then the discounts and taxes the
    invoice would apply (:func:`_discounted`); for a customer whose tax is delegated to Stripe Tax the
    tax is not known before Stripe finalizes the invoice: ``tax_provider: stripe_tax``, ``tax_status:
    computed_by_stripe_at_finalization``, ``tax_minor`` null and ``total_minor`` before tax.

    With both, a window whose negative adjustments take it below zero shows what billing will do with
    them (docs/billing.md, "A window invoice below zero"): ``credit_notes_to_issue``, the credit notes
    settling them against the invoices carrying what they take back (which invoice, how much, which
    adjustments), and only what no invoice carries stays a line of the window. Differences of a line
    an invoice in dispute carries are not shown: billing leaves them pending until the dispute is
    decided (docs/billing.md, "A correction waits for an open dispute"). Nothing is written.
    """
    from neruba.logic.billing.correction_waits import held_for_disputes
    from neruba.logic.pricing.rating import rate_window

    now = (now or datetime.now(UTC)).astimezone(UTC)
    if plans.get_customer(customer_id) is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    from neruba.logic.billing.advance_lines import pending_lines as advance_pending
    from neruba.logic.billing.one_off_lines import MAX_PICK_UP
    from neruba.logic.billing.one_off_lines import pending_lines as one_off_pending

    windows = []
    shown: set[str] = set()  # currencies whose pending one-off and advance lines a window shows already
    for sub in sorted(
        (timeline_at(s.timeline, now) for s in plans.customer_subscriptions(customer_id)),
        key=lambda s: (s.anchor, str(s.id)),
    ):
        anchor = sub.anchor.astimezone(UTC)
        if sub.status != "active" or anchor > now:
            continue
        start, end = period_containing(anchor, sub.every, now)
        window = rate_window(plans, usage, sub, start, end, as_of=now).to_dict()
        pending = _pending_lines(billing, str(sub.id)) if billing else []
        pending += _late_lines(late, sub, len(pending)) if late is not None else []
        if billing and str(sub.currency) not in shown:  # the next invoice in that currency carries them
            shown.add(str(sub.currency))
            charges = one_off_pending(billing.one_offs, customer_id, str(sub.currency))
            room = MAX_PICK_UP - len(charges)  # as the invoice picks them up: charges first, then advance
            pending += charges + advance_pending(billing.advance, customer_id, str(sub.currency), room)
        early = upcoming_deductions(billing, str(sub.id), start, window["lines"]) if billing else []
        if late is not None:  # what an invoice in dispute carries stays pending, as billing leaves it
            waiting = held_for_disputes(late, customer_id, pending)
            pending = [line for line in pending if str(line["line_id"]) not in waiting]
        view = _assembled(billing, sub, window, early, pending)
        settled = _settled(late, sub, view, pending, now) if late is not None and billing else None
        notes: list[dict[str, Any]] = []
        restored: list[dict[str, Any]] = []  # what the grants that paid corrected usage get back
        if settled is not None:  # the window's negative adjustments: credit notes, not lines of it
            others = [line for line in pending if line.get("kind") != "adjustment"]
            pending = [*settled.lines, *others]
            view, notes = _assembled(billing, sub, window, early, pending), _to_issue(settled)
            restored = settled.restored
        elif late is not None:  # else each negative one cut to what its line still bills, as billing does
            capped, restored = _within_billed(late, sub, pending, now)
            if capped != pending:
                pending, view = capped, _assembled(billing, sub, window, early, capped)
        windows.append(
            {
                **view,
                "object": "upcoming_window",
                "credits_applied": False,
                "pending_adjustments_minor": sum(int(line["amount_minor"]) for line in pending),
                "threshold_invoiced_minor": -sum(int(line["amount_minor"]) for line in early),
                "credit_notes_to_issue": notes,
                "grant_restorations": [{**r, "posting_id": None} for r in restored],
                **_trial(sub, start, end, now),
            }
        )
    return {
        "object": "upcoming_invoice",
        "customer_id": customer_id,
        "as_of": iso(now),
        "credits_applied": False,
        "note": "Preview of the current period to date; credits are applied when the invoice is issued.",
        "windows": windows,
    }


def _assembled(billing: BillingRepository | None, sub: Timeline, rated: dict[str, Any],
               early: list[dict[str, Any]], pending: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """The rated window with the threshold deductions and pending lines added, discounted and taxed."""
    added = sum(int(line["amount_minor"]) for line in [*early, *pending])
    window = {**rated, "lines": [*rated["lines"], *early, *pending]}
    window["subtotal_minor"] = int(rated["subtotal_minor"]) + added
    if billing is not None:
        window.update(_discounted(billing, sub, window))
    return window


def _settled(ctx: Billing, sub: Timeline, view: dict[str, Any], pending: list[dict[str, Any]],
             now: datetime) -> Settlement | None:  # fmt: skip
    """What billing will do with the window's negative adjustments when they take it below zero: credit
    notes against the invoices carrying what they take back (``correction_credits.settled_below_zero``,
    the window's own decision, read only: the actions are dropped). None when it stays as shown."""
    from neruba.logic.billing.correction_credits import settled_below_zero
    from neruba.logic.billing.windows import window_at

    carried = [line for line in pending if line.get("kind") == "adjustment"]
    state = ctx.billing.state(str(sub.id))
    if not carried or state is None or state.status != "active":
        return None
    window = window_at(str(sub.id), sub.anchor.astimezone(UTC), sub.every, state.next_seq, ctx.add_interval)
    if window is None:
        return None
    return settled_below_zero(ctx, str(sub.customer_id), window.invoice_id, view["lines"], carried, now)


def _to_issue(settled: Settlement) -> list[dict[str, Any]]:
    """The credit notes the window's invoice will issue, as the preview shows them (no id nor number:
    they are given when the invoice is billed)."""
    return [
        {
            "invoice_id": doc["invoice_id"],
            "invoice_number": doc.get("invoice_number"),
            "amount_minor": int(doc["amount_minor"]),
            "subtotal_minor": int(doc["subtotal_minor"]),
            "tax_minor": int(doc["tax_minor"]),
            "adjustments": list(doc["correction"]["adjustments"]),
        }
        for doc in settled.documents
    ]


def _discounted(billing: BillingRepository, sub: Timeline, window: dict[str, Any]) -> dict[str, Any]:
    """The window's lines and amounts with the discounts its invoice would apply now (their next period,
    nothing counted) and the customer's tax rates: ``subtotal_minor`` after discounts, ``discounts_minor``,
    ``tax_minor``, ``tax_included_minor`` and ``total_minor`` (before credits)."""
    from neruba.logic.billing.discounts import discounts_for, period_key, price_lines, tax_terms
    from neruba.logic.billing.document import invoice_totals

    repo = billing.discounts
    lines = window["lines"]
    plans = {(str(ln["plan_code"]), int(ln["plan_version"])) for ln in lines if ln.get("plan_code")}
    snapshots, _ = discounts_for(
        repo, str(sub.customer_id), str(sub.id), sorted(plans), period_key(str(window["period_start"]))
    )
    terms = tax_terms(repo, str(sub.customer_id))
    priced = price_lines(
        lines, snapshots, terms.rates, str(window["currency"]), (window["period_start"], window["period_end"])
    )
    totals = invoice_totals(priced, 0)
    totals.pop("credits_applied_minor")
    found = {"lines": priced, "discounts_minor": 0, "tax_minor": 0, "tax_included_minor": 0, **totals}
    if not terms.provider:
        return {**found, "tax_status": "computed"}
    # Stripe Tax computes it when the invoice is finalized in Stripe: no amount is known now, and 0 would
    # read as "no tax" (docs/billing.md, "The upcoming invoice of a delegated customer")
    return {**found, "tax_minor": None, "tax_included_minor": None, "tax_provider": terms.provider,
            "tax_location": terms.location, "tax_status": STRIPE_AT_FINALIZATION}  # fmt: skip


STRIPE_AT_FINALIZATION = "computed_by_stripe_at_finalization"


def _pending_lines(billing: BillingRepository, subscription_id: str) -> list[dict[str, Any]]:
    """The pending adjustment lines, as the next invoice will carry them, marked as pending."""
    return [_marked(a.line) for a in billing.adjustments(subscription_id) if a.status == "pending"]


def _within_billed(
    ctx: Billing, sub: Timeline, pending: list[dict[str, Any]], now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pending adjustment lines as the next invoice will carry them: the grants that paid a
    corrected line taking back their part, each negative line cut to what the customer is still billed
    for its line (``correction_credits.within_billed``, as billing does); and what the grants get back."""
    from neruba.logic.billing.correction_credits import within_billed

    lines, _cut, restoration = within_billed(ctx, str(sub.customer_id), pending, "preview", now)
    return lines, restoration.view()


def _marked(adjustment_line: dict[str, Any]) -> dict[str, Any]:
    line = dict(adjustment_line)
    line["pending"] = True
    line["description"] = (
        f"Pending: {line.get('description') or line['line_id']} (billed on the next invoice)"
    )
    return line


def _late_lines(ctx: Billing, sub: Timeline, taken: int) -> list[dict[str, Any]]:
    """The differences the subscription's next window invoice will find in its look-back (as it will
    carry them, marked pending); none when its next window is its opening or billing has ended."""
    from neruba.logic.billing.windows import window_at
    from neruba.logic.billing.worker import MAX_ADJUSTMENT_LINES, lookback_deltas

    state = ctx.billing.state(str(sub.id))
    if state is None or state.status != "active":
        return []
    window = window_at(str(sub.id), sub.anchor.astimezone(UTC), sub.every, state.next_seq, ctx.add_interval)
    if window is None or window.kind != "usage":
        return []
    recorded = ctx.billing.adjustments(str(sub.id))
    room = MAX_ADJUSTMENT_LINES - taken
    return [_marked(line) for line in lookback_deltas(ctx, sub, window, recorded, room, report=False)]


def _trial(sub: Timeline, start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    """The trial fields of a window: the trial end, whether now is in the trial, the window's trial part."""
    trial_end = sub.trial_end.astimezone(UTC) if sub.trial_end else None
    until = None if trial_end is None or trial_end <= start else min(trial_end, end)
    return {
        "trial_end": iso(trial_end) if trial_end else None,
        "in_trial": trial_end is not None and now < trial_end,
        "trial_until": iso(until) if until else None,
    }
