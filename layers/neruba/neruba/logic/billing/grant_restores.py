"""A negative difference gives back to the grants what they paid (docs/billing.md, "Usage a credit grant
paid, corrected").

A correction (void, amend, backfill revert or replace, rerun, late look-back) lowering a line of an
invoice X whose credit grants paid part of that line gives the money back first and the grants after,
one rule in one place (``split``), in integer minor units, per line of X:

* money first: what the customer is billed for the line in money, i.e. what it still bills
  (``correction_carried.still_carried``: every carrying invoice, less credit notes and what grants got
  back already; refunds and disputes aside, they gave back money and never enlarge the grants' part) less
  what the grants paid of it and did not get back yet. That part goes the money way, as before (credit
  notes, a lower window invoice, a ``credit_note`` invoice), less what a refund or dispute already gave
  back of it;
* then the grants that paid the line (of X's own line, and of later invoices' ``adjustment`` lines
  carrying it: ``paid_of``), in reverse of the order they were applied (the last grant applied gets back
  first), each at most what it paid of the line less what it got back already;
* what is left is more than the line still bills: the cap cuts it (nothing is given back twice).

The grants' part is taken off the negative line (a line the grants take whole is left out, its
adjustment record applied to X, as a line the cap cuts) and given back by one ledger posting per grant
(guard ``grant_restore:{source}:{grant}``): Dr ``revenue``, Cr ``prepaid_credit#{grant}``, and for a
promotional grant the promotional expense reversed as the invoice posting recorded it (Dr
``promotional_allowance``, Cr ``promotional_credit_expense``); the grant's remainder is raised by a
conditional update, and X's record of what it gave back (``GRS#{X}``, per grant: in all, per line, per
source) is put conditional on the record as read, all actions of the correction's own one transaction. A
grant no longer usable (expired, voided, or past its ``expires_at`` before the expiry job ran) is given
back and closed at once in the same posting (Dr ``prepaid_credit#{grant}``, Cr ``promotional_allowance``
or ``breakage``): the customer gets nothing cash-like, and the books show the usage undone and the credit
lapsed.

The tax of the grants' part (docs/billing.md, "The tax of usage a grant paid"): its inclusive tax is inside
what the grant paid and goes back with it, the posting debiting ``tax_payable`` for it instead of
``revenue``; its exclusive tax was paid in money and goes the money way (``correction_credits._restore``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.ledger import Entry, Posting, credit, debit

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.dal.ledger import RestoredGrant
    from neruba.domain.credits import CreditGrant
    from neruba.logic.billing.context import Billing

ACTOR = "system:billing"
MAX_INVOICES = 12  # corrected invoices one write gives grants back for: ~1 record each plus ~5 per grant


@dataclass
class Restoration:
    """What the grants take of a correction's negative lines: per line id the part they take
    (``taken``), the parts given back (``restored``: one per invoice, line and grant) and the actions
    writing them (postings, grants, records)."""

    taken: dict[str, int] = field(default_factory=dict)
    restored: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> list[dict[str, Any]]:
        """What a document shows: per corrected invoice, line and grant, the amount given back."""
        return [dict(r) for r in self.restored]


PAYING = ("finalized", "paid", "payment_failed")  # the invoices whose credit applications count


def already(
    ctx: Billing, invoices: list[Invoice], corrected: set[str]
) -> dict[str, dict[str, RestoredGrant]]:
    """What corrections gave back to grants of each corrected invoice grants paid, its own line or a
    later invoice's adjustment of it (one query each; none for an invoice no grant paid)."""
    paid = {i.id for i in invoices if i.document.get("applications")}
    for invoice in invoices:
        if invoice.id in paid and invoice.status in PAYING:
            paid |= {_named(line.document)[0] for line in invoice.lines if line.kind == "adjustment"}
    return {i.id: ctx.ledger.restored(i.id) for i in invoices if i.id in corrected and i.id in paid}


def _named(line: dict[str, Any]) -> tuple[str, str]:
    """The line an adjustment line corrects (invoice id, line id)."""
    ref = line.get("references") or {}
    return str(ref.get("invoice_id")), str(ref.get("line_id"))


def paid_of(invoices: dict[str, Invoice], ref: tuple[str, str]) -> dict[str, int]:
    """What each grant paid of the corrected line ``ref`` (invoice id, line id), in the order they were
    applied: of the corrected invoice's own line, then of the later invoices' ``adjustment`` lines
    carrying it (a late event billed on a window the grant paid), invoices in the order they were made."""
    paid: dict[str, int] = {}
    ordered = sorted(invoices.values(), key=lambda i: (i.document.get("created_at") or "", i.id))
    for invoice in ordered:
        applications = invoice.document.get("applications") or []
        if not applications or invoice.status not in PAYING:
            continue
        if invoice.id == ref[0]:
            lines = {ref[1]}
        else:
            lines = {
                line.line_id
                for line in invoice.lines
                if line.kind == "adjustment" and _named(line.document) == ref
            }
        for app in applications:
            if str(app["line_id"]) in lines:
                paid[str(app["grant_id"])] = paid.get(str(app["grant_id"]), 0) + int(app["amount_minor"])
    return paid


def restored_of(held: dict[str, dict[str, RestoredGrant]], invoice_id: str, line_id: str) -> int:
    """What grants got back of the line ``line_id`` of ``invoice_id`` so far."""
    return sum(r.lines.get(line_id, 0) for r in (held.get(invoice_id) or {}).values())


def split(
    wanted: dict[str, int],
    refs: dict[str, tuple[str, str]],
    budget: dict[tuple[str, str], int],
    invoices: dict[str, Invoice],
    held: dict[str, dict[str, RestoredGrant]],
    bound: dict[tuple[str, str], int] | None = None,
    billed: dict[tuple[str, str], int] | None = None,
) -> list[tuple[str, str, int]]:
    """The rule (module docstring): per negative line (id -> amount it takes back, ``refs``: the line it
    corrects) the parts the grants take, as (line id, grant id, amount), in the lines' order and, per
    line, the grants in reverse of their application order. ``budget`` is what each corrected line still
    bills (lowered here by what the grants take). ``bound``: the same counting credit notes but not
    refunds and disputes (they gave back money, not credit): the money part and the grants' part of a
    line together never take more than it, so what an operator's note gave back of a grant-paid line is
    not given to the grants again (``budget`` when None). ``billed``: what each line was billed less what
    corrections took back, operators' notes and refunds aside (``bound`` when None): the money part is
    counted on it, so a goodwill (a note, a refund, a dispute) never makes the grants' part larger; it
    comes out of the money part (``correction_plan.plan_of``, ``money_back``). At most ``MAX_INVOICES``
    corrected invoices: the restoration's records and postings are actions of the one transaction
    carrying the difference, whose 100 actions also hold its adjustment lines."""
    parts: list[tuple[str, str, int]] = []
    ceiling = dict(budget if bound is None else bound)
    billed = dict(ceiling if billed is None else billed)  # lowered by the grants' parts below
    spent: dict[tuple[str, str], int] = {}  # the money part of each corrected line the lines took so far
    for line_id, amount in wanted.items():
        invoice_id, corrected = refs[line_id]
        invoice = invoices.get(invoice_id)
        named = {refs[p[0]][0] for p in parts}
        if invoice is None or (invoice_id not in named and len(named) >= MAX_INVOICES):
            continue  # beyond what one transaction holds: the money way, as before (docs/billing.md)
        paid = paid_of(invoices, (invoice_id, corrected))
        if not paid:
            continue
        left = {}
        for grant_id, value in paid.items():
            got = (held.get(invoice_id) or {}).get(grant_id)
            given = sum(p[2] for p in parts if p[1] == grant_id and refs[p[0]] == (invoice_id, corrected))
            left[grant_id] = value - (got.lines.get(corrected, 0) if got else 0) - given
        grants_left = sum(max(v, 0) for v in left.values())
        ref = (invoice_id, corrected)
        # a refund or dispute gave back money: it never makes the grants' part larger (its share of what
        # is taken back is not given back again: ``money_back.given_already`` and the cap)
        money = min(amount, max(billed[ref] - grants_left - spent.get(ref, 0), 0))
        spent[ref] = spent.get(ref, 0) + money
        rest = min(amount - money, grants_left, max(ceiling[ref] - money, 0))
        ceiling[ref] -= money + rest
        for grant_id in reversed(list(paid)):
            take = min(rest, max(left[grant_id], 0))
            if take > 0:
                parts.append((line_id, grant_id, take))
                rest -= take
                budget[ref] -= take
                billed[ref] -= take
    return parts


def restoration(
    ctx: Billing,
    source: str,
    lines: list[dict[str, Any]],
    parts: list[tuple[str, str, int]],
    held: dict[str, dict[str, RestoredGrant]],
    now: datetime,
    tax: dict[tuple[str, str], tuple[int, int]] | None = None,
) -> Restoration:
    """The writes of ``parts`` (``split``) for the correction ``source`` (the window invoice, correction
    invoice or draft revision carrying the difference). ``tax``: per (line id, grant id) the tax of the
    part and the inclusive tax inside it (the grant paid that one: its posting takes it off
    ``tax_payable``; the rest, exclusive, goes back the money way: ``correction_credits._restore``)."""
    out = Restoration()
    if not parts:
        return out
    by_id = {str(line["line_id"]): line for line in lines}
    tax = tax or {}
    per_grant: dict[str, list[tuple[str, str, str, int]]] = {}
    for line_id, grant_id, amount in parts:
        ref = by_id[line_id].get("references") or {}
        invoice_id, corrected = str(ref["invoice_id"]), str(ref["line_id"])
        out.taken[line_id] = out.taken.get(line_id, 0) + amount
        per_grant.setdefault(grant_id, []).append((invoice_id, corrected, line_id, amount))
    for grant_id, taken in sorted(per_grant.items()):
        grant = ctx.ledger.grant(grant_id)
        if grant is None:  # never: a grant an invoice consumed is kept
            raise RuntimeError(f"grant {grant_id} of an invoice is missing")
        amount = sum(t[3] for t in taken)
        closed = closed_as(grant, now)
        contained = sum(tax.get((line_id, grant_id), (0, 0))[1] for line_id in {t[2] for t in taken})
        book = _posting(grant, source, (amount, contained), taken, closed, now)
        out.actions += ctx.ledger.posting_items(book)
        if closed is None:
            out.actions.append(ctx.ledger.grant_restore_item(grant, amount, now))
        for invoice_id in dict.fromkeys(t[0] for t in taken):
            seen = (held.get(invoice_id) or {}).get(grant_id)
            mine = [t for t in taken if t[0] == invoice_id]
            after = _after(grant_id, seen, mine, source, book, now)
            out.actions.append(ctx.ledger.restoration_item(invoice_id, seen, after))
        for invoice_id, corrected, line_id, value in taken:
            number = (by_id[line_id].get("references") or {}).get("number")
            whole, inside = tax.get((line_id, grant_id), (0, 0))
            out.restored.append({
                "invoice_id": invoice_id, "invoice_number": number, "line_id": corrected,
                "adjustment_line_id": line_id, "grant_id": grant_id, "kind": grant.kind,
                "amount_minor": value, "tax_minor": whole, "tax_included_minor": inside,
                "closed": closed, "posting_id": book.posting_id,
            })  # fmt: skip
    return out


def usable_again(restored: list[dict[str, Any]]) -> dict[str, int]:
    """Per grant what a restoration (``Restoration.view``) gives back to its remainder: what the
    window carrying it may apply again to its own usage in the same transaction (docs/billing.md, "Usage
    a credit grant paid, corrected"); a grant closed at once gives nothing usable."""
    out: dict[str, int] = {}
    for part in restored:
        if part.get("closed") is None:
            out[str(part["grant_id"])] = out.get(str(part["grant_id"]), 0) + int(part["amount_minor"])
    return out


def closed_as(grant: CreditGrant, now: datetime) -> str | None:
    """How a grant that can no longer be used is closed at once when given back: ``expired`` (closed by
    expiry, or past its ``expires_at``), ``voided``; None for a usable grant."""
    if grant.status != "active":
        return grant.status
    if grant.expires_at is not None and grant.expires_at <= now:
        return "expired"
    return None


def _after(grant_id: str, seen: RestoredGrant | None, taken: list[tuple[str, str, str, int]], source: str,
           book: Posting, now: datetime) -> RestoredGrant:  # fmt: skip
    from neruba.dal.ledger import RestoredGrant
    from neruba.timefmt import iso

    lines = dict(seen.lines) if seen else {}
    for _invoice, corrected, _line, value in taken:
        lines[corrected] = lines.get(corrected, 0) + value
    amount = sum(t[3] for t in taken)
    mine: dict[str, int] = {}
    for _invoice, corrected, _line, value in taken:
        mine[corrected] = mine.get(corrected, 0) + value
    sources = [*(seen.sources if seen else []),
               {"source_id": source, "amount_minor": amount, "lines": mine, "posting_id": book.posting_id,
                "at": iso(now)}]  # fmt: skip
    return RestoredGrant(grant_id, (seen.restored_minor if seen else 0) + amount, lines, sources)


def _posting(grant: CreditGrant, source: str, amounts: tuple[int, int],
             taken: list[tuple[str, str, str, int]], closed: str | None,
             now: datetime) -> Posting:  # fmt: skip
    """The restoration's posting (module docstring): revenue back to the grant (``amounts``: what the
    grant gets back and the inclusive tax inside it, taken off ``tax_payable`` instead), the promotional
    expense reversed, and for a grant no longer usable its closing at once."""
    amount, contained = amounts
    entries: list[Entry] = [debit("revenue", amount - contained)]
    entries += [debit("tax_payable", contained)] if contained else []
    entries += [credit("prepaid_credit", amount, grant.grant_id)]
    if grant.kind == "promotional":
        entries += [debit("promotional_allowance", amount), credit("promotional_credit_expense", amount)]
    if closed is not None:
        target = "promotional_allowance" if grant.kind == "promotional" else "breakage"
        entries += [debit("prepaid_credit", amount, grant.grant_id), credit(target, amount)]
    invoices = list(dict.fromkeys(t[0] for t in taken))
    return Posting.build(
        idempotency_key=f"grant_restore:{source}:{grant.grant_id}",
        customer_id=grant.customer_id,
        currency=grant.currency,
        entries=entries,
        reason="credit_grant_restored",
        source="invoice",
        source_id=source,
        actor=ACTOR,
        at=now,
        metadata={
            "grant_id": grant.grant_id,
            "invoice_id": invoices[0] if len(invoices) == 1 else None,
            "restored_from": [
                {"invoice_id": i, "line_id": c, "adjustment_line_id": a, "amount_minor": v}
                for i, c, a, v in taken
            ],
            "correction_id": source,
            "closed": closed,
        },
    )


def explained(ctx: Billing, invoice: Invoice, line_id: str) -> list[dict[str, Any]]:
    """What corrections gave back to the grants that paid ``line_id`` of ``invoice`` (explain): per
    grant and source (the invoice, correction or revision carrying the difference), the amount, the
    posting and when."""
    if not invoice.document.get("applications"):
        return []
    out = []
    typed: dict[str, dict[str, Any]] = {}
    for grant_id, record in sorted(ctx.ledger.restored(invoice.id).items()):
        for source in record.sources:
            amount = int((source.get("lines") or {}).get(line_id, 0))
            if amount:
                named = str(source["source_id"])
                if named not in typed:
                    typed[named] = source_of(ctx, named)
                out.append({"grant_id": grant_id, "amount_minor": amount, "source_id": named,
                            "source": typed[named], "posting_id": source["posting_id"],
                            "at": source["at"]})  # fmt: skip
    return out


REVISION = ":rev"  # a draft revision's source: ``{invoice_id}:rev{n}`` (finalize._settled)


def source_of(ctx: Billing, source_id: str) -> dict[str, Any]:
    """What the write a restoration names (``source_id``, its posting's ``metadata.correction_id`` and
    guard key ``grant_restore:{source_id}:{grant}``) is, typed (docs/billing.md, "Usage a credit grant
    paid, corrected"): ``invoice`` (a window invoice, or a correction invoice after the end: GET-able),
    ``invoice_revision`` (a draft's revision: its invoice id and revision number), or ``correction`` (a
    correction after the end the grants took whole: it issued no invoice, so its id is no invoice id and
    ``invoice_id`` is null; the rerun's answer and the corrections sweep's repair name it as
    ``correction_id``). One invoice read for an id that is not a revision."""
    invoice_id, revision, number = source_id.partition(REVISION)
    if revision and number.isdigit():
        return {
            "type": "invoice_revision",
            "id": source_id,
            "invoice_id": invoice_id,
            "revision": int(number),
        }
    if ctx.invoices.get(source_id) is not None:
        return {"type": "invoice", "id": source_id, "invoice_id": source_id, "revision": None}
    return {"type": "correction", "id": source_id, "invoice_id": None, "revision": None}
