"""Credit notes against a finalized invoice (docs/billing.md, "Credit notes").

``create_credit_note`` reads the invoice, its earlier credit notes (``line_credits``) and its payments,
decides with ``domain.credit_notes`` what the note takes and where the money goes, and writes in ONE
TransactWriteItems:

- the ledger posting (guard ``credit_note:{id}``): Dr ``revenue`` the amount net of tax, Dr
  ``tax_payable`` the tax it gives back (docs/ledger.md, "Tax in the books"); Cr ``receivable`` the part
  that lowers what is due and the part given as customer credit; Cr ``cash`` the refunded and
  out-of-band parts (never below zero: ``domain.ledger.NEVER_NEGATIVE``);
- the credit note (``CN#{id}``) and the next ``CN-`` number (conditional on the counter read);
- the invoice's credited totals, conditional on nothing having moved since the read (``cn_rev``, status,
  paid total): of two notes racing for the last creditable amount one commits, the other is read again
  and refused when nothing is left;
- each payment record's move (conditional ``refundable_minor >= amount``), so credit notes, refunds and
  disputes together never take back more than was paid;
- the ``credit_note.created`` event, the audit record and the Idempotency-Key record.

Example::

    create_credit_note(ctx, "in_…", CreditNoteCreate(reason="overbilled"), "key:k1", "cn-1")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from neruba import bootstrap
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.domain.credit_notes import (
    CreditedLine,
    CreditedTax,
    CreditNoteRuleError,
    LineRequest,
    LineState,
    Split,
    credit_lines,
    split_amount,
)
from neruba.domain.ledger import Posting, credit, debit
from neruba.domain.numbers import canonical_text
from neruba.domain.taxes import TaxRate
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic import idempotency
from neruba.logic.billing.document import check_amount
from neruba.logic.billing.invoices import get_invoice
from neruba.logic.stripe import stripe_tax
from neruba.logic.stripe.checks import amount_due, paid_level
from neruba.timefmt import iso, ts

if TYPE_CHECKING:
    from neruba.dal.credit_notes import CreditNotesRepository
    from neruba.dal.invoices import Invoice
    from neruba.domain.payments import PaymentRecord
    from neruba.logic.billing.context import Billing
    from neruba.logic.billing.invoices import VoidedLookup
    from neruba.models.billing import CreditNoteCreate

SCOPE = "credit-note"
CREDITABLE = ("finalized", "paid", "payment_failed")
ATTEMPTS = 5


def repository(ctx: Billing) -> CreditNotesRepository:
    """The credit notes, stored next to the invoices."""
    return ctx.billing.credit_notes


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _rates(line_doc: dict[str, Any]) -> tuple[tuple[TaxRate, ...], tuple[int, ...]]:
    """The rates that taxed a line and its tax per rate (from the line's stored ``tax``)."""
    parts = (line_doc.get("tax") or {}).get("rates") or []
    rates = tuple(TaxRate(str(p["tax_rate_id"]), _dec(p["percentage"]), bool(p["inclusive"])) for p in parts)
    return rates, tuple(int(p["amount_minor"]) for p in parts)


def line_states(invoice: Invoice) -> list[LineState]:
    """The invoice's lines at what they were billed for after discounts, with their tax and what earlier
    credit notes took from each."""
    from neruba.logic.billing.discounts import net_amounts

    credited = invoice.document.get("line_credits") or {}
    net = net_amounts([line.document for line in invoice.lines])
    shares = stripe_tax.line_shares(invoice.document, {
        line.line_id: net.get(line.line_id, line.amount_minor) for line in invoice.lines
    }) if stripe_tax.delegated(invoice) else {}  # fmt: skip
    states = []
    for line in invoice.lines:
        was = credited.get(line.line_id) or {}
        rates, tax = shares.get(line.line_id) or _rates(line.document)
        taken = was.get("tax") or {}
        amount, fixed = corrected(was)
        states.append(
            LineState(
                line.line_id,
                net.get(line.line_id, line.amount_minor),
                line.quantity,
                int(was.get("amount_minor", 0)),
                _dec(was.get("quantity")),
                rates,
                tax,
                tuple(int(taken.get(r.tax_rate_id, 0)) for r in rates),
                amount,
                tuple(int(fixed.get(r.tax_rate_id, 0)) for r in rates),
            )
        )
    return states


def corrected(was: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """What corrections' notes took of a line (amount, tax per rate id), from its ``line_credits`` entry.
    An entry written before notes were told apart (no ``corrected_minor``) counts all it took as
    corrections', as settlements then did."""
    if "corrected_minor" in was:
        amount, tax = was["corrected_minor"], was.get("corrected_tax") or {}
    else:
        amount, tax = was.get("amount_minor", 0), was.get("tax") or {}
    return int(amount), {str(k): int(v) for k, v in tax.items()}


def refuse_status(invoice: Invoice) -> None:
    """Refuse (409) an invoice a credit note cannot credit: a draft, a void or top-up invoice, or one whose
    Stripe Tax is not recorded yet."""
    if invoice.status == "draft":
        raise ConflictError(
            "A draft can still change; a credit note credits a finalized invoice.",
            code="invoice_not_finalized",
        )
    if invoice.status not in CREDITABLE:
        raise ConflictError(
            f"Invoice {invoice.id} is {invoice.status}; it cannot be credited.", code="invoice_void"
        )
    if stripe_tax.delegated(invoice) and not invoice.document.get("stripe_tax"):
        raise ConflictError(
            f"Invoice {invoice.id}'s tax is computed by Stripe Tax and Stripe's tax is not recorded yet "
            "(it is with invoice.finalized); credit it once it is.",
            code="stripe_tax_pending",
        )
    if invoice.kind == "topup":
        raise ConflictError(
            "A top-up invoice bought credit, not a service: void the grant's remainder instead.",
            code="invoice_not_creditable",
        )


def _rule(exc: CreditNoteRuleError) -> Exception:
    if exc.conflict:
        return ConflictError(exc.message, code=exc.code, param=exc.param)
    return InvalidRequestError(exc.message, code=exc.code, param=exc.param)


def _requests(body: CreditNoteCreate) -> list[LineRequest] | None:
    if body.lines is None:
        return None
    return [LineRequest(line.line_id, line.amount_minor, line.quantity) for line in body.lines]


def _decide(
    invoice: Invoice, payments: Sequence[PaymentRecord], body: CreditNoteCreate
) -> tuple[list[CreditedLine], Split]:
    remaining_due = amount_due(invoice) - paid_level(invoice)
    refundable = sum(p.refundable_minor for p in payments)
    try:
        creditable = max(remaining_due, 0) + refundable
        taken = credit_lines(line_states(invoice), _requests(body), creditable, invoice.currency)
        total = sum(t.total_minor for t in taken)
        split = split_amount(
            total,
            remaining_due=remaining_due,
            refundable=refundable,
            credit=body.credit_amount_minor,
            refund=body.refund_amount_minor,
            out_of_band=body.out_of_band_amount_minor,
        )
    except CreditNoteRuleError as exc:
        raise _rule(exc) from exc
    return taken, split


def posting(
    invoice: Invoice,
    credit_note_id: str,
    number: str,
    split: Split,
    at: datetime,
    actor: str,
    tax_minor: int = 0,
) -> Posting:
    """The credit note's ledger posting (see the module docstring); ``tax_minor`` is all the tax it gives
    back (exclusive and inclusive), taken out of ``tax_payable`` rather than ``revenue``."""
    entries = []
    if split.total - tax_minor:
        entries.append(debit("revenue", split.total - tax_minor))
    if tax_minor:
        entries.append(debit("tax_payable", tax_minor))
    if split.pre_payment + split.credit:
        entries.append(credit("receivable", split.pre_payment + split.credit))
    if split.refund + split.out_of_band:
        entries.append(credit("cash", split.refund + split.out_of_band))
    return Posting.build(
        idempotency_key=f"credit_note:{credit_note_id}",
        customer_id=invoice.customer_id,
        currency=invoice.currency,
        entries=entries,
        reason="credit_note",
        source="operator",
        source_id=credit_note_id,
        actor=actor,
        at=at,
        metadata={"invoice_id": invoice.id, "credit_note_id": credit_note_id, "number": number},
    )


def _payment_moves(ctx: Billing, payments: Sequence[PaymentRecord], split: Split) -> list[dict[str, Any]]:
    """One conditional update per payment record: the refund first, then credit and out-of-band, each
    taken from the payments in order while they have something refundable."""
    refund, other = split.refund, split.credit + split.out_of_band
    moves = []
    for record in payments:
        left = record.refundable_minor
        r = min(refund, left)
        c = min(other, left - r)
        refund, other = refund - r, other - c
        if r or c:
            moves.append(ctx.ledger.payments.credit_note_item(record, r, c))
    assert refund == other == 0, "the split was checked against what is refundable"
    return moves


def _tax_doc(taken: CreditedLine) -> dict[str, Any]:
    return {
        "exclusive_minor": taken.exclusive_minor,
        "inclusive_minor": taken.inclusive_minor,
        "rates": [_rate_doc(t) for t in taken.tax],
    }


def _rate_doc(part: CreditedTax) -> dict[str, Any]:
    return {
        "tax_rate_id": part.rate.tax_rate_id,
        "percentage": canonical_text(part.rate.percent),
        "inclusive": part.rate.inclusive,
        "amount_minor": part.amount_minor,
    }


def _line_doc(invoice: Invoice, taken: CreditedLine) -> dict[str, Any]:
    line = next(line for line in invoice.lines if line.line_id == taken.line_id)
    return {
        "line_id": taken.line_id,
        "amount_minor": taken.amount_minor,
        "quantity": str(taken.quantity) if taken.quantity is not None else None,
        "description": line.description,
        "invoice_line": {
            "kind": line.kind,
            "quantity": str(line.quantity) if line.quantity is not None else None,
            "amount_minor": line.amount_minor,
        },
        **({"tax": _tax_doc(taken)} if taken.tax else {}),
    }


def tax_totals(taken: Sequence[CreditedLine]) -> dict[str, int]:
    """A credit note's amounts: the credited lines (``subtotal_minor``), the exclusive tax given back
    with them (``tax_minor``, added to the note) and the inclusive tax they contain."""
    return {
        "subtotal_minor": sum(t.amount_minor for t in taken),
        "tax_minor": sum(t.exclusive_minor for t in taken),
        "tax_included_minor": sum(t.inclusive_minor for t in taken),
    }


def _invoice_changes(
    invoice: Invoice, doc: dict[str, Any], taken: Sequence[CreditedLine], split: Split, corrects: bool = False
) -> dict[str, Any]:
    """``corrects``: a correction's note (usage taken back); what it takes of a line is kept apart too
    (``corrected_minor``, ``corrected_tax``), so an operator's note stays told apart from it."""
    current = invoice.document
    line_credits = dict(current.get("line_credits") or {})
    for t in taken:
        was = line_credits.get(t.line_id) or {}
        quantity = _dec(was.get("quantity")) + (t.quantity or 0)
        line_credits[t.line_id] = {
            **was,
            "amount_minor": int(was.get("amount_minor", 0)) + t.amount_minor,
            "quantity": str(quantity),
        }
        amount, fixed = corrected(was)
        line_credits[t.line_id]["corrected_minor"] = amount + (t.amount_minor if corrects else 0)
        if t.tax:
            tax = dict(was.get("tax") or {})
            for part in t.tax:
                tax[part.rate.tax_rate_id] = int(tax.get(part.rate.tax_rate_id, 0)) + part.amount_minor
                if corrects:
                    rate_id = part.rate.tax_rate_id
                    fixed[rate_id] = int(fixed.get(rate_id, 0)) + part.amount_minor
            line_credits[t.line_id]["tax"] = tax
        if fixed or t.tax:
            line_credits[t.line_id]["corrected_tax"] = fixed
    pre = int(current.get("pre_payment_credited_minor") or 0) + split.pre_payment
    due = max(invoice.total_minor, 0) - pre
    paid = paid_level(invoice)
    changes: dict[str, Any] = {
        "credited_minor": int(current.get("credited_minor") or 0) + split.total,
        "pre_payment_credited_minor": pre,
        "post_payment_credited_minor": int(current.get("post_payment_credited_minor") or 0)
        + split.post_payment,
        "credited_balance_minor": int(current.get("credited_balance_minor") or 0) + split.credit,
        "line_credits": line_credits,
        "credit_notes": [
            *(current.get("credit_notes") or []),
            {
                "id": doc["id"],
                "number": doc["number"],
                "amount_minor": split.total,
                "created_at": doc["created_at"],
            },
        ],
        "amount_remaining_minor": max(due - paid, 0),
    }
    if invoice.status in ("finalized", "payment_failed") and due - paid <= 0:
        changes["status"] = "paid"  # nothing left to pay: the credit note settled it
    return changes


def _event(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    from neruba.logic.webhooks.outbox import event_action

    keys = ("id", "number", "invoice_id", "invoice_number", "customer_id", "currency", "amount_minor",
            "subtotal_minor", "tax_minor", "tax_included_minor",
            "pre_payment_amount_minor", "credit_amount_minor", "refund_amount_minor",
            "out_of_band_amount_minor", "reason", "created_at")  # fmt: skip
    data = {**{k: doc[k] for k in keys}, "created_at": iso(now)}
    return event_action("credit_note.created", str(doc["customer_id"]), data, now)


def note_writes(
    ctx: Billing,
    invoice: Invoice,
    payments: Sequence[PaymentRecord],
    taken: Sequence[CreditedLine],
    split: Split,
    ids: tuple[str, str],
    words: tuple[str, str | None, str | None],
    actor: str,
    now: datetime,
    correction: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The credit note ``ids`` (id, number) of ``taken`` on ``invoice``, ``words`` (reason, ticket, memo):
    its document, the invoice's changes and the actions writing them (posting, note, invoice move, payment
    moves, event), without the number counter's move, audit or idempotency records. ``correction``: what
    a correction's note settles (``{adjustments: [{key, corrects, amount_minor}]}``), kept on it."""
    cn_id, number = ids
    reason, ticket, memo = words
    totals = tax_totals(taken)
    book = posting(
        invoice, cn_id, number, split, now, actor, totals["tax_minor"] + totals["tax_included_minor"]
    )
    doc: dict[str, Any] = {
        "id": cn_id,
        "object": "credit_note",
        "number": number,
        "status": "issued",
        "invoice_id": invoice.id,
        "invoice_number": invoice.number,
        "customer_id": invoice.customer_id,
        "currency": invoice.currency,
        "amount_minor": split.total,
        **totals,
        "pre_payment_amount_minor": split.pre_payment,
        "credit_amount_minor": split.credit,
        "refund_amount_minor": split.refund,
        "out_of_band_amount_minor": split.out_of_band,
        "lines": [_line_doc(invoice, t) for t in taken],
        "reason": reason,
        "ticket": ticket,
        "memo": memo,
        "posting_id": book.posting_id,
        "created_at": ts(now),
        "stripe": None,
        **({"correction": correction} if correction else {}),
    }
    changes = _invoice_changes(invoice, doc, taken, split, corrects=correction is not None)
    read = {**invoice.document, "amount_paid_minor": invoice.amount_paid_minor or 0}
    actions = [
        *ctx.ledger.posting_items(book),
        repository(ctx).put_item(doc),
        repository(ctx).invoice_credit_item(invoice.id, read=read, changes=changes),
        *_payment_moves(ctx, payments, split),
        _event(doc, now),
    ]
    return doc, changes, actions


def _attempt(
    ctx: Billing,
    invoice_id: str,
    body: CreditNoteCreate,
    who: idempotency.Actor,
    key: str,
    fp: str,
    now: datetime,
) -> dict[str, Any]:
    invoice = get_invoice(ctx.invoices, invoice_id)
    refuse_status(invoice)
    payments = ctx.ledger.payments.for_invoice(invoice.customer_id, invoice.id)
    taken, split = _decide(invoice, payments, body)
    repo = repository(ctx)
    number, counter = repo.number_item(repo.sequence_value())
    cn_id = "cn_" + idempotency.digest({"invoice_id": invoice.id, "key": key}, 24)
    words = (body.reason, body.ticket, body.memo)
    doc, changes, actions = note_writes(
        ctx, invoice, payments, taken, split, (cn_id, number), words, who.actor, now
    )
    audit = idempotency.audit_put(
        bootstrap.audit(), who, "credit_note.create", cn_id,
        customer_id=invoice.customer_id, reason=body.reason, ticket=body.ticket, at=now,
        before={"invoice_id": invoice.id, "credited_minor": int(invoice.document.get("credited_minor") or 0)},
        after={"number": number, "amount_minor": split.total, "credited_minor": changes["credited_minor"]},
        idempotency_key=key,
    )  # fmt: skip
    actions += [counter, *idempotency.record_items(ctx.billing, audit, SCOPE, key, fp, doc)]
    commit(Transaction(actions))
    return doc


def create_credit_note(
    ctx: Billing,
    invoice_id: str,
    body: CreditNoteCreate,
    actor: str,
    idempotency_key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/invoices/{id}/credit-notes``: the credit note (the same one on a retry)."""
    now = now or datetime.now(UTC)
    key = idempotency.require_key(idempotency_key)
    _within_limit(body)
    fp = idempotency.fingerprint(body.model_dump(mode="json"), invoice_id)
    replayed = idempotency.replay(ctx.billing, SCOPE, key, fp)
    if replayed is not None:
        return send(ctx, dict(replayed))  # the first attempt may have stopped before sending it
    who = idempotency.Actor(actor, request_id)
    for _ in range(ATTEMPTS):
        try:
            return send(ctx, _attempt(ctx, invoice_id, body, who, key, fp, now))
        except Cancelled:
            again = idempotency.replay(ctx.billing, SCOPE, key, fp)
            if again is not None:
                return send(ctx, dict(again))  # a concurrent attempt with the same key committed first
            # something moved meanwhile (another credit note, a payment, a refund): decide again
    raise ConflictError("The invoice kept changing; try again.", code="credit_note_conflict")


def _within_limit(body: CreditNoteCreate) -> None:
    """Every amount the request names within the line limit (400 ``amount_too_large``), as every amount
    an invoice carries is (``document.check_amount``)."""
    for n, line in enumerate(body.lines or []):
        if line.amount_minor is not None:
            check_amount(line.amount_minor, f"lines.{n}.amount_minor", f"The credit of line {line.line_id}")
    for name in ("credit_amount_minor", "refund_amount_minor", "out_of_band_amount_minor"):
        value = getattr(body, name)
        if value is not None:
            check_amount(value, name, name)


def send(ctx: Billing, doc: dict[str, Any]) -> dict[str, Any]:
    """Ask Stripe sync to push the credit note (until it has: a retry sends again, sync is idempotent).
    A process stopping before this leaves the note's marker, sent later (``logic.billing.sync_due``)."""
    from neruba.logic.billing.sync_due import send_credit_note

    stored = repository(ctx).get(str(doc["id"]))
    if not ((stored or {}).get("stripe") or {}).get("credit_note_id"):
        send_credit_note(ctx, str(doc["id"]))
    return doc


def get_credit_note(ctx: Billing, credit_note_id: str) -> dict[str, Any]:
    doc = repository(ctx).get(credit_note_id)
    if doc is None:
        raise NotFoundError(
            f"No credit note {credit_note_id!r}.", code="credit_note_not_found", param="credit_note_id"
        )
    return doc


def list_for_invoice(ctx: Billing, invoice_id: str) -> dict[str, Any]:
    """``GET /v1/invoices/{id}/credit-notes``: the invoice's credit notes, oldest first."""
    invoice = get_invoice(ctx.invoices, invoice_id)
    repo = repository(ctx)
    found = [repo.get(str(c["id"])) for c in invoice.document.get("credit_notes") or []]
    return {"object": "list", "data": [d for d in found if d], "has_more": False, "next_cursor": None}


def explain(ctx: Billing, credit_note_id: str, voided: VoidedLookup | None = None) -> dict[str, Any]:
    """``GET /v1/credit-notes/{id}/explain``: each credited line with the invoice line it takes from, the
    ledger posting with its entries, and for a correction's note the adjustments it settled with the
    voids, amends and backfill behind them (``settles``; ``voided`` finds the voids)."""
    from neruba.logic.billing.explain_links import settles

    doc = get_credit_note(ctx, credit_note_id)
    invoice = get_invoice(ctx.invoices, str(doc["invoice_id"]))
    originals = {line.line_id: line.document for line in invoice.lines}
    stored = ctx.ledger.stored_posting(str(doc["customer_id"]), f"credit_note:{credit_note_id}")
    entries = [
        {"account": e.account, "debit_minor": e.debit_minor, "credit_minor": e.credit_minor}
        for e in (stored.entries if stored else ())
    ]
    return {
        "object": "credit_note_explanation",
        "credit_note_id": credit_note_id,
        "number": doc["number"],
        "invoice_id": invoice.id,
        "invoice_number": invoice.number,
        "amount_minor": doc["amount_minor"],
        "lines": [{**line, "original": originals.get(str(line["line_id"]))} for line in doc["lines"]],
        "posting": {"posting_id": doc["posting_id"], "entries": entries},
        "settles": settles(ctx, doc, voided or _no_voids),
    }


def _no_voids(_customer_id: str, _start: str, _end: str) -> list[Any]:
    return []
