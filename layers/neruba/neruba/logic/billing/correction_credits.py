"""A negative correction after the end settles against what it takes back (docs/billing.md, "Negative
corrections settle against what they correct").

A correction's negative line takes back an amount that some finalized invoice still carries: the
corrected invoice's own line, or an ``adjustment`` line of a later invoice referencing it (a correction
invoice, most often). A standalone credit would leave that invoice asking for the amount (and Stripe
collecting it, and an operator free to credit it again), so each negative line is credited, by a credit
note, against the invoices carrying its line, newest first, each up to what its line still has to credit;
the credit-note rules decide the rest (the part lowering what is due, the part after a payment becoming
the customer's credit), but the tax given back is the adjustment's own tax (the tax collected for that
usage), shared between the notes taking it in parts. A line never gives back more than the customer is
still billed for it (what every credit note, an operator's too, took counts as taken back): only what an
invoice still bills but could not take by a note stays on the correction's own invoice (a
``credit_note`` invoice when negative). Positive lines of the same corrected line offset its negative
lines first (they stay lines, adding up to nothing, tax included): only the net negative is credited,
with the net tax (docs/billing.md, "A window settles the net of a line's differences").

Everything is returned as actions of the correction's one transaction: one credit note per credited
invoice, its id ``cn_`` + SHA-256 of the correction's id and the invoice's, numbered with one conditional
move of the ``CN`` counter; each invoice move is conditional on the invoice as read (a payment or credit
note meanwhile cancels the transaction, and the retry decides again). Each note's put marks it owed to
Stripe (``logic.billing.sync_due``), so a rerun or sweep stopping before it sent the notes leaves them to
the scheduler and the billing sweep, which send each once.

The invoices that can carry a corrected line are read once per settlement, from the oldest corrected
invoice's period on, never the customer's whole history (``correction_plan.read_carriers``;
docs/billing.md, "What a settlement reads"). A draft or an invoice in dispute carrying a corrected line
makes the settlement wait (``correction_waits``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.credit_notes import CreditNoteRuleError, LineRequest, credit_lines, split_amount
from neruba.errors import ConflictError
from neruba.logic import idempotency
from neruba.logic.billing import grant_restores, money_back
from neruba.logic.billing.correction_carried import already_given, reclassed, still_carried, tax_still_carried
from neruba.logic.billing.correction_plan import (
    Issue,
    carriers,
    carrying_lines,
    credited,
    granted_here,
    note_tax,
    plan_of,
    read_carriers,
)
from neruba.logic.billing.correction_taxes import (
    Taxes,
    inclusive,
    negatives,
    net_taxes,
    offsets,
    tax_of,
)
from neruba.logic.billing.correction_waits import CarrierWaitError, refuse_disputed, refuse_draft_carriers
from neruba.logic.billing.discounts import CORRECTED
from neruba.logic.stripe.checks import amount_due, paid_level

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.logic.billing.context import Billing


@dataclass
class Settlement:
    """What a correction's negative lines credited: the notes (``{id, number, invoice_id,
    amount_minor}``), their actions, the lines left for the correction's own invoice, per line id the
    credit note that took (some of) it, and the notes' documents as they are written (what a preview
    shows)."""

    notes: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    credited_by: dict[str, str] = field(default_factory=dict)
    documents: list[dict[str, Any]] = field(default_factory=list)
    restored: list[dict[str, Any]] = field(default_factory=list)


def _given_before(result: Settlement, invoice: Invoice, given: dict[str, int],
                  gone: dict[str, dict[str, int]],
                  read: tuple[dict[str, int], dict[tuple[str, str], int], dict[str, tuple[str, str]]],
                  taxes: Taxes) -> None:  # fmt: skip
    """What an operator's note of ``invoice`` already gave back of the parts it carries (``plan_of``'s
    ``given``, ``granted_here``'s ``gone``): taken off what the lines still want, never credited again,
    the invoice named as holding it."""
    wanted, budget, refs = read
    for line_id, amount in given.items():
        wanted[line_id] -= amount
        taxes.took(line_id, amount)
        budget[refs[line_id]] -= amount
        result.credited_by.setdefault(line_id, invoice.id)
    for line_id, part in gone.items():
        taxes.gave_granted(line_id, part)


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
           actor: str, issue: Issue, source: str | None = None, *,
           refuse_drafts: bool = False) -> Settlement:  # fmt: skip
    """Credit the negative ``lines`` (unpriced adjustment lines) against the invoices carrying them;
    ``issue`` finalizes and sends a draft correction invoice (``corrections.issue_now``). The grants that
    paid a corrected line take back their part first (``grant_restores``; ``source`` names the write
    carrying it, the correction's id by default). ``refuse_drafts``: a draft carrying a corrected line
    refuses the settlement (``DraftCarrierError``; a correction after the end, a window below zero)."""
    from neruba.logic.billing.credit_notes import line_states, refuse_status

    result = Settlement()
    wanted, refs = negatives(lines)
    notes: list[tuple[Invoice, list[Any], Any, list[tuple[str, int, str]]]] = []
    # never the invoice settling (a draft revised below zero carries the very lines it settles)
    found = read_carriers(ctx, customer_id, refs, lines, issue) if wanted else []
    invoices = [i for i in found if i.id != correction_id]
    if refuse_drafts:
        refuse_draft_carriers(invoices, refs)
        refuse_disputed(ctx, invoices, lines)
    asked = carriers(invoices)
    held = grant_restores.already(ctx, invoices, {r[0] for r in refs.values()}) if wanted else {}
    outside = money_back.reader(ctx)
    # what a refund or a dispute gave back counts on the invoice it names only, where the note is decided
    # (money_back.given_already): never in the line's budget too, or its part would count twice
    budget = still_carried(invoices, refs, lines, held) if wanted else {}
    billed = still_carried(invoices, refs, lines, held, goodwill=False) if wanted else {}
    offset = offsets(lines, wanted, refs)  # what the same line's positive lines offset: stays a line
    for line_id, amount in offset.items():
        wanted[line_id] -= amount
        budget[refs[line_id]] -= amount  # those positive lines are billed no more: they offset it
        billed[refs[line_id]] -= amount
    taxes = net_taxes(lines, wanted, refs, offset)
    # the net tax against the tax the invoices still bill (this correction's positive lines netted in it)
    taxes.cap(lines, refs, tax_still_carried(invoices, refs, []) if wanted else {})
    # what the grants that paid a line take back of its net (money first: grant_restores.split), in this
    # transaction
    read = (wanted, refs, (budget, billed), invoices, held)
    restored = _restore(ctx, source or correction_id, lines, read, taxes, now)
    result.actions += restored.actions
    result.restored = restored.view()
    for invoice in asked:
        # never planned beyond what the customer is still billed for the line (``still_carried``)
        bounded = {k: min(v, budget[refs[k]]) for k, v in wanted.items()}
        plan, given = plan_of(invoice, {k: v for k, v in bounded.items() if v > 0}, refs)
        if not plan and not given and not any(carrying_lines(invoice, refs[k]) for k in taxes.granted):
            continue
        try:
            refuse_status(invoice)
            payments = ctx.ledger.payments.for_invoice(invoice.customer_id, invoice.id)
            remaining_due = amount_due(invoice) - paid_level(invoice)
            refundable = sum(p.refundable_minor for p in payments)
            creditable = max(remaining_due, 0) + refundable
            gone: dict[str, dict[str, int]] = {}  # the grants' part's tax an operator's note gave back
            granted = granted_here(invoice, plan, taxes, refs, money_back.billed(invoice), gone)
            planned = {(p[0], p[2]) for p in plan}
            plan += [(c, 0, line_id) for c, line_id in granted if (c, line_id) not in planned]  # tax only
            if not plan:
                _given_before(result, invoice, given, gone, (wanted, budget, refs), taxes)
                continue
            requests = [LineRequest(c, amount_minor=sum(p[1] for p in plan if p[0] == c),
                                    tax_minor=note_tax(taxes, [p for p in plan if p[0] == c], granted))
                        for c in dict.fromkeys(p[0] for p in plan)]  # fmt: skip
            requests, tax_back = money_back.given_already(invoice, requests, outside(invoice))
            reclass = money_back.reclassified(ctx, invoice, payments, tax_back, correction_id, now)
            states = line_states(invoice)
            taken = credit_lines(states, requests, creditable, invoice.currency) if requests else []
            if sum(t.total_minor for t in taken) <= 0 and not any(t.inclusive_minor for t in taken):
                taken = []  # never an empty note (nothing this invoice still has to give back)
            split = split_amount(sum(t.total_minor for t in taken), remaining_due=remaining_due,
                                 refundable=refundable)  # fmt: skip
        except (ConflictError, CreditNoteRuleError):
            continue  # this invoice cannot take its share (a payment refunded, Stripe Tax pending): the next
        _given_before(result, invoice, given, gone, (wanted, budget, refs), taxes)
        result.actions += reclass
        if taken:
            notes.append((invoice, payments, (taken, split), credited(plan, taken)))
        else:  # a refund or a dispute gave back all of what it would credit: the invoice holds it
            for _carrying, _amount, line_id in plan:
                result.credited_by.setdefault(line_id, invoice.id)
        for _carrying, amount, line_id in plan:
            wanted[line_id] -= amount
            taxes.took(line_id, amount)
            budget[refs[line_id]] -= amount
        for (_c, line_id), part in granted.items():
            taxes.gave_granted(line_id, part)
    absorbed = []  # lines partly taken back already (an operator's note): the corrected invoice holds it
    for line_id in wanted:  # only what the customer is still billed for can be given back
        keep = min(wanted[line_id], max(budget[refs[line_id]], 0))
        absorbed += [line_id] if keep < wanted[line_id] else []
        budget[refs[line_id]] -= keep
        wanted[line_id] = keep
    for line in lines:
        line_id = str(line["line_id"])
        if line_id not in wanted:
            result.lines.append(dict(line))
        elif wanted[line_id] + offset.get(line_id, 0) > 0 or taxes.granted.get(line_id):
            result.lines.append(_rest(line, wanted[line_id] + offset.get(line_id, 0), taxes))
    if notes:
        _write_notes(ctx, result, notes, (correction_id, actor, now), lines)
    for line_id in absorbed:
        result.credited_by.setdefault(line_id, refs[line_id][0])
    for line_id in restored.taken:  # a line the grants took whole: the corrected invoice holds it
        if wanted[line_id] + offset.get(line_id, 0) <= 0 and not taxes.granted.get(line_id):
            result.credited_by.setdefault(line_id, refs[line_id][0])
    return result


def _restore(ctx: Billing, source: str, lines: list[dict[str, Any]], read: tuple[Any, ...], taxes: Taxes,
             now: datetime) -> grant_restores.Restoration:  # fmt: skip
    """The grants' part of the negative lines (``grant_restores``): taken off ``wanted`` (and off the
    lines' tax as a note's part would be, so the shares still add up to the line's tax), given back by
    the restoration's actions. The inclusive tax of a grant's part is inside what the grant paid: it goes
    back with it, off ``tax_payable`` (``grant_restores``). The exclusive tax was paid in money: it goes
    the money way (``Taxes.granted``: a credit note of the corrected invoice, the window's line, or the
    correction's own invoice; docs/billing.md "The tax of usage a grant paid")."""
    wanted, refs, (budget, billed), invoices, held = read
    # the grants' part is bounded by what corrections left of the line, an operator's notes aside: a note
    # takes money, and what it took beyond a line's money was its tax (``_overlaps``)
    parts = grant_restores.split(wanted, refs, budget, {i.id: i for i in invoices}, held, billed, billed)
    granted: dict[str, int] = {}
    for line_id, _grant, amount in parts:
        granted[line_id] = granted.get(line_id, 0) + amount
    room = dict(budget)  # lowered by the grants' parts: what is left for the money part, in order
    for line_id, amount in wanted.items():
        money = min(amount - granted.get(line_id, 0), max(room[refs[line_id]], 0))
        room[refs[line_id]] -= money
        taxes.within(line_id, granted.get(line_id, 0) + money)
    by_id = {str(line["line_id"]): line for line in lines}
    tax: dict[tuple[str, str], tuple[int, int]] = {}
    for line_id, grant_id, amount in parts:  # each part's tax, in the order the parts take the line
        share = taxes.part(line_id, amount)
        within = {r for r in share if inclusive(by_id[line_id], r)}
        contained = sum(v for r, v in share.items() if r in within)
        was = tax.get((line_id, grant_id), (0, 0))
        tax[(line_id, grant_id)] = (was[0] + sum(share.values()), was[1] + contained)
        taxes.grant(line_id, {r: v for r, v in share.items() if r not in within})
        taxes.took(line_id, amount)
    for key, value in reclassed(invoices, refs, held, parts).items():  # an operator's note's tax
        was = tax.get(key, (0, 0))
        tax[key] = (was[0] + value, was[1] + value)
    restored = grant_restores.restoration(ctx, source, lines, parts, held, now, tax)
    for line_id, amount in restored.taken.items():
        wanted[line_id] -= amount
    return restored


def within_billed(
    ctx: Billing, customer_id: str, lines: list[dict[str, Any]], source: str = "", now: datetime | None = None
) -> tuple[list[dict[str, Any]], dict[str, str], grant_restores.Restoration]:
    """``lines`` (a window's unpriced adjustment lines, or the upcoming preview's) with each negative
    line cut to what the customer is still billed for the line it corrects (``still_carried``: what a
    credit note, an operator's too, took counts as taken back; the window's own positive lines of it
    count as billed), in order; a line cut to nothing is left out. Returns the lines and, per line cut,
    the corrected invoice's id (what its adjustment record names as applied to: the corrected invoice
    holds it, as a rerun's ``settle`` does). The adjustment record keeps the whole difference, so a
    later difference is always computed against the re-rating, and a later positive one is billed.

    Before the cap, the grants that paid a corrected line take back their part (money first,
    ``grant_restores.split``): the third value is that restoration (``source``: the invoice carrying
    the lines; its actions join that invoice's transaction), and a line the grants take whole is left
    out, its corrected invoice named as for a line cut."""
    from datetime import UTC

    wanted, refs = negatives(lines)
    if not wanted:
        return [dict(line) for line in lines], {}, grant_restores.Restoration()
    invoices = read_carriers(ctx, customer_id, refs, lines, lambda _id: None)
    held = grant_restores.already(ctx, invoices, {r[0] for r in refs.values()})
    outside = money_back.reader(ctx)
    # a refund's or dispute's part counts on the invoice it names only (already_given), never in the
    # line's budget too
    budget = still_carried(invoices, refs, lines, held)
    billed = still_carried(invoices, refs, lines, held, goodwill=False)
    taxes = Taxes({k: tax_of(line) for line in lines if (k := str(line["line_id"])) in wanted}, dict(wanted))
    taxes.cap(lines, refs, tax_still_carried(invoices, refs, lines))
    read = (wanted, refs, (budget, billed), invoices, held)
    restored = _restore(ctx, source, lines, read, taxes, now or datetime.now(UTC))
    taxed: dict[str, tuple[Invoice, int]] = {}
    given = already_given(invoices, refs, wanted, budget, taxes, outside, taxed)
    for line_id, amount in given.items():
        wanted[line_id] -= amount  # a refund or dispute gave it back already: never again
        taxes.took(line_id, amount)
    for invoice, tax in taxed.values():  # that tax out of tax_payable, in the window's transaction
        payments = ctx.ledger.payments.for_invoice(invoice.customer_id, invoice.id)
        at = now or datetime.now(UTC)
        restored.actions += money_back.reclassified(ctx, invoice, payments, tax, source, at)
    out: list[dict[str, Any]] = []
    cut: dict[str, str] = {}
    for line in lines:
        line_id = str(line["line_id"])
        if line_id not in wanted:
            out.append(dict(line))
            continue
        keep = min(wanted[line_id], max(budget[refs[line_id]], 0))
        budget[refs[line_id]] -= keep
        if keep < wanted[line_id] or keep == 0 or given.get(line_id):
            cut[line_id] = refs[line_id][0]
        if keep > 0 or taxes.granted.get(line_id):  # the grants' part's exclusive tax: the money way
            out.append(_rest(line, keep, taxes))
    return out, cut, restored


def _write_notes(ctx: Billing, result: Settlement, notes: list[Any], who: tuple[str, str, datetime],
                 lines: list[dict[str, Any]]) -> None:  # fmt: skip
    """The credit notes ``notes`` (invoice, payments, (taken, split), plan), numbered, into ``result``."""
    from neruba.logic.billing.credit_notes import note_writes, repository

    correction_id, actor, now = who
    by_id = {str(line["line_id"]): line for line in lines}
    repo = repository(ctx)
    numbers, counter = repo.numbers_item(repo.sequence_value(), len(notes))
    result.actions.append(counter)
    for (invoice, payments, (taken, split), plan), number in zip(notes, numbers, strict=True):
        cn_id = "cn_" + idempotency.digest({"correction": correction_id, "invoice_id": invoice.id}, 24)
        words = (f"Correction of invoice {invoice.number or invoice.id}: usage re-rated", None, None)
        settles = _settles(plan, by_id, now)
        doc, _, actions = note_writes(
            ctx, invoice, payments, taken, split, (cn_id, number), words, actor, now, settles
        )
        result.actions += actions
        result.documents.append(doc)
        result.notes.append({"id": cn_id, "number": number, "invoice_id": invoice.id,
                             "amount_minor": split.total})  # fmt: skip
        for _carrying, _amount, line_id in plan:
            result.credited_by.setdefault(line_id, cn_id)


def _rest(line: dict[str, Any], amount: int, taxes: Taxes) -> dict[str, Any]:
    """What no invoice carries any more of ``line``: the whole line when nothing was credited, else the
    rest. A line with tax of its own keeps its share of it (the tax of the part the notes took and of this
    rest, less the notes' part: the rule the notes share it by), so the notes and the rest give back
    exactly the adjustment's tax; a line without (no rates) is taxed again on what is left."""
    line_id = str(line["line_id"])
    if amount == -int(line["amount_minor"]) and line_id not in taxes.capped:
        return dict(line)
    if taxes.tax.get(line_id) is None or not line.get(CORRECTED):
        rest = {k: v for k, v in line.items() if k not in ("tax", CORRECTED, "gross_minor")}
        return {**rest, "amount_minor": -amount}
    left = taxes.left(line_id, amount)
    rates = []
    for r in line["tax"]["rates"]:
        part = -left.get(str(r["tax_rate_id"]), 0)
        rates.append({**r, "amount_minor": part, "exact_minor": str(part), "taxable_minor": -amount})
    inclusive = sum(int(r["amount_minor"]) for r in rates if r.get("inclusive"))
    tax = {
        **line["tax"],
        "amount_after_discounts_minor": -amount,
        "net_minor": -amount - inclusive,
        "inclusive_minor": inclusive,
        "exclusive_minor": sum(int(r["amount_minor"]) for r in rates if not r.get("inclusive")),
        "rates": rates,
    }
    rest = {k: v for k, v in line.items() if k != "gross_minor"}
    return {**rest, "amount_minor": -amount, "tax": tax}


WINDOW_ACTOR = "system:billing"  # who the credit notes settling a window invoice's corrections name


WINDOW_ROOM = 30  # actions a window's transaction keeps besides its adjustments and the credit notes


def settled_below_zero(ctx: Billing, customer_id: str, invoice_id: str, priced: list[dict[str, Any]],
                       carried: list[dict[str, Any]], now: datetime,
                       source: str | None = None) -> Settlement | None:  # fmt: skip
    """A window invoice (any of the subscription's, its last or not) whose lines (``priced``) total
    below zero settles its negative adjustments (``carried``: unpriced, as the window found them) as a
    correction after the end does: credit notes against the invoices carrying them, in the window's own
    transaction (docs/billing.md, "A window invoice below zero"); it keeps its own lines and positive
    adjustments. None when the invoice is not below zero, nothing could be credited, or the notes would
    not fit the window's one transaction (the invoice then stays below zero, as before)."""
    from neruba.dal.transaction import LIMIT
    from neruba.logic.billing.document import invoice_totals

    if not any(int(line["amount_minor"]) < 0 for line in carried):
        return None
    if invoice_totals(priced, 0)["total_minor"] >= 0:
        return None
    # a window is billed before the end: no correction invoice is left a draft to finalize first. An
    # earlier window still a draft carrying a corrected line (a grace period longer than a window): the
    # window keeps its negative lines below zero, the draft bills what it carries once finalized
    try:
        settled = settle(ctx, customer_id, invoice_id, carried, now, WINDOW_ACTOR, lambda _id: None, source,
                         refuse_drafts=True)  # fmt: skip
    except CarrierWaitError:
        return None
    if not settled.notes or len(settled.actions) + len(carried) + WINDOW_ROOM > LIMIT:
        return None
    settled.actions.append(window_audit(customer_id, invoice_id, settled.notes, settled.restored, now))
    return settled


def window_audit(customer_id: str, invoice_id: str, notes: list[dict[str, Any]],
                 restored: list[dict[str, Any]], now: datetime) -> dict[str, Any]:  # fmt: skip
    """The audit record of a window's (or a draft revision's) settlement (``invoice.settle``, as an
    operator's credit note has ``credit_note.create``), one action of its transaction: the invoice, the
    notes it issued and what the grants that paid the corrected lines got back (``grant_restores``: per
    corrected invoice, line and grant the amount, its tax and the posting). Written whenever either
    happened, a settlement the grants take whole too. Its id comes from the window's invoice, so the
    window's transaction writes it once."""
    from neruba import bootstrap

    reason = ("negative adjustments credited against the invoices carrying them" if notes
              else "negative adjustments given back to the credit grants that paid them")  # fmt: skip
    return idempotency.audit_put(
        bootstrap.audit(), idempotency.Actor(WINDOW_ACTOR), "invoice.settle", invoice_id,
        customer_id=customer_id, at=now, reason=reason,
        after={"credit_notes": [dict(n) for n in notes], "grant_restorations": [dict(r) for r in restored]},
        idempotency_key=f"window-settlement:{invoice_id}",
    )  # fmt: skip
