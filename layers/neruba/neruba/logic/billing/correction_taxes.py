"""How a correction's negative lines give back their tax in parts (docs/billing.md, "Negative corrections
settle against what they correct" and "A window settles the net of a line's differences").

Plain arithmetic on invoice lines (dicts as billed), no storage: which line each negative line corrects,
how much of it the same line's positive lines offset, the tax it gives back (its own, or the net tax of a
partly offset line), and that tax shared over the parts credit notes, grants and what stays on an invoice
take, each share ``tax x n / total`` rounded half-up once so the shares add up exactly (``Taxes``).
``logic.billing.correction_credits`` decides who takes which part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


def inclusive(line: dict[str, Any], rate_id: str) -> bool:
    """Whether the rate ``rate_id`` of ``line``'s tax is inclusive (its tax is inside the line's amount)."""
    return any(
        str(r["tax_rate_id"]) == rate_id and bool(r.get("inclusive"))
        for r in (line.get("tax") or {}).get("rates") or []
    )


def negatives(lines: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, tuple[str, str]]]:
    """Per negative line of ``lines`` naming the line it corrects: the amount it takes back, and the
    corrected line (invoice id, line id)."""
    wanted: dict[str, int] = {}
    refs: dict[str, tuple[str, str]] = {}
    for line in lines:
        ref = line.get("references") or {}
        if int(line["amount_minor"]) < 0 and ref.get("invoice_id") and ref.get("line_id"):
            refs[str(line["line_id"])] = (str(ref["invoice_id"]), str(ref["line_id"]))
            wanted[str(line["line_id"])] = -int(line["amount_minor"])
    return wanted, refs


def corrected(line: dict[str, Any]) -> tuple[str, str]:
    """The line ``line`` corrects (invoice id, line id), as ``negatives`` names it."""
    named = line.get("references") or {}
    return str(named.get("invoice_id")), str(named.get("line_id"))


def offsets(
    lines: list[dict[str, Any]], wanted: dict[str, int], refs: dict[str, tuple[str, str]]
) -> dict[str, int]:
    """Per negative line, the part of it the positive lines of the same corrected line (in ``lines``)
    offset, negative lines in order: a reverted backfill's +300 and its revert's -300 net out on the
    invoice carrying both, and only the net negative of a line is credited (docs/billing.md, "A window
    settles the net of a line's differences")."""
    positive: dict[tuple[str, str], int] = {}
    for line in lines:
        if int(line["amount_minor"]) > 0:
            positive[corrected(line)] = positive.get(corrected(line), 0) + int(line["amount_minor"])
    out: dict[str, int] = {}
    for line_id, amount in wanted.items():
        take = min(amount, positive.get(refs[line_id], 0))
        if take > 0:
            out[line_id] = take
            positive[refs[line_id]] -= take
    return out


def net_taxes(
    lines: list[dict[str, Any]],
    wanted: dict[str, int],
    refs: dict[str, tuple[str, str]],
    offset: dict[str, int],
) -> Taxes:
    """The tax each negative line gives back with the part of it left to credit (``wanted``, after the
    ``offset``). Nothing offset: the line's own tax. A corrected line whose negative lines are partly
    offset gives back its net tax: its negative lines' tax less its positive lines' (what re-rating the
    surviving events changes of the tax: every adjustment's tax is the corrected invoice's tax now less
    the tax billed so far), shared over its negative lines by what each leaves to credit, rounded half-up
    once (``shares``); the offsetting parts on the invoice then add up to no tax, as to no amount. A
    line without tax of its own among them (no rates): each line's own tax by its part (as a cap
    shares it)."""
    own = {k: tax_of(line) for line in lines if (k := str(line["line_id"])) in wanted}
    tax: dict[str, dict[str, int] | None] = dict(own)
    for ref in dict.fromkeys(refs[k] for k in offset):
        ids = [k for k in wanted if refs[k] == ref]
        back = [own[k] for k in ids]
        back += [tax_of(line) for line in lines if int(line["amount_minor"]) > 0 and corrected(line) == ref]
        if any(t is None for t in back):
            for k in ids:
                whole, line_tax = wanted[k] + offset.get(k, 0), own[k]
                tax[k] = None if line_tax is None else shares(line_tax, [wanted[k]], whole)[0]
            continue
        net: dict[str, int] = {}
        for part in back:
            for rate, value in (part or {}).items():
                net[rate] = net.get(rate, 0) + value
        parts = [wanted[k] for k in ids]
        tax.update(zip(ids, shares(net, parts, sum(parts)), strict=True))
    return Taxes(tax, dict(wanted), own, dict(offset))


def shares(tax: dict[str, int], parts: list[int], total: int) -> list[dict[str, int]]:
    """``tax`` (per rate id) shared over ``parts`` of ``total``: the first ``n`` of ``total`` carry
    ``tax x n / total`` rounded half-up once, so the shares add up to ``tax`` exactly (all of it to the
    last part taking the rest; none to a part of nothing)."""
    out, before, taken = [], dict.fromkeys(tax, 0), 0
    for part in parts:
        if part <= 0:
            out.append(dict.fromkeys(tax, 0))
            continue
        taken += part
        after = upto(tax, taken, total)
        out.append({r: after[r] - before[r] for r in tax})
        before = after
    return out


def upto(tax: dict[str, int], taken: int, total: int) -> dict[str, int]:
    """The tax (per rate id) the first ``taken`` of ``total`` carry: ``tax x taken / total`` rounded
    half-up once; all of it from ``total`` on."""
    if taken >= total:
        return dict(tax)
    return {r: int((Decimal(t * taken) / total).quantize(Decimal(1), rounding=ROUND_HALF_UP))
            for r, t in tax.items()}  # fmt: skip


def tax_of(line: dict[str, Any]) -> dict[str, int] | None:
    """The tax a negative adjustment line gives back, per rate id (the tax collected for that usage);
    None when the line carries no tax of its own (then the credit-note rules tax the credited amount)."""
    tax = line.get("tax") or {}
    if not tax.get("rates"):
        return None
    return {str(r["tax_rate_id"]): -int(r["amount_minor"]) for r in tax["rates"]}


@dataclass
class Taxes:
    """Each negative line's tax shared between the notes taking it in parts: ``tax`` is what the line's
    ``total`` left to credit gives back (its own tax when nothing of it is offset, ``net_taxes``), and
    the tax given back with the first ``n`` of it is ``tax`` x ``n / total`` rounded half-up once, so the
    parts add up to it exactly and the part taking the last of it takes the rest. ``own``: the line's
    own tax; ``offset``: the part of it positive lines of its corrected line offset (a line of the
    invoice, with the rest of its own tax)."""

    tax: dict[str, dict[str, int] | None]
    total: dict[str, int]
    own: dict[str, dict[str, int] | None] = field(default_factory=dict)
    offset: dict[str, int] = field(default_factory=dict)
    given: dict[str, int] = field(default_factory=dict)
    granted: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per line, the exclusive tax of the parts the grants took, still to give back the money way."""
    capped: set[str] = field(default_factory=set)
    """The lines whose tax ``cap`` lowered (what is left of them is never the line as it came)."""

    def cap(self, lines: list[dict[str, Any]], refs: dict[str, tuple[str, str]],
            room: dict[tuple[str, str], dict[str, int]]) -> None:  # fmt: skip
        """Never more exclusive tax given back for a corrected line than it still bills (``room``: per
        corrected line and rate id, its tax less what every credit note, refund and dispute took of it:
        ``correction_carried.tax_still_carried``), the negative lines of one corrected line in order, by
        whatever way each part goes (a note, a grant's part the money way, what stays on an invoice): the
        one cap of the tax, applied before anything is shared. The part of a line's tax it takes off is
        off its own tax too, so what an offset part keeps is unchanged. An inclusive rate is inside the
        amount, which the amount's cap bounds; a rate the corrected line does not bill is left alone."""
        room = {ref: dict(rates) for ref, rates in room.items()}
        by_id = {str(line["line_id"]): line for line in lines}
        for line_id, tax in self.tax.items():
            left = room.get(refs[line_id]) if line_id in refs else None
            if tax is None or left is None:
                continue
            for rate, value in list(tax.items()):
                if rate not in left or inclusive(by_id[line_id], rate) or value <= 0:
                    continue
                give = min(value, max(left[rate], 0))
                left[rate] -= give
                if give < value:
                    tax[rate] = give
                    own = self.own.get(line_id)
                    if own is not None and own is not tax:
                        own[rate] = own.get(rate, 0) - (value - give)
                    self.capped.add(line_id)

    def within(self, line_id: str, amount: int) -> None:
        """The line gives back at most ``amount`` (the grants' part and the money the line still bills:
        the amount's cap): its tax is shared over that, so giving back all of it gives back all of its
        (capped) tax, and a part the cap cuts takes none of it."""
        if amount < self.total[line_id]:
            self.total[line_id] = max(amount, 0)
            self.capped.add(line_id)

    def part(self, line_id: str, amount: int) -> dict[str, int]:
        """The tax per rate id of the next ``amount`` of the line's part to credit (after ``given``)."""
        before = self.given.get(line_id, 0)
        after, was = self.upto(line_id, before + amount), self.upto(line_id, before)
        return {r: v - was.get(r, 0) for r, v in after.items()}

    def grant(self, line_id: str, tax: dict[str, int]) -> None:
        """Keep ``tax`` (the exclusive tax of a grant's part) to give back the money way."""
        if any(tax.values()):
            held = self.granted.setdefault(line_id, {})
            for rate, value in tax.items():
                held[rate] = held.get(rate, 0) + value

    def gave_granted(self, line_id: str, tax: dict[str, int]) -> None:
        """``tax`` of the grants' part's exclusive tax of the line given back (a credit note's): what is
        left of it goes on, to an older invoice carrying the line or the correction's own invoice."""
        held = self.granted.get(line_id, {})
        for rate, value in tax.items():
            held[rate] = held.get(rate, 0) - value
        if not any(v > 0 for v in held.values()):
            self.granted.pop(line_id, None)

    def upto(self, line_id: str, taken: int) -> dict[str, int]:
        """The tax per rate id given back with the first ``taken`` of the line's part to credit."""
        return upto(self.tax[line_id] or {}, taken, self.total[line_id])

    def left(self, line_id: str, amount: int) -> dict[str, int]:
        """The tax per rate id of what is left of the line (``amount``: its offset part and the part no
        note took after ``given``): its own tax less what is not left of its part to credit (the notes'
        part before, and whatever no invoice holds after: a cap)."""
        tax = self.tax[line_id] or {}
        own = self.own.get(line_id, self.tax[line_id]) or {}
        given = self.given.get(line_id, 0)
        kept = amount - self.offset.get(line_id, 0)
        after, was = self.upto(line_id, given + kept), self.upto(line_id, given)
        granted = self.granted.get(line_id, {})  # a grant's part's exclusive tax no note gave back
        return {r: own.get(r, 0) - tax.get(r, 0) + after.get(r, 0) - was.get(r, 0) + granted.get(r, 0)
                for r in {*own, *tax}}  # fmt: skip

    def of(self, parts: list[tuple[str, int, str]]) -> tuple[tuple[str, int], ...] | None:
        """The tax per rate id the parts ``(carrying line, amount, line id)`` of one note give back."""
        if any(self.tax[line_id] is None for _c, _a, line_id in parts):
            return None
        out: dict[str, int] = {}
        for _carrying, amount, line_id in parts:
            before = self.given.get(line_id, 0)
            after, was = self.upto(line_id, before + amount), self.upto(line_id, before)
            for rate, value in after.items():
                out[rate] = out.get(rate, 0) + value - was.get(rate, 0)
        return tuple(sorted(out.items()))

    def took(self, line_id: str, amount: int) -> None:
        self.given[line_id] = self.given.get(line_id, 0) + amount
