"""Corrections after the end: an invoice of their own, because no next invoice will carry them.

A rerun of a finalized invoice normally records its differences as ``pending`` adjustments that the
subscription's next invoice carries. Once the subscription's billing has ended (its billing state is
``ended``: the final window is billed) there is no next invoice, so the differences, together with any
adjustment still pending on that subscription, are billed at once on a **correction invoice** (kind
``correction``; kind ``credit_note`` when the amount is negative):

* ONE TransactWriteItems writes the invoice (a draft due for finalization now, ``attribute_not_exists``),
  every adjustment item (new ones ``applied`` to it, pending ones moved to ``applied``, each conditional),
  the credit it applies (each grant's conditional decrement and the events it causes), its ledger
  posting (an invoice posting booking that credit, or a reduction posting for a credit note; guard
  ``invoice:{id}``), the audit record and the idempotency record of the rerun;
* its id is ``in_`` + SHA-256 of ``correction:`` and the adjustment keys, so two reruns racing on the same
  differences write one invoice (the loser's transaction is cancelled; its retry finds nothing to bill);
* then it is finalized at once (numbered in the gapless ``INV`` sequence, no scheduler lease needed: the
  numbering transaction is conditional) and sent to StripeSyncQueue. A process killed before that leaves a
  draft due now: a retry of the rerun with the same Idempotency-Key, or the next scheduler run, finalizes
  and sends it, once.

A correction invoice applies the customer's usable credit exactly as a window invoice does (``_credits``:
``worker.creditable_lines``, ``context.credits_for``, the grants' order of use, the tax as on a window),
the credit the same correction gives back to a grant included (``grant_restores.usable_again``; the
grant's restoration and consumption one update, ``LedgerRepository.combine_grant_moves``): a consumption
of a grant meanwhile cancels the transaction, and the retry decides again. A credit note applies none.
Its lines are ``adjustment`` lines referencing the original invoice and line (``explain`` shows them, and
the grants that paid each). After the commit, ``consumed`` counts the balance alerts fired and checks the
auto top-up, as after a window (docs/billing.md, "Credit on a correction invoice").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.dal.transaction import LIMIT, items_touched
from neruba.errors import ConflictError
from neruba.logic.billing.adjustment_terms import adjustment_record
from neruba.logic.billing.context import Billing, CreditsResult, PostingRequest
from neruba.logic.billing.discounts import price_lines
from neruba.logic.billing.document import invoice_document, invoice_totals
from neruba.logic.billing.windows import invoice_id_for
from neruba.timefmt import ts

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.domain.credits import CreditApplication
    from neruba.logic.billing.correction_credits import Settlement

KINDS = ("correction", "credit_note")
ACTOR = "system:corrections"  # who the credit notes of a correction found by the sweep name
RESERVED = 2  # a rerun adds its audit and idempotency records to the correction's transaction


def billing_ended(ctx: Billing, subscription_id: str) -> bool:
    """Whether the subscription has no window left to bill (so nothing would carry a pending line)."""
    state = ctx.billing.state(subscription_id)
    return state is not None and state.status == "ended"


def correction_invoice(
    ctx: Billing, original: Invoice, deltas: list[dict[str, Any]], now: datetime, actor: str = ACTOR
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The correction of ``deltas`` (plus adjustments still pending on the subscription) and the actions
    writing it; (None, []) when there is nothing to bill. The correction is ``{"invoice": the correction
    invoice or None, "credit_notes": [...], "lines": every line priced, "amount_minor"}``: negative
    lines are first credited against the invoices carrying them (``logic.billing.correction_credits``),
    and only the rest is billed on an invoice of its own."""
    from neruba.logic.billing.correction_credits import settle

    subscription_id = str(original.subscription_id)
    pending = ctx.billing.pending_adjustments(subscription_id)  # not the applied ones
    if not deltas and not pending:
        return None, []
    records = [adjustment_record(d, "applied", None, now) for d in deltas]
    keys = sorted([r.key for r in records] + [a.key for a in pending])
    invoice_id = invoice_id_for("correction:" + "|".join(keys))
    rates = original.document.get("tax_rates") or []  # the corrected period's rates (no discount)
    period = (original.period_start, original.period_end)

    def priced(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return price_lines(lines, [], rates, original.currency, period)

    every = [*deltas, *(a.line for a in pending)]
    settled = settle(
        ctx,
        original.customer_id,
        invoice_id,
        every,
        now,
        actor,
        lambda i: issue_now(ctx, i, now),
        refuse_drafts=True,
    )
    correction, actions = _written(ctx, original, invoice_id, (records, pending), settled, priced, now)
    # the credit notes and the correction's own invoice post to the same balances: one move each; a
    # grant it gives back to and applies again moves once (grant_restores.usable_again)
    actions = ctx.ledger.combine_grant_moves(ctx.ledger.combine_balance_moves(actions))
    _fits(actions)
    return correction, actions


def _fits(actions: list[dict[str, Any]]) -> None:
    """Refuse (409 ``correction_too_large``, nothing written) a correction whose one transaction would be
    over DynamoDB's action limit (with the rerun's audit and idempotency records) or would write one item
    twice: settling it in several transactions could credit part of it twice after a crash."""
    touched = items_touched(actions)
    repeated = sorted({item for item in touched if touched.count(item) > 1})
    if repeated:  # every repeated move is combined above: this is a defect, never a partial write
        raise RuntimeError(f"a correction's transaction writes {repeated[0]} twice")
    if len(actions) + RESERVED > LIMIT:
        raise ConflictError(
            f"This correction needs {len(actions) + RESERVED} writes in one transaction, more than the "
            f"{LIMIT} a transaction holds (many invoices to credit, or many lines); nothing was written "
            'and the differences stay unbilled (docs/billing.md, "Corrections over one transaction").',
            code="correction_too_large",
            details=[{"actions": len(actions) + RESERVED, "limit": LIMIT}],
        )


def _written(
    ctx: Billing,
    original: Invoice,
    invoice_id: str,
    adjustments: tuple[list[Any], list[Any]],
    settled: Settlement,
    priced: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    now: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The correction ``settled`` leaves and the actions writing it (see ``correction_invoice``)."""
    records, pending = adjustments
    subscription_id = str(original.subscription_id)
    rates = original.document.get("tax_rates") or []
    every = [*(r.line for r in records), *(a.line for a in pending)]
    lines = priced(settled.lines)  # a line of 0 (free usage recounted) is still billed, as a 0 line
    credits = _credits(ctx, original, lines, settled.restored, now)
    applications = list(credits.applications)
    doc = (
        _document(original, invoice_id, rates, lines, now, settled.restored, applications) if lines else None
    )
    billed = {str(line["line_id"]) for line in lines}

    def billed_on(line: dict[str, Any]) -> str:
        line_id = str(line["line_id"])
        return invoice_id if line_id in billed else settled.credited_by.get(line_id, invoice_id)

    actions = [ctx.invoices.put_item(doc, now)] if doc else []
    actions += settled.actions
    actions += [
        ctx.billing.adjustment_put_item(subscription_id, replace(r, applied_to=billed_on(r.line)))
        for r in records
    ]
    actions += [ctx.billing.adjustment_apply_item(subscription_id, a.key, billed_on(a.line)) for a in pending]
    if doc is not None:
        subtotal = sum(int(line["amount_minor"]) for line in lines)
        tax = {key: int(doc.get(key) or 0) for key in ("tax_minor", "tax_included_minor")}
        request = PostingRequest(
            original.customer_id, invoice_id, original.currency, subtotal, applications, now, **tax
        )
        actions += credits.items  # the grants' conditional decrements and the events they cause
        actions += ctx.invoice_posting_items(request)
    credited = sum(int(n["amount_minor"]) for n in settled.notes)
    correction = {
        "id": invoice_id,  # its invoice's id when it issues one; else no invoice's (grants took it whole)
        "invoice": doc,
        "credit_notes": settled.notes,
        "lines": doc["lines"] if doc and not settled.notes else priced(every),
        "amount_minor": (int(doc["total_minor"]) if doc else 0) - credited,
        "grant_restorations": settled.restored,
    }
    return correction, actions


def _credits(
    ctx: Billing,
    original: Invoice,
    lines: list[dict[str, Any]],
    restored: list[dict[str, Any]],
    now: datetime,
) -> CreditsResult:
    """The customer's usable credit applied to a correction invoice's ``lines`` (priced) as a window's
    (``worker.build_invoice``): its chargeable lines (``creditable_lines``: positive lines, no more in
    all than the subtotal, so a credit note applies none), the grants in their order of use, each from
    its remainder as read plus what this correction gives back to it (``grant_restores.usable_again``),
    and the actions consuming them (conditional decrements, with the events they cause)."""
    from neruba.logic.billing.discounts import credit_base
    from neruba.logic.billing.grant_restores import usable_again
    from neruba.logic.billing.worker import creditable_lines

    base = credit_base(lines, [])  # a correction has no discount, one-off or advance line
    chargeable = creditable_lines(base, sum(int(line["amount_minor"]) for line in base))
    if not chargeable:
        return CreditsResult()
    back = usable_again(restored)
    return ctx.apply_credits(original.customer_id, original.currency, chargeable, now, back)


def _document(
    original: Invoice,
    invoice_id: str,
    rates: list[Any],
    lines: list[dict[str, Any]],
    now: datetime,
    restored: Sequence[dict[str, Any]] = (),
    applications: Sequence[CreditApplication] = (),
) -> dict[str, Any]:
    """The correction invoice of ``lines`` (priced), a draft due for finalization now, with the credit
    ``applications`` (``_credits``)."""
    totals = invoice_totals(lines, 0)  # negative (tax given back included): a credit note
    negative = totals["subtotal_minor"] < 0 or totals["total_minor"] < 0
    return invoice_document(
        invoice_id=invoice_id,
        customer_id=original.customer_id,
        subscription_id=str(original.subscription_id),
        currency=original.currency,
        kind="credit_note" if negative else "correction",
        seq=None,
        details={
            "corrects": {"invoice_id": original.id, "number": original.number},
            **({"tax_rates": rates} if rates else {}),
            **{k: original.document[k] for k in ("tax_provider", "tax_location") if k in original.document},
            **({"grant_restorations": list(restored)} if restored else {}),
        },
        period=(original.period_start, original.period_end),
        lines=lines,
        applications=applications,
        created_at=ts(now),
        finalize_at=ts(now),
    )


def answer(correction: dict[str, Any]) -> dict[str, Any]:
    """The ``correction`` part of a rerun's answer: the correction invoice (if any) and the credit notes
    issued against the invoices carrying what it takes back."""
    doc = correction["invoice"]
    notes = correction["credit_notes"]
    where = [f"correction invoice {doc['id']}, issued now"] if doc else []
    where += [f"credit note {n['id']} against invoice {n['invoice_id']}" for n in notes]
    where += [f"credit grant {r['grant_id']} given back {r['amount_minor']} of invoice {r['invoice_id']}"
              for r in correction.get("grant_restorations") or []]  # fmt: skip
    return {
        "type": "correction_invoice"
        if doc and doc["kind"] == "correction"
        else ("credit_note" if doc or notes else "grant_restoration"),
        "invoice_id": doc["id"] if doc else None,
        "correction_id": correction.get("id"),
        "applies_to": "; ".join(where),
        "lines": correction["lines"],
        "amount_minor": correction["amount_minor"],
        "credit_notes": notes,
        "grant_restorations": correction.get("grant_restorations") or [],
    }


def consumed(
    ctx: Billing, correction: dict[str, Any] | None, actions: list[dict[str, Any]], now: datetime
) -> None:
    """After a correction's transaction committed, what follows a window's credit application
    (``worker.billed_window``, ``worker._top_up``): the balance alerts it fired counted, and the
    customer's auto top-up checked when its invoice applied credit (``top_up.auto_top_up`` never raises:
    a failure is logged and left to the next check)."""
    from neruba.logic.billing.top_up import auto_top_up
    from neruba.logic.limits.balance import count_fired

    count_fired(actions)
    doc = (correction or {}).get("invoice")
    if doc and int(doc.get("credits_applied_minor") or 0) > 0:
        auto_top_up(ctx, ctx.ledger, str(doc["customer_id"]), str(doc["currency"]), now)


def send_credit_notes(ctx: Billing, correction: dict[str, Any]) -> None:
    """Ask Stripe sync to push the credit notes a correction issued (until it has; safe to repeat)."""
    from neruba.logic.billing.credit_notes import send

    for note in correction.get("credit_notes") or []:
        send(ctx, note)


def issue_now(ctx: Billing, invoice_id: str, now: datetime) -> Invoice | None:
    """Finalize the correction invoice if it is still a draft, then send it to Stripe sync if it has not
    been sent; returns the invoice as stored. Safe to repeat (both steps are conditional)."""
    from neruba.dal.queue import send_batch
    from neruba.logic.billing import finalize as billing_finalize

    invoice = ctx.invoices.get(invoice_id)
    if invoice is None:
        return None
    if invoice.status == "draft":
        billing_finalize.finalize_invoice(ctx, invoice, now, billing_finalize.no_fence)
        invoice = ctx.invoices.get(invoice_id) or invoice
    unsynced = invoice.status == "finalized" and not invoice.stripe
    if unsynced and not send_batch(ctx.sync_queue_url, [("0", json.dumps({"invoice_id": invoice_id}))]):
        ctx.invoices.clear_sync_due(invoice_id)  # sent: out of the scheduler's sync index
    return invoice


LONGEST_PERIOD_DAYS = {"day": 1, "week": 7, "month": 31, "quarter": 92, "year": 366}  # per interval


def correctable(ctx: Billing, customer_id: str, now: datetime) -> tuple[set[str], str | None]:
    """The customer's subscriptions whose billing ended and whose usage invoices late events may still
    change (an invoice of a period that ended within ``ctx.late_events``), and the day (``YYYY-MM-DD``)
    from which such an invoice's period may start: the horizon less the longest period of the
    subscription's interval. A subscription whose billing ended before the horizon has none."""
    from datetime import timedelta

    from neruba.timefmt import parse_ts

    horizon = now - ctx.late_events
    ended: set[str] = set()
    first: datetime | None = None
    for subscription in ctx.plans.customer_subscriptions(customer_id):
        state = ctx.billing.state(subscription.id)
        if state is None or state.status != "ended":
            continue  # its next window re-rates these
        if state.ends_at and parse_ts(state.ends_at) < horizon:
            continue  # every period of it ended before the horizon
        ended.add(subscription.id)
        start = horizon - timedelta(days=LONGEST_PERIOD_DAYS.get(state.interval, 366))
        first = start if first is None or start < first else first
    return ended, ts(first)[:10] if first else None


def late_corrections(
    ctx: Billing,
    customer_id: str,
    now: datetime,
    withheld: list[dict[str, Any]] | None = None,
    deferred: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Bill late events on the finalized usage windows of the customer's ended subscriptions.

    While a subscription is billed, late events are found when its next window is billed; after the end
    nothing is billed again, so this re-rates every finalized usage invoice of an ended subscription whose
    period ended within ``ctx.late_events`` (ingest's maximum event age and a day) and bills a difference
    on a correction invoice (as a rerun would). Reads: the customer's subscriptions and their billing
    states, then only the invoices whose period starts from :func:`correctable`'s day on (none when no
    ended subscription can change), and per invoice its own adjustments (a key range of ``ADJ#``).
    Idempotent: recorded adjustments are counted, so a second call finds nothing; two callers at once
    write one invoice (conditional puts). Returns ``{invoice_id, subscription_id, corrects}`` per invoice
    issued. A difference against a line re-rated 0 as unbillable is not billed
    (``logic.billing.unbillable``): it is logged, counted and added to ``withheld``, and the invoice stays
    as billed. A correction a draft invoice carries a difference of (a window in its grace period) is
    left for a later run (``correction_waits.DraftCarrierError``), and so is one taking back usage of an
    invoice with a dispute open (``DisputedCarrierError``): logged and added to ``deferred``.
    """
    from neruba.logic.billing import unbillable
    from neruba.logic.billing.correction_sources import carried
    from neruba.logic.billing.deltas import line_deltas, rated_lines
    from neruba.timefmt import parse_ts

    ended, since = correctable(ctx, customer_id, now)
    if not ended:
        return []  # no invoice of the customer can change: none is read
    by_subscription: dict[str, list[Invoice]] = {}
    for invoice in ctx.invoices.of_customer(customer_id, since):
        if invoice.kind != "usage" or invoice.status in ("draft", "void"):
            continue
        if str(invoice.subscription_id) not in ended or parse_ts(invoice.period_end) < now - ctx.late_events:
            continue
        by_subscription.setdefault(str(invoice.subscription_id), []).append(invoice)
    issued: list[dict[str, Any]] = []
    tried: set[str] = set()  # the subscriptions a correction was tried for (with their pending ones)
    for subscription_id, originals in sorted(by_subscription.items()):
        subscription = ctx.subscription(subscription_id).timeline
        for original in sorted(originals, key=lambda i: i.period_start):
            rerated = rated_lines(
                ctx.rate_window(subscription, parse_ts(original.period_start), parse_ts(original.period_end))
            )
            deltas, held = unbillable.split(
                line_deltas(original, rerated, ctx.billing.adjustments_of(subscription_id, original.id))
            )
            unbillable.report(held, "corrections", subscription_id=subscription_id)
            if withheld is not None:
                withheld.extend(held)
            if not deltas:
                continue
            deltas, named = carried(ctx, original, rerated, deltas)  # the backfills whose events they carry
            tried.add(subscription_id)
            issued += _billed(ctx, original, deltas, named, now, deferred)
    for subscription_id in sorted(ended - tried):  # only differences left pending (a dispute was open)
        pending = ctx.billing.pending_adjustments(subscription_id)
        corrected = ctx.invoices.get(pending[0].original_invoice_id) if pending else None
        if corrected is not None and corrected.status not in ("draft", "void"):
            issued += _billed(ctx, corrected, [], None, now, deferred)
    return issued


def _billed(ctx: Billing, original: Invoice, deltas: list[dict[str, Any]], named: Any, now: datetime,
            deferred: list[dict[str, Any]] | None) -> list[dict[str, Any]]:  # fmt: skip
    """Bill ``deltas`` of ``original`` and its subscription's pending adjustments as a correction (see
    ``late_corrections``): the correction issued (none, or one), a deferral added to ``deferred``."""
    from neruba.dal.transaction import Cancelled, Transaction, commit
    from neruba.logic.billing.correction_waits import CarrierWaitError

    subscription_id = str(original.subscription_id)
    try:
        correction, actions = correction_invoice(ctx, original, deltas, now)
    except CarrierWaitError as exc:  # settled once the draft is finalized (the dispute decided)
        from neruba.observability import logger

        logger.warning("correction deferred", extra={"invoice_id": original.id, "reason": exc.message})
        if deferred is not None:
            deferred.append({"invoice_id": original.id, "subscription_id": subscription_id,
                             "reason": (exc.details or [{}])[0].get("reason", "draft_carrier")})  # fmt: skip
        return []
    if correction is None:
        return []
    doc = correction["invoice"]
    if named is not None:
        actions += named.carried_items(ctx, "correction_invoiced", doc["id"] if doc else None)
    actions.append(_swept(original, correction, now))
    try:
        commit(Transaction(actions))
    except Cancelled:
        return []  # another caller billed these differences first (or a credited invoice moved)
    consumed(ctx, correction, actions, now)
    if doc is not None:
        issue_now(ctx, str(doc["id"]), now)
    send_credit_notes(ctx, correction)
    return [{
        "invoice_id": doc["id"] if doc else None, "subscription_id": subscription_id,
        "corrects": original.id, "credit_notes": [n["id"] for n in correction["credit_notes"]],
        "grant_restorations": correction.get("grant_restorations") or [],
        "correction_id": correction.get("id"),
    }]  # fmt: skip


SWEEP_ACTOR = "system:sweep"  # who a correction the corrections sweep bills names


def _swept(original: Invoice, correction: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The audit record of a correction the corrections sweep bills (``invoice.correct``, as an operator's
    rerun has ``invoice.rerun``), one action of the correction's own transaction, on the customer's audit
    trail: the corrected invoice, the correction invoice, its credit notes and what grants got back. Its
    idempotency key comes from the correction's id, so two sweeps at once record it once."""
    from neruba import bootstrap
    from neruba.logic import idempotency

    doc = correction["invoice"]
    return idempotency.audit_put(
        bootstrap.audit(), idempotency.Actor(SWEEP_ACTOR), "invoice.correct", original.id,
        customer_id=original.customer_id, at=now, reason="late events after the end (corrections sweep)",
        before={"subtotal_minor": original.subtotal_minor, "rev": original.rev},
        after={"invoice_id": doc["id"] if doc else None,
               "credit_notes": [n["id"] for n in correction["credit_notes"]],
               "grant_restorations": correction.get("grant_restorations") or []},
        idempotency_key=f"late-correction:{correction.get('id') or original.id}",
    )  # fmt: skip
