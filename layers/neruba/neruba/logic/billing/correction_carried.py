"""What the customer is still billed for a corrected line, and what was given back of it already
(docs/billing.md, "Every negative difference is capped at what the line still bills", "Refunds and
disputes count as taken back").

``still_carried`` and ``tax_still_carried`` are the caps of a negative line's amount and exclusive tax;
``already_given`` is what a refund or dispute (or an operator's note) of a carrying invoice gave back of a
window's negative line already; ``reclassed`` what of a grant's restoration moves off ``tax_payable``
(an operator's note's ``overlap``). Plain reads of the invoices as read.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from neruba.domain.credit_notes import CreditNoteRuleError, LineRequest, LineState
from neruba.domain.discounts import share_out
from neruba.logic.billing import grant_restores, money_back

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.logic.billing.correction_taxes import Taxes
from neruba.logic.billing.correction_plan import (
    CARRYING_KINDS,
    carriers,
    carrying_lines,
    granted_here,
    note_tax,
    overlap,
    plan_of,
)


def still_carried(
    invoices: list[Invoice],
    refs: dict[str, tuple[str, str]],
    lines: list[dict[str, Any]],
    held: dict[str, Any] | None = None,
    goodwill: bool = True,
) -> dict[tuple[str, str], int]:
    """Per corrected line, what the customer is still billed for it: every invoice line carrying it
    (the line, later adjustments of it, a correction's own negative line) less what credit notes took,
    plus this correction's positive lines of it, less what grants got back of it (``held``,
    ``grant_restores``). A negative line never takes back more than this. ``goodwill`` False: what
    corrections left of it, an operator's notes aside (what was billed of it, for the money part)."""
    from neruba.logic.billing.credit_notes import line_states

    out = {ref: 0 for ref in refs.values()}
    for invoice in invoices:  # as ``_read`` found them
        if invoice.status == "void" or invoice.kind not in (*CARRYING_KINDS, "credit_note"):
            continue
        states: dict[str, Any] | None = None
        for ref in out:
            for line_id in carrying_lines(invoice, ref):
                states = states or {s.line_id: s for s in line_states(invoice)}
                state = states[line_id]
                left = state.amount_minor - (state.credited_minor if goodwill else state.corrected_minor)
                out[ref] += left
    for line in lines:
        named = line.get("references") or {}
        key = (str(named.get("invoice_id")), str(named.get("line_id")))
        if key in out and int(line["amount_minor"]) > 0:
            out[key] += int(line["amount_minor"])
    for ref in out:
        out[ref] -= grant_restores.restored_of(held or {}, *ref)
    return out


def tax_still_carried(
    invoices: list[Invoice],
    refs: dict[str, tuple[str, str]],
    lines: list[dict[str, Any]],
) -> dict[tuple[str, str], dict[str, int]]:
    """Per corrected line and exclusive rate id, the tax the customer is still billed for it, as
    ``still_carried`` the amount: every invoice line carrying it (the line, later adjustments of it, a
    window's line of nothing but the tax of a grant's part) less the tax credit notes took of it
    (an operator's too), plus ``lines``' positive lines of it. The ceiling of the exclusive tax a correction
    gives back for the line, whichever way (``Taxes.cap``); inclusive tax is inside the amount."""
    from neruba.logic.billing.credit_notes import line_states

    out: dict[tuple[str, str], dict[str, int]] = {ref: {} for ref in refs.values()}
    for invoice in invoices:  # as ``_read`` found them
        if invoice.status == "void" or invoice.kind not in (*CARRYING_KINDS, "credit_note"):
            continue
        states: dict[str, Any] | None = None
        for ref, room in out.items():
            for line_id in carrying_lines(invoice, ref):
                states = states or {s.line_id: s for s in line_states(invoice)}
                state = states[line_id]
                exclusive = [
                    (r, t) for r, t in zip(state.rates, state.tax_left(), strict=True) if not r.inclusive
                ]
                noted = share_out(  # what an operator's note took beyond the line's money was its tax
                    min(overlap(invoice, state), sum(t for _, t in exclusive)),
                    [(r.tax_rate_id, t) for r, t in exclusive if t > 0],
                )
                for rate, left in exclusive:
                    left -= noted.get(rate.tax_rate_id, 0)
                    room[rate.tax_rate_id] = room.get(rate.tax_rate_id, 0) + left
    for line in lines:
        key = (str((line.get("references") or {}).get("invoice_id")),
               str((line.get("references") or {}).get("line_id")))  # fmt: skip
        if key in out and int(line["amount_minor"]) > 0:
            for rate in (line.get("tax") or {}).get("rates") or []:
                if not rate.get("inclusive"):
                    rate_id = str(rate["tax_rate_id"])
                    out[key][rate_id] = out[key].get(rate_id, 0) + int(rate["amount_minor"])
    return out


def _grant_lines(invoices: list[Invoice], ref: tuple[str, str]) -> list[tuple[int, int]]:
    """Per line carrying the corrected line ``ref``, newest invoice first: (what grants paid of it, what
    operators' notes took of it beyond its money: ``overlap``)."""
    from neruba.logic.billing.credit_notes import line_states

    out = []
    for invoice in carriers(invoices):
        states: dict[str, LineState] | None = None
        for line_id in carrying_lines(invoice, ref):
            states = states or {s.line_id: s for s in line_states(invoice)}
            out.append((money_back.applied(invoice, line_id), overlap(invoice, states[line_id])))
    return out


def reclassed(invoices: list[Invoice], refs: dict[str, tuple[str, str]], held: dict[str, Any],
               parts: list[tuple[str, str, int]]) -> dict[tuple[str, str], int]:  # fmt: skip
    """Per (negative line, grant) part, what of its restoration goes off ``tax_payable`` instead of
    ``revenue`` (``overlap``). The grants get back the newest carrying lines' parts first (the last
    applied first), so a carrying line's overlap moves once what its grants still have of it is no more
    than the overlap: ``max(0, overlap - (paid - got back))`` per line, after this restoration less before
    (a line corrected in steps moves it once, with its last calls)."""

    def moved(lines: list[tuple[int, int]], restored: int) -> int:
        total = 0
        for paid, beyond in lines:
            back = min(paid, max(restored, 0))
            restored -= back
            total += max(beyond - (paid - back), 0)
        return total

    out: dict[tuple[str, str], int] = {}
    for ref in dict.fromkeys(refs[p[0]] for p in parts):
        lines = _grant_lines(invoices, ref)
        if not any(overlap for _, overlap in lines):
            continue
        mine = [p for p in parts if refs[p[0]] == ref]
        before = grant_restores.restored_of(held, *ref)
        left = moved(lines, before + sum(p[2] for p in mine)) - moved(lines, before)
        for line_id, grant_id, amount in mine:
            take = min(left, amount)
            if take > 0:
                out[(line_id, grant_id)] = out.get((line_id, grant_id), 0) + take
                left -= take
    return out


def already_given(invoices: list[Invoice], refs: dict[str, tuple[str, str]], wanted: dict[str, int],
              budget: dict[tuple[str, str], int], taxes: Taxes, outside: Callable[[Invoice], int],
              taxed: dict[str, tuple[Invoice, int]]) -> dict[str, int]:  # fmt: skip
    """Per negative line left on a window (``within_billed``), the part of its amount a refund or dispute
    of an invoice carrying it already gave back: the carriers newest first, each planned as ``settle``
    would credit it (the money part and the exclusive tax of the grants' part), less what
    ``money_back.given_already`` leaves of it. The money part's tax follows its amount; what is lost of
    the grants' part's tax is taken off ``taxes.granted`` here, the tax inside what a refund or dispute
    gave back into ``taxed`` per invoice (``outside``: ``money_back.reader``, one read per invoice).
    Nothing when no carrier gave money back."""
    left = {k: min(v, max(budget[refs[k]], 0)) for k, v in wanted.items()}
    walk = copy.deepcopy(taxes)  # the walk's own account of what each carrier would take
    out: dict[str, int] = {}
    for invoice in carriers(invoices):
        plan, given = plan_of(invoice, {k: v for k, v in left.items() if v > 0}, refs)
        gone: dict[str, dict[str, int]] = {}
        granted = granted_here(invoice, plan, walk, refs, money_back.billed(invoice), gone)
        planned = {(p[0], p[2]) for p in plan}
        plan += [(c, 0, line_id) for c, line_id in granted if (c, line_id) not in planned]  # tax only
        if plan and outside(invoice) > 0:
            _lost(invoice, plan, granted, (walk, taxes), outside(invoice), out, taxed)
        for _carrying, amount, line_id in plan:
            left[line_id] -= amount
            walk.took(line_id, amount)
        for line_id, amount in given.items():  # an operator's note gave it back already
            left[line_id] -= amount
            walk.took(line_id, amount)
            out[line_id] = out.get(line_id, 0) + amount
        for (_c, line_id), part in granted.items():
            walk.gave_granted(line_id, part)
        for line_id, part in gone.items():
            walk.gave_granted(line_id, part)
            taxes.gave_granted(line_id, part)
    return out


def _lost(invoice: Invoice, plan: list[tuple[str, int, str]], granted: dict[tuple[str, str], dict[str, int]],
          both: tuple[Taxes, Taxes], outside: int, out: dict[str, int],
          taxed: dict[str, tuple[Invoice, int]]) -> None:  # fmt: skip
    """What a refund or dispute of ``invoice`` already gave back of its ``plan`` (``already_given``): the
    amounts into ``out`` per negative line, the grants' part's tax off ``taxes.granted``, the tax inside
    it into ``taxed`` (``money_back.reclassified``)."""
    walk, taxes = both
    carrying = list(dict.fromkeys(p[0] for p in plan))
    money = {c: walk.of([p for p in plan if p[0] == c]) for c in carrying}
    requests = [LineRequest(c, amount_minor=sum(p[1] for p in plan if p[0] == c),
                            tax_minor=note_tax(walk, [p for p in plan if p[0] == c], granted))
                for c in carrying]  # fmt: skip
    try:
        less, tax_back = money_back.given_already(invoice, requests, outside)
        kept = {r.line_id: r for r in less}
        if tax_back:
            taxed[invoice.id] = (invoice, taxed.get(invoice.id, (invoice, 0))[1] + tax_back)
    except CreditNoteRuleError:
        return
    for request in requests:
        c, amount = request.line_id, int(request.amount_minor or 0)
        mine = kept.get(c)
        lost = amount - (int(mine.amount_minor or 0) if mine else 0)
        shares = [(p[2], p[1]) for p in plan if p[0] == c and p[1] > 0]
        for line_id, share in share_out(lost, shares).items() if lost > 0 else ():
            out[line_id] = out.get(line_id, 0) + share
        was, now = dict(request.tax_minor or ()), dict((mine.tax_minor or ()) if mine else ())
        for rate, value in was.items():
            of_money = dict(money[c] or ()).get(rate, 0)
            # the money part's tax of what was lost, half-up once (whole minor units, both not negative)
            money_lost = (2 * of_money * lost + amount) // (2 * amount) if amount else 0
            gone = value - now.get(rate, 0) - money_lost  # the grants' part's tax given back already
            for (g, line_id), part in granted.items():
                take = min(max(gone, 0), part.get(rate, 0))
                if g == c and take > 0:
                    taxes.gave_granted(line_id, {rate: take})
                    gone -= take
