"""A negative correction after the end settles against what it takes back (docs/billing.md, "Negative
corrections settle against what they correct").

A correction's negative line takes back an amount that some finalized invoice still carries: the
corrected invoice's own line, or an ``adjustment`` line of a later invoice referencing it (a correction
invoice, most often). A standalone credit would leave that invoice asking for the amount (and Stripe
collecting it, and an operator free to credit it again), so each negative line is credited, by a credit
note, against the invoices carrying its line, newest first, each up to what its line still has to credit;
the credit-note rules decide the rest (the tax given back with it, the part lowering what is due, the part
after a payment becoming the customer's credit). Only what no invoice carries any more stays on the
correction's own invoice (a ``credit_note`` invoice when negative).

Everything is returned as actions of the correction's one transaction: one credit note per credited
invoice, its id ``cn_`` + SHA-256 of the correction's id and the invoice's, numbered with one conditional
move of the ``CN`` counter; each invoice move is conditional on the invoice as read (a payment or credit
note meanwhile cancels the transaction, and the retry decides again). Each note's put marks it owed to
Stripe (``logic.billing.sync_due``), so a rerun or sweep stopping before it sent the notes leaves them to
the scheduler and the billing sweep, which send each once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.credit_notes import CreditNoteRuleError, LineRequest, credit_lines, split_amount
from neruba.errors import ConflictError
from neruba.logic import idempotency
from neruba.logic.billing.discounts import CORRECTED
from neruba.logic.stripe.checks import amount_due, paid_level

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.logic.billing.context import Billing

CARRYING_KINDS = ("usage", "opening", "correction", "threshold")
Issue = Callable[[str], "Invoice | None"]


@dataclass
class Settlement:
    """What a correction's negative lines credited: the notes (``{id, number, invoice_id,
    amount_minor}``), their actions, the lines left for the correction's own invoice, and per line id the
    credit note that took (some of) it."""

    notes: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    credited_by: dict[str, str] = field(default_factory=dict)


def _carried(invoice: Invoice, ref: tuple[str, str]) -> list[str]:
    """The ids of ``invoice``'s lines carrying the original line ``ref`` (invoice id, line id)."""
    if invoice.id == ref[0]:
        return [line.line_id for line in invoice.lines if line.line_id == ref[1]]
    return [
        line.line_id
        for line in invoice.lines
        if line.kind == "adjustment"
        and (line.document.get("references") or {}).get("invoice_id") == ref[0]
        and (line.document.get("references") or {}).get("line_id") == ref[1]
    ]


def _carriers(ctx: Billing, customer_id: str, issue: Issue) -> list[Invoice]:
    """The customer's invoices a credit note can credit, newest first; a correction invoice left a draft
    (its writer stopped before finalizing it) is finalized first (``issue``), as the scheduler would."""
    found = []
    for invoice in ctx.invoices.of_customer(customer_id):
        if invoice.kind not in CARRYING_KINDS:
            continue
        if invoice.status == "draft" and invoice.kind == "correction":
            invoice = issue(invoice.id) or invoice
        if invoice.status in ("finalized", "paid", "payment_failed"):
            found.append(invoice)
    return sorted(found, key=lambda i: (i.document.get("created_at") or "", i.id), reverse=True)


def _plan(
    invoice: Invoice, wanted: dict[str, int], refs: dict[str, tuple[str, str]]
) -> list[tuple[str, int, str]]:
    """Per line of ``invoice`` carrying a wanted line (line id -> amount still to take back, ``refs``:
    the original line each corrects): (carrying line id, amount to credit, wanted line id), each within
    what the carrying line has left."""
    from neruba.logic.billing.credit_notes import line_states

    states = {s.line_id: s for s in line_states(invoice)}
    plan: list[tuple[str, int, str]] = []
    for line_id, amount in wanted.items():
        for carrying in _carried(invoice, refs[line_id]):
            left = states[carrying].remaining_minor - sum(p[1] for p in plan if p[0] == carrying)
            take = min(amount, left)
            if take > 0:
                plan.append((carrying, take, line_id))
                amount -= take
    return plan


def _settles(
    plan: list[tuple[str, int, str]], lines: dict[str, dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """What one credit note settles, kept on it for explain: per adjustment (its key) the line it
    corrects and the amount the note took for it."""
    from neruba.logic.billing.adjustment_terms import adjustment_record

    taken: dict[str, tuple[dict[str, Any], int]] = {}
    for _carrying, amount, line_id in plan:
        key = adjustment_record(lines[line_id], "applied", None, now).key
        ref = lines[line_id].get("references") or {}
        corrects = {name: ref.get(name) for name in ("invoice_id", "number", "line_id")}
        taken[key] = (corrects, taken.get(key, (corrects, 0))[1] + amount)
    return {
        "adjustments": [
            {"key": key, "corrects": corrects, "amount_minor": amount}
            for key, (corrects, amount) in taken.items()
        ]
    }


def settle(ctx: Billing, customer_id: str, correction_id: str, lines: list[dict[str, Any]], now: datetime,
           actor: str, issue: Issue) -> Settlement:  # fmt: skip
    """Credit the negative ``lines`` (unpriced adjustment lines) against the invoices carrying them;
    ``issue`` finalizes and sends a draft correction invoice (``corrections.issue_now``)."""
    from neruba.logic.billing.credit_notes import line_states, note_writes, refuse_status, repository

    result = Settlement()
    wanted: dict[str, int] = {}
    refs: dict[str, tuple[str, str]] = {}
    for line in lines:
        ref = line.get("references") or {}
        if int(line["amount_minor"]) < 0 and ref.get("invoice_id") and ref.get("line_id"):
            refs[str(line["line_id"])] = (str(ref["invoice_id"]), str(ref["line_id"]))
            wanted[str(line["line_id"])] = -int(line["amount_minor"])
    notes: list[tuple[Invoice, list[Any], Any, list[tuple[str, int, str]]]] = []
    for invoice in _carriers(ctx, customer_id, issue) if wanted else []:
        plan = _plan(invoice, {k: v for k, v in wanted.items() if v > 0}, refs)
        if not plan:
            continue
        try:
            refuse_status(invoice)
            payments = ctx.ledger.payments.for_invoice(invoice.customer_id, invoice.id)
            requests = [LineRequest(c, amount_minor=sum(p[1] for p in plan if p[0] == c))
                        for c in dict.fromkeys(p[0] for p in plan)]  # fmt: skip
            remaining_due = amount_due(invoice) - paid_level(invoice)
            refundable = sum(p.refundable_minor for p in payments)
            taken = credit_lines(
                line_states(invoice), requests, max(remaining_due, 0) + refundable, invoice.currency
            )
            split = split_amount(sum(t.total_minor for t in taken), remaining_due=remaining_due,
                                 refundable=refundable)  # fmt: skip
        except (ConflictError, CreditNoteRuleError):
            continue  # this invoice cannot take its share (a payment refunded, Stripe Tax pending): the next
        notes.append((invoice, payments, (taken, split), plan))
        for _carrying, amount, line_id in plan:
            wanted[line_id] -= amount
    if not notes:
        result.lines = [dict(line) for line in lines]
        return result
    by_id = {str(line["line_id"]): line for line in lines}
    repo = repository(ctx)
    numbers, counter = repo.numbers_item(repo.sequence_value(), len(notes))
    result.actions.append(counter)
    for (invoice, payments, (taken, split), plan), number in zip(notes, numbers, strict=True):
        cn_id = "cn_" + idempotency.digest({"correction": correction_id, "invoice_id": invoice.id}, 24)
        words = (f"Correction of invoice {invoice.number or invoice.id}: usage re-rated", None, None)
        settles = _settles(plan, by_id, now)
        _doc, _, actions = note_writes(
            ctx, invoice, payments, taken, split, (cn_id, number), words, actor, now, settles
        )
        result.actions += actions
        result.notes.append({"id": cn_id, "number": number, "invoice_id": invoice.id,
                             "amount_minor": split.total})  # fmt: skip
        for _carrying, _amount, line_id in plan:
            result.credited_by.setdefault(line_id, cn_id)
    for line in lines:
        line_id = str(line["line_id"])
        if line_id not in wanted:
            result.lines.append(dict(line))
        elif wanted[line_id] > 0:  # the rest: taxed again on what is left, at the corrected rates
            rest = {k: v for k, v in line.items() if k not in ("tax", CORRECTED)}
            result.lines.append({**rest, "amount_minor": -wanted[line_id]})
    return result


WINDOW_ACTOR = "system:billing"  # who the credit notes settling a window invoice's corrections name
WINDOW_ROOM = 30  # actions a window's transaction keeps besides its adjustments and the credit notes


def settled_below_zero(ctx: Billing, customer_id: str, invoice_id: str, priced: list[dict[str, Any]],
                       carried: list[dict[str, Any]], now: datetime) -> Settlement | None:  # fmt: skip
    """A window invoice whose lines (``priced``) total below zero settles its negative adjustments
    (``carried``: unpriced, as the window found them) as a correction after the end does: credit notes
    against the invoices carrying them, in the window's own transaction (docs/billing.md, "A window
    invoice below zero"). None when the invoice is not below zero, nothing could be credited, or the
    notes would not fit the window's one transaction (the invoice then stays below zero, as before)."""
    from neruba.dal.transaction import LIMIT
    from neruba.logic.billing.document import invoice_totals

    if not any(int(line["amount_minor"]) < 0 for line in carried):
        return None
    if invoice_totals(priced, 0)["total_minor"] >= 0:
        return None
    # a window is billed before the end: no correction invoice is left a draft to finalize first
    settled = settle(ctx, customer_id, invoice_id, carried, now, WINDOW_ACTOR, lambda _id: None)
    if not settled.notes or len(settled.actions) + len(carried) + WINDOW_ROOM > LIMIT:
        return None
    return settled
