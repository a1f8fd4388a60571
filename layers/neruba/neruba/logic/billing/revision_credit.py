"""Credit on a draft's revision (docs/billing.md, "A draft revised during its grace period").

A window's draft applied the customer's usable credit to its chargeable lines when it was created. Usage
counted during its grace period changes those lines when the draft is revised (re-rated at
finalization), so the revision settles credit as the window would have with the usage known now:

- a line now chargeable for less than the grants paid of it gives the difference back to those grants,
  the last applications first (``trimmed``): the grant's remainder goes up by it (a grant closed since,
  expired or voided, is closed again at once, as a correction's restoration does), never turned into
  the customer's money;
- what is left chargeable and not yet paid by credit is offered to the usable grants, in their order of
  use (``credits_for``, with what this revision gives back usable again), their conditional decrements
  in the revision's transaction.

The moves are posted as one posting of the revision (key ``invoice:{id}:rev{n}:credit``), per grant the
credit applied (Dr ``prepaid_credit``, Cr ``receivable``) or given back (the reverse), with the
promotional allowance and expense moved as an invoice posting moves them; the revision's own posting
moves revenue, tax and receivable by the re-rated amounts as before. Plain computations and the items
to write; nothing is written here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.credits import CreditApplication, Line

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.domain.ledger import Entry
    from neruba.logic.billing.context import Billing

UNCREDITED_KINDS = ("one_off", "advance")  # credit never pays one-off charges or advance lines


@dataclass
class RevisedCredit:
    """The draft's applications after the revision, what they come to, and the actions writing the
    change (grant decrements and restorations, the revision's credit posting)."""

    applications: list[dict[str, Any]] = field(default_factory=list)
    applied_minor: int = 0
    actions: list[dict[str, Any]] = field(default_factory=list)


def chargeable(lines: Sequence[Mapping[str, Any]]) -> list[Line]:
    """What credit may pay of ``lines`` (the revised draft's), as a window computes it."""
    from neruba.logic.billing.discounts import credit_base
    from neruba.logic.billing.worker import creditable_lines

    uncredited = [str(line["line_id"]) for line in lines if line.get("kind") in UNCREDITED_KINDS]
    base = credit_base(lines, uncredited)
    return creditable_lines(base, sum(int(line["amount_minor"]) for line in base))


def trimmed(
    applications: list[dict[str, Any]], allowed: Mapping[str, int]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``applications`` with each line's paid by credit cut to ``allowed`` (what credit may pay of it now;
    a line not there: nothing), the last applications first; and per grant what it gets back."""
    kept = [dict(a) for a in applications]
    back: dict[str, int] = {}
    for line_id in dict.fromkeys(str(a["line_id"]) for a in kept):
        over = sum(int(a["amount_minor"]) for a in kept if str(a["line_id"]) == line_id)
        over -= allowed.get(line_id, 0)
        for app in reversed([a for a in kept if str(a["line_id"]) == line_id]):
            if over <= 0:
                break
            take = min(over, int(app["amount_minor"]))
            app["amount_minor"] = int(app["amount_minor"]) - take
            back[str(app["grant_id"])] = back.get(str(app["grant_id"]), 0) + take
            over -= take
    return [a for a in kept if int(a["amount_minor"]) > 0], back


def revised_credit(
    ctx: Billing,
    invoice: Invoice,
    lines: Sequence[Mapping[str, Any]],
    revision: int,
    now: datetime,
    usable: Mapping[str, int] | None = None,
) -> RevisedCredit | None:
    """The credit of ``invoice`` (a draft) revised to ``lines`` (see the module docstring); ``usable``:
    per grant what the same revision gives back otherwise (its settlement), usable again. None when
    nothing changes."""
    lines_now = chargeable(lines)
    allowed = {line.line_id: line.amount_minor for line in lines_now}
    before = list(invoice.document.get("applications") or [])
    kept, back = trimmed(before, allowed)
    paid: dict[str, int] = {}
    for app in kept:
        paid[str(app["line_id"])] = paid.get(str(app["line_id"]), 0) + int(app["amount_minor"])
    open_ = [Line(x.line_id, x.meter_code, x.amount_minor - paid.get(x.line_id, 0)) for x in lines_now]
    open_ = [x for x in open_ if x.amount_minor > 0]
    again = dict(usable or {})
    for grant_id, amount in back.items():
        again[grant_id] = again.get(grant_id, 0) + amount
    credits = ctx.apply_credits(invoice.customer_id, invoice.currency, open_, now, again) if open_ else None
    added = list(credits.applications) if credits else []
    if not back and not added:
        return None
    moved: dict[str, int] = {}  # per grant, + applied, - given back
    for one in added:
        moved[one.grant_id] = moved.get(one.grant_id, 0) + one.amount_minor
    for grant_id, amount in back.items():
        moved[grant_id] = moved.get(grant_id, 0) - amount
    out = RevisedCredit(applications=kept + [_stored(a) for a in added])
    out.applied_minor = sum(int(a["amount_minor"]) for a in out.applications)
    out.actions += credits.items if credits else []
    out.actions += _given_back(ctx, invoice, back, moved, revision, now)
    return out


def _stored(app: CreditApplication) -> dict[str, Any]:
    return {"grant_id": app.grant_id, "line_id": app.line_id, "amount_minor": int(app.amount_minor)}


def _given_back(ctx: Billing, invoice: Invoice, back: Mapping[str, int], moved: Mapping[str, int],
                revision: int, now: datetime) -> list[dict[str, Any]]:  # fmt: skip
    """The grants' restorations (``back``) and the revision's credit posting (``moved``)."""
    from neruba.domain.ledger import Posting, credit, debit
    from neruba.logic.billing.grant_restores import closed_as

    actions: list[dict[str, Any]] = []
    entries: list[Entry] = []
    for grant_id in sorted(moved.keys() | back.keys()):
        grant = ctx.ledger.grant(grant_id)
        if grant is None:  # never: a grant an invoice consumed is kept
            raise RuntimeError(f"grant {grant_id} of an invoice is missing")
        given = back.get(grant_id, 0)
        closed = closed_as(grant, now) if given else None
        if given and closed is None:  # merged with its consumption, if any (combine_grant_moves)
            actions.append(ctx.ledger.grant_restore_item(grant, given, now))
        if closed is not None:  # back to a grant closed since: closed again at once
            target = "promotional_allowance" if grant.kind == "promotional" else "breakage"
            entries += [debit("prepaid_credit", given, grant_id), credit(target, given)]
        net = moved.get(grant_id, 0)
        if net == 0:
            continue
        size = abs(net)
        prepaid = debit if net > 0 else credit
        entries.append(prepaid("prepaid_credit", size, grant_id))
        entries.append(credit("receivable", size) if net > 0 else debit("receivable", size))
        if grant.kind == "promotional":
            entries += (
                [credit("promotional_allowance", size), debit("promotional_credit_expense", size)]
                if net > 0
                else [debit("promotional_allowance", size), credit("promotional_credit_expense", size)]
            )
    if not entries:
        return actions
    book = Posting.build(
        idempotency_key=f"invoice:{invoice.id}:rev{revision}:credit", customer_id=invoice.customer_id,
        currency=invoice.currency, entries=entries, reason="invoice_revision_credit", source="invoice",
        source_id=invoice.id, actor="system:billing", at=now,
        metadata={"invoice_id": invoice.id, "revision": revision,
                  "given_back": dict(back), "moved": dict(moved)},
    )  # fmt: skip
    return [*actions, *ctx.ledger.posting_items(book)]
