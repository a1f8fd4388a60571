"""Which invoice carries what of a correction's negative lines, and what each would credit
(docs/billing.md, "Negative corrections settle against what they correct").

A corrected line (an invoice's line) is carried by the invoice's own line and by the ``adjustment``
lines of later invoices referencing it (``carrying_lines``); the settlement asks the finalized ones newest
first (``carriers``). ``plan_of`` is what one carrier credits of the money part (a line's part is what it
billed in money less what corrections' notes took; an operator's note comes first out of what the line
keeps), ``granted_here`` what it gives back of the tax of the grants' part, ``note_tax`` the tax of one
note's line, ``credited`` a plan at what a note finally credited, ``overlap`` what an operator's note
took of a grant-paid line beyond its money (its tax, in fact). Plain reads of the invoices as read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from neruba.domain.credit_notes import LineState
from neruba.domain.discounts import share_out
from neruba.logic.billing import money_back

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.logic.billing.context import Billing
    from neruba.logic.billing.correction_taxes import Taxes


CARRYING_KINDS = ("usage", "opening", "correction", "threshold")


Issue = Callable[[str], "Invoice | None"]  # finalizes and sends a draft correction invoice


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _oldest_day(refs: dict[str, tuple[str, str]], lines: list[dict[str, Any]]) -> str | None:
    """The day the oldest corrected invoice's period starts, as the negative lines name it (an adjustment
    line carries its corrected invoice's ``period_start``); None when a line names none."""
    days = [str(line.get("period_start") or "")[:10] for line in lines if str(line["line_id"]) in refs]
    if not days or not all(_DAY.fullmatch(d) for d in days):
        return None
    return min(days)


def read_carriers(ctx: Billing, customer_id: str, refs: dict[str, tuple[str, str]],
                  lines: list[dict[str, Any]], issue: Issue) -> list[Invoice]:  # fmt: skip
    """The customer's invoices that can carry a corrected line, read once per settlement (docs/billing.md,
    "What a settlement reads"): the ``by-list`` range from the day the oldest corrected invoice's period
    starts (every carrier is created after it, in a period starting no earlier), plus the invoices the
    corrected invoices' adjustment records name as carrying them outside that range (a correction
    invoice takes its corrected invoice's period, and may carry a difference of a later invoice left
    pending). All invoices when a corrected invoice is not in the range (a line naming another period).
    A correction invoice left a draft (its writer stopped before finalizing it) is finalized first
    (``issue``), as the scheduler would. Newest period first."""
    corrected = {ref[0] for ref in refs.values()}
    since = _oldest_day(refs, lines)
    found = {i.id: i for i in ctx.invoices.of_customer(customer_id, since)}
    if since is not None and not corrected <= found.keys():
        found = {i.id: i for i in ctx.invoices.of_customer(customer_id)}
    named: set[str] = set()
    for invoice_id in sorted(corrected & found.keys()):
        subscription_id = found[invoice_id].subscription_id
        for adjustment in ctx.billing.adjustments_of(subscription_id, invoice_id) if subscription_id else []:
            if adjustment.applied_to and not adjustment.applied_to.startswith("cn_"):
                named.add(adjustment.applied_to)
    if missing := sorted(named - found.keys()):
        found |= {i.id: i for i in ctx.invoices.get_many(missing).values() if i.customer_id == customer_id}
    out = []
    for invoice in sorted(found.values(), key=lambda i: (i.period_start, i.id), reverse=True):
        if invoice.status == "draft" and invoice.kind == "correction":
            invoice = issue(invoice.id) or invoice
        out.append(invoice)
    return out


def carrying_lines(invoice: Invoice, ref: tuple[str, str]) -> list[str]:
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


def carriers(invoices: list[Invoice]) -> list[Invoice]:
    """The invoices of ``invoices`` (as ``_read`` found them) a credit note can credit, newest first."""
    found = [
        invoice
        for invoice in invoices
        if invoice.kind in CARRYING_KINDS and invoice.status in ("finalized", "paid", "payment_failed")
    ]
    return sorted(found, key=lambda i: (i.document.get("created_at") or "", i.id), reverse=True)


def plan_of(
    invoice: Invoice, wanted: dict[str, int], refs: dict[str, tuple[str, str]]
) -> tuple[list[tuple[str, int, str]], dict[str, int]]:
    """Per line of ``invoice`` carrying a wanted line (line id -> amount still to take back, ``refs``:
    the original line each corrects): (carrying line id, amount to credit, wanted line id), and per wanted
    line what an operator's note of a carrying line already gave back of its part. ``wanted`` is the money
    part (the grants took theirs: ``grant_restores``), so a carrying line's part is what it billed in
    money (less what grants paid of it) less what corrections' notes took; of that part an operator's
    note (a goodwill) comes first out of what the line keeps, so the line credits at most what it has
    left, and the rest of its part was given back already: never asked of an older invoice
    (docs/billing.md, "Refunds and disputes count as taken back")."""
    from neruba.logic.billing.credit_notes import line_states

    states = {s.line_id: s for s in line_states(invoice)}
    plan: list[tuple[str, int, str]] = []
    given: dict[str, int] = {}
    shared: dict[str, int] = {}  # per carrying line, the parts planned so far
    for line_id, amount in wanted.items():
        for carrying in carrying_lines(invoice, refs[line_id]):
            state = states[carrying]
            money = max(state.amount_minor - money_back.applied(invoice, carrying), 0)  # grants aside
            share = min(amount, money - state.corrected_minor - shared.get(carrying, 0))
            if share <= 0:
                continue
            kept = money - state.credited_minor - sum(p[1] for p in plan if p[0] == carrying)
            credit = min(share, kept)
            shared[carrying] = shared.get(carrying, 0) + share
            if credit > 0:
                plan.append((carrying, credit, line_id))
            if share > max(credit, 0):
                given[line_id] = given.get(line_id, 0) + share - max(credit, 0)
            amount -= share
    return plan, given


def granted_here(
    invoice: Invoice,
    plan: list[tuple[str, int, str]],
    taxes: Taxes,
    refs: dict[str, tuple[str, str]],
    creditable: int,
    gone: dict[str, dict[str, int]] | None = None,
) -> dict[tuple[str, str], dict[str, int]]:
    """Per (carrying line of ``invoice``, negative line id): the exclusive tax of the grants' part of the
    line (``Taxes.granted``, what is still to give back) this invoice gives back the money way. The
    invoices carrying a corrected line collected its tax (the corrected invoice, and the invoices whose
    adjustment lines billed more of it: a correction invoice, a window's line); ``settle`` asks them
    newest first, and each gives back no more than its carrying lines still have of that tax after the
    plan's money part (``plan_of``), and no more than it can still credit (``creditable``, after the money
    part's amount and exclusive tax). What no invoice gives back stays on the correction's own invoice
    (``_rest``). A carrying line's part of that tax is what it billed less what corrections' notes took
    (``tax_share_left``); what of it an operator's note (or the money it no longer bills) already gave
    back is added to ``gone`` per negative line and rate, never asked of an older invoice."""
    from neruba.logic.billing.credit_notes import line_states

    if not taxes.granted:
        return {}
    states = {s.line_id: s for s in line_states(invoice)}
    left: dict[str, dict[str, int]] = {}  # per carrying line, the exclusive tax it still has, less the money
    cap: dict[str, dict[str, int]] = {}  # per carrying line, its part of the tax (``tax_share_left``)
    named = (c for line_id in taxes.granted for c in carrying_lines(invoice, refs[line_id]))
    for carrying in dict.fromkeys(named):
        state = states[carrying]
        rates = list(zip(state.rates, state.tax_left(), state.tax_share_left(), strict=True))
        left[carrying] = {rate.tax_rate_id: tax for rate, tax, _ in rates if not rate.inclusive}
        cap[carrying] = {rate.tax_rate_id: part for rate, _, part in rates if not rate.inclusive}
    room = creditable - sum(p[1] for p in plan)
    for carrying in dict.fromkeys(p[0] for p in plan):
        for rate, value in taxes.of([p for p in plan if p[0] == carrying]) or ():
            if rate in left.get(carrying, {}):
                left[carrying][rate] -= value
                cap[carrying][rate] -= value
            if any(r.tax_rate_id == rate and not r.inclusive for r in states[carrying].rates):
                room -= value
    out: dict[tuple[str, str], dict[str, int]] = {}
    lost: dict[str, dict[str, int]] = {}
    for line_id, held in taxes.granted.items():
        for carrying in carrying_lines(invoice, refs[line_id]):
            for rate, value in held.items():
                still = value - sum(v.get(rate, 0) for (_c, k), v in out.items() if k == line_id)
                still -= lost.get(line_id, {}).get(rate, 0)
                share = min(max(still, 0), max(cap[carrying].get(rate, 0), 0))
                take = min(share, max(left[carrying].get(rate, 0), 0), max(room, 0))
                if take > 0:
                    part = out.setdefault((carrying, line_id), {})
                    part[rate] = part.get(rate, 0) + take
                    room -= take
                left[carrying][rate] = left[carrying].get(rate, 0) - take
                cap[carrying][rate] = cap[carrying].get(rate, 0) - share
                if share > take:
                    mine = lost.setdefault(line_id, {})
                    mine[rate] = mine.get(rate, 0) + share - take
    for line_id, part in lost.items():
        if gone is not None:
            into = gone.setdefault(line_id, {})
            for rate, value in part.items():
                into[rate] = into.get(rate, 0) + value
    return out


def note_tax(
    taxes: Taxes, parts: list[tuple[str, int, str]], granted: dict[tuple[str, str], dict[str, int]]
) -> tuple[tuple[str, int], ...] | None:
    """The tax one carrying line of a note gives back for ``parts``: their share of the lines' tax, and
    the exclusive tax of the grants' part ``granted_here`` gives back on that carrying line."""
    tax = taxes.of(parts)
    if tax is None:
        return None
    out = dict(tax)
    carrying = {p[0] for p in parts}
    for (c, _line_id), part in granted.items():
        if c in carrying:
            for rate, value in part.items():
                out[rate] = out.get(rate, 0) + value
    return tuple(sorted(out.items()))


def credited(plan: list[tuple[str, int, str]], taken: list[Any]) -> list[tuple[str, int, str]]:
    """``plan_of`` at what the note credited of each carrying line (``taken``: less than planned when a
    refund or dispute had given part of it back), shared over the lines it takes back in proportion."""
    credited = {t.line_id: t.amount_minor for t in taken}
    out: list[tuple[str, int, str]] = []
    for carrying in dict.fromkeys(p[0] for p in plan):
        mine = [p for p in plan if p[0] == carrying]
        weights = [(str(n), p[1]) for n, p in enumerate(mine) if p[1] > 0]
        shares = share_out(min(credited.get(carrying, 0), sum(w for _, w in weights)), weights)
        out += [(carrying, shares.get(str(n), 0), p[2]) for n, p in enumerate(mine)]
    return out


def overlap(invoice: Invoice, state: LineState) -> int:
    """What operators' notes took of one carrying line beyond what it billed in money (its amount less what
    grants paid of it): a note only ever gives back money, so on a grant-paid line that part of it was the
    line's tax given back, though booked off ``revenue`` (a note credits a line and its tax in
    proportion). Counted as tax given back (``tax_still_carried``), and moved off ``tax_payable`` instead of
    ``revenue`` when the grant gets that line's part back (``correction_carried.reclassed``)."""
    money = max(state.amount_minor - money_back.applied(invoice, state.line_id), 0)
    return max(state.credited_minor - state.corrected_minor - money, 0)
