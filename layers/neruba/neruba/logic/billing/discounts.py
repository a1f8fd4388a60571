"""Discounts and taxes on a window invoice: which apply, the discount lines, each line's tax, and the
counting of a discount's billing periods (docs/billing.md, "Coupons and discounts" and "Taxes").

:func:`discounts_for` picks the active discounts of an invoice (the customer's, then the
subscription's, then those of the plan versions its lines bill; oldest first within each) that still
have billing periods left for the subscription, as **snapshots** of their coupon's terms stored on the
invoice (``discounts``), and one action per discount counting the period (``DSCU#``, conditional on the
count read) for the invoice's own transaction: the invoice is put once (its id follows from the window),
so a retried or duplicated job never counts a second period, and a crash before the commit counts none.

:func:`price_lines` turns the lines and the stored snapshots into the invoice's lines: one ``discount``
line per discount (a negative amount; its ``source.allocations`` says what it took off each line), and on
every other line a ``tax`` entry (its amount after discounts taxed by the invoice's rates). A re-rating
(a draft's finalization, an operator rerun of a draft) calls it again with the same snapshots: the
amounts follow the new usage and no period is counted again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from neruba.dal.features import DISCOUNT, STRIPE_TAX, TAX_RATE, UNKNOWN, Features
from neruba.domain.discounts import AppliedDiscount, Coupon, PeriodUse, Turn, after, apply_discounts, turn
from neruba.domain.numbers import canonical_text
from neruba.domain.taxes import TaxRate, line_tax
from neruba.timefmt import parse_ts, ts

if TYPE_CHECKING:
    from neruba.dal.discounts import DiscountsRepository, Stored

KIND = "discount"
MAX_DISCOUNTS = 10  # discounts one invoice applies (each is an action of its 100-action transaction)
UNDISCOUNTED = (KIND,)  # lines no discount reduces and no tax applies to
# an adjustment line priced by the invoice it corrects (logic.billing.adjustment_terms): the invoice
# carrying it applies none of its own discounts to it and keeps its tax
CORRECTED = "corrected_terms"


def coupon_of(doc: Mapping[str, Any]) -> Coupon:
    """The terms of a stored coupon (or of a snapshot's ``coupon``)."""
    percent = doc.get("percent_off")
    return Coupon(
        coupon_id=str(doc["id"]),
        kind="percentage" if percent is not None else "fixed",
        amount_minor=None if doc.get("amount_off_minor") is None else int(doc["amount_off_minor"]),
        currency=doc.get("currency"),
        percent=None if percent is None else Decimal(str(percent)),
        duration=doc["duration"],
        periods=None if doc.get("duration_periods") is None else int(doc["duration_periods"]),
    )


def _order(found: list[Stored]) -> list[Stored]:
    return sorted(found, key=lambda d: (str(d.document.get("created_at")), d.id))


Pending = list[tuple[str, PeriodUse, Turn]]  # (discount id, its use as read, its turn on the invoice)


def discounts_for(
    repo: DiscountsRepository,
    customer_id: str,
    subscription_id: str,
    plan_versions: Sequence[tuple[str, int]],
    period_key: str,
    features: Features = UNKNOWN,
) -> tuple[list[dict[str, Any]], Pending]:
    """(snapshots, pending): the discounts an invoice of the billing period keyed ``period_key`` (its
    start) applies, each with its turn (``domain.discounts.turn``: which period of the duration, what a
    fixed amount may still take in it), and what :func:`use_actions` needs to record their use once the
    amounts are known (the partitions ``features`` flags as possibly holding discounts are read)."""
    attached = repo.customer_discounts(customer_id) if features.uses(DISCOUNT) else []
    mine = _order([d for d in attached if d.status == "active"])
    chosen = [d for d in mine if d.document.get("subscription_id") in (None, subscription_id)]
    chosen.sort(
        key=lambda d: d.document.get("subscription_id") is not None
    )  # customer's, then subscription's
    for code, version in sorted(v for v in set(plan_versions) if features.plan_discounts(*v)):
        chosen += _order([d for d in repo.plan_discounts(code, version) if d.status == "active"])
    snapshots: list[dict[str, Any]] = []
    pending: Pending = []
    for discount in chosen:
        if len(snapshots) >= MAX_DISCOUNTS:
            break
        doc = discount.document
        coupon = coupon_of(doc["coupon"])
        use = PeriodUse(*repo.use(discount.id, subscription_id))
        step = turn(coupon, use, period_key)
        if step is None or step.cap_minor == 0:  # no period left, a closed period, or its amount used up
            continue
        left = None if coupon.duration == "forever" else (1 if coupon.duration == "once" else coupon.periods)
        snapshots.append(
            {
                "discount_id": discount.id,
                "coupon_id": coupon.coupon_id,
                "coupon": doc["coupon"],
                "target": doc["target"],
                "plan_code": doc.get("plan_code"),
                "plan_version": doc.get("plan_version"),
                "period": step.number,
                "periods": left,
                "period_key": step.key,
                "amount_left_minor": step.cap_minor,
            }
        )
        pending.append((discount.id, use, step))
    return snapshots, pending


def use_actions(
    repo: DiscountsRepository,
    subscription_id: str,
    pending: Pending,
    lines: Sequence[Mapping[str, Any]],
    invoice_id: str,
) -> list[dict[str, Any]]:
    """The actions recording what each discount took on the invoice's priced ``lines``, for the
    invoice's own transaction (conditional on the use read): a discount that took more than 0 counts
    its period (the first time) and adds to what it took in it; one that took 0 records nothing."""
    took = {
        str((line.get("source") or {}).get("discount_id")): -int(line["amount_minor"])
        for line in lines
        if line.get("kind") == KIND
    }
    actions = []
    for discount_id, use, step in pending:
        moved = after(use, step, took.get(discount_id, 0))
        if moved is not None:
            before = (use.used, use.period, use.taken_minor)
            state = (moved.used, str(moved.period), moved.taken_minor)
            actions.append(repo.use_item(discount_id, subscription_id, before, state, invoice_id))
    return actions


DELEGATED = "stripe_tax"  # ``tax_provider`` of an invoice whose tax Stripe Tax computes


@dataclass(frozen=True)
class TaxTerms:
    """How a customer's invoices are taxed: Neruba's rate snapshots, or ``provider`` ``stripe_tax`` (no
    rate applied here; Stripe computes the tax when the invoice is synced, docs/billing.md, "Tax delegated
    to Stripe Tax")."""

    rates: list[dict[str, Any]]
    provider: str | None = None
    location: dict[str, Any] | None = None  # when delegated: the jurisdiction Stripe is given

    def details(self) -> dict[str, Any]:
        """What an invoice stores of them: ``tax_rates`` when there are rates, ``tax_provider`` and
        ``tax_location`` when delegated (nothing for an untaxed invoice: its stored shape is unchanged)."""
        out: dict[str, Any] = {"tax_rates": self.rates} if self.rates else {}
        if self.provider:
            out.update(tax_provider=self.provider, tax_location=self.location)
        return out


def tax_terms(repo: DiscountsRepository, customer_id: str, features: Features = UNKNOWN) -> TaxTerms:
    """The tax terms of a customer's next invoice: delegated to Stripe Tax when its jurisdiction says
    ``provider: stripe_tax`` (then no rate of Neruba's applies), else the active rates of its jurisdiction
    (country, and state when the rate names one) and those of a plan without a jurisdiction. Nothing is
    read when ``features`` says neither tax rates nor a delegation were ever stored."""
    rated, delegable = features.uses(TAX_RATE), features.uses(STRIPE_TAX)
    if not (rated or delegable):
        return TaxTerms([])
    rates = [r for r in repo.tax_rates() if r.status == "active"] if rated else []
    placed = any(r.document.get("country") for r in rates)
    where = (repo.jurisdiction(customer_id) or {}) if placed or delegable else {}
    if where.get("provider") == DELEGATED:
        return TaxTerms([], DELEGATED, {"country": where.get("country"), "state": where.get("state")})
    out = []
    for rate in sorted(rates, key=lambda r: (str(r.document.get("created_at")), r.id)):
        doc = rate.document
        country, state = doc.get("country"), doc.get("state")
        if country is not None and (
            country != where.get("country") or state not in (None, where.get("state"))
        ):
            continue
        out.append(
            {
                k: doc.get(k)
                for k in ("id", "display_name", "percentage", "inclusive", "country", "state", "plan_code")
            }
        )
    return TaxTerms(out)


def rates_for(
    repo: DiscountsRepository, customer_id: str, features: Features = UNKNOWN
) -> list[dict[str, Any]]:
    """The active tax rates of a customer's invoices, as snapshots (none when its tax is delegated to
    Stripe Tax): :func:`tax_terms`' rates."""
    return tax_terms(repo, customer_id, features).rates


def _line_of(
    applied: AppliedDiscount, snapshot: Mapping[str, Any], period: tuple[Any, Any]
) -> dict[str, Any]:
    coupon = coupon_of(snapshot["coupon"])  # its terms as sold, not the amount left in the period
    terms = (
        f"{canonical_text(coupon.percent or Decimal(0))}% off"
        if coupon.kind == "percentage"
        else f"{coupon.amount_minor} {coupon.currency} minor units off"
    )
    count = f"period {snapshot['period']}" + (f" of {snapshot['periods']}" if snapshot.get("periods") else "")
    name = snapshot["coupon"].get("name") or coupon.coupon_id
    return {
        "line_id": f"discount:{applied.discount_id}",
        "kind": KIND,
        "description": f"Discount {name} ({terms}, {count})",
        "meter_code": None,
        "group": {},
        "quantity": Decimal(1),
        "unit_price": None,
        "tiers": [],
        "amount_minor": -applied.amount_minor,
        "period_start": period[0],
        "period_end": period[1],
        "plan_code": snapshot.get("plan_code"),
        "plan_version": snapshot.get("plan_version"),
        "source": {
            "discount_id": applied.discount_id,
            "coupon_id": coupon.coupon_id,
            "target": snapshot["target"],
            "period": snapshot["period"],
            "periods": snapshot.get("periods"),
            "period_start": snapshot.get("period_key"),
            "amount_left_minor": snapshot.get("amount_left_minor"),
            "base_minor": applied.base_minor,
            "exact_minor": canonical_text(applied.exact),  # decimals stored as text: read back as written
            "rounding": "half_up_once" if coupon.kind == "percentage" else "none",
            "capped": applied.capped,  # a fixed amount larger than the lines (or than what was left)
            "skipped": applied.skipped,
            "allocations": [{"line_id": k, "amount_minor": v} for k, v in applied.allocations.items()],
        },
        "references": None,
    }


def _capped(snapshot: Mapping[str, Any]) -> Coupon:
    """The snapshot's coupon, a fixed amount cut to what is left of it in the period (its
    ``amount_left_minor``: an earlier invoice of the period took the rest)."""
    coupon = coupon_of(snapshot["coupon"])
    cap = snapshot.get("amount_left_minor")
    if coupon.kind == "fixed" and cap is not None:
        return replace(coupon, amount_minor=min(int(coupon.amount_minor or 0), int(cap)))
    return coupon


def price_lines(
    lines: Sequence[Mapping[str, Any]],
    snapshots: Sequence[Mapping[str, Any]],
    rates: Sequence[Mapping[str, Any]],
    currency: str,
    period: tuple[Any, Any],
) -> list[dict[str, Any]]:
    """The invoice's lines: ``lines`` (old discount lines dropped) with a ``tax`` entry each, then the
    discount lines. Without snapshots and rates the lines come back unchanged. An adjustment priced by
    the invoice it corrects (``CORRECTED``) is neither discounted nor taxed again: it keeps its tax."""
    base = [dict(line) for line in lines if line.get("kind") not in UNDISCOUNTED]
    if not snapshots and not rates:
        for line in base:
            if not line.get(CORRECTED):
                line.pop("tax", None)
        return base
    by_id = {str(line["line_id"]): line for line in base}
    wanted = {str(s["discount_id"]): s for s in snapshots}

    def eligible(discount_id: str, line_id: str) -> bool:
        snap, line = wanted[discount_id], by_id[line_id]
        if snap.get("plan_code") is None:
            return True
        return (line.get("plan_code"), line.get("plan_version")) == (snap["plan_code"], snap["plan_version"])

    applied = apply_discounts(
        [(k, int(v["amount_minor"])) for k, v in by_id.items() if not v.get(CORRECTED)],
        [(str(s["discount_id"]), _capped(s)) for s in snapshots],
        currency,
        eligible,
    )
    net = {k: int(v["amount_minor"]) for k, v in by_id.items()}
    for d in applied:
        for line_id, share in d.allocations.items():
            net[line_id] -= share
    for line_id, line in by_id.items():
        if line.get(CORRECTED):
            continue  # its tax is its corrected invoice's
        mine = [
            TaxRate(
                str(r["id"]),
                Decimal(str(r["percentage"])),
                bool(r["inclusive"]),
                str(r.get("display_name") or ""),
            )
            for r in rates
            if r.get("plan_code") in (None, line.get("plan_code"))
        ]
        line.pop("tax", None)
        if mine:
            tax = line_tax(net[line_id], mine, currency)
            line["tax"] = {
                "amount_after_discounts_minor": net[line_id],
                "net_minor": tax.net_minor,
                "inclusive_minor": tax.inclusive_minor,
                "exclusive_minor": tax.exclusive_minor,
                "rates": [
                    {
                        "tax_rate_id": p.tax_rate_id,
                        "percentage": canonical_text(p.percent),
                        "inclusive": p.inclusive,
                        "taxable_minor": p.taxable_minor,
                        "amount_minor": p.amount_minor,
                        "exact_minor": canonical_text(p.exact),
                    }
                    for p in tax.parts
                ],
            }
    return [*by_id.values(), *(_line_of(d, wanted[d.discount_id], period) for d in applied)]


def net_amounts(lines: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each non-discount line's amount after the discount lines' allocations."""
    net = {str(line["line_id"]): int(line["amount_minor"]) for line in lines if line.get("kind") != KIND}
    for line in lines:
        if line.get("kind") == KIND:
            for share in (line.get("source") or {}).get("allocations") or []:
                net[str(share["line_id"])] -= int(share["amount_minor"])
    return net


def window_extras(
    repo: DiscountsRepository,
    customer_id: str,
    subscription_id: str,
    invoice_id: str,
    lines: Sequence[Mapping[str, Any]],
    currency: str,
    period: tuple[Any, Any],
    features: Features | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """A new window invoice's discounts and taxes: (its lines, the ``details`` storing the discounts' and
    rates' snapshots, the actions counting the discounts' periods). ``features``: what may be skipped."""
    flags = features or UNKNOWN
    plans = {
        (str(line["plan_code"]), int(line["plan_version"]))
        for line in lines
        if line.get("plan_code") and line.get("plan_version") is not None
    }
    key = period_key(str(period[0]))  # the billing period the invoice belongs to: its start
    snapshots, pending = discounts_for(repo, customer_id, subscription_id, sorted(plans), key, flags)
    tax = tax_terms(repo, customer_id, flags)
    details = _details(snapshots, tax)
    priced = price_lines(lines, snapshots, tax.rates, currency, period)
    return priced, details, use_actions(repo, subscription_id, pending, priced, invoice_id)


def standalone_extras(
    repo: DiscountsRepository,
    customer_id: str,
    subscription_id: str | None,
    lines: Sequence[Mapping[str, Any]],
    currency: str,
    period: tuple[Any, Any],
    invoice_id: str,
    period_start: str | None,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """The discounts and taxes of an invoice billed outside a window (a one-off charge invoiced at once,
    a pay-in-advance event's own invoice): (its lines, the ``details`` storing the snapshots, the actions
    recording the discounts' use for the invoice's own transaction).

    The same rules and line shapes as a window invoice (:func:`window_extras`): the discounts of the
    customer, the subscription and the plan versions of its lines, on the billing period
    ``period_start`` the invoice belongs to, which it shares with that period's window invoices (a fixed
    amount's rest carries to them; the period counts once). ``subscription_id`` or ``period_start`` None
    (a customer without a subscription in that currency, or one not billed yet): the discounts as in
    their first period, nothing recorded."""
    plans = {
        (str(line["plan_code"]), int(line["plan_version"]))
        for line in lines
        if line.get("plan_code") and line.get("plan_version") is not None
    }
    counted = subscription_id is not None and period_start is not None
    key = period_key(period_start) if counted and period_start is not None else ""
    snapshots, pending = discounts_for(repo, customer_id, subscription_id or "-", sorted(plans), key)
    tax = tax_terms(repo, customer_id)
    details = _details(snapshots, tax)
    priced = price_lines(lines, snapshots, tax.rates, currency, period)
    if not counted or subscription_id is None:
        return priced, details, []
    return priced, details, use_actions(repo, subscription_id, pending, priced, invoice_id)


def period_key(start: str) -> str:
    """The key of the billing period starting at ``start`` (any stored time text): its start in the one
    time format, so keys compare in time order whoever wrote them."""
    return ts(parse_ts(start))


def _details(snapshots: list[dict[str, Any]], tax: TaxTerms) -> dict[str, Any]:
    """What a new invoice stores of its discounts and taxes (nothing when it has neither)."""
    out: dict[str, Any] = {"discounts": snapshots, "tax_rates": tax.rates} if snapshots or tax.rates else {}
    return {**out, **tax.details()}


def _took(lines: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """What each discount takes on ``lines`` (discount id -> minor units, positive)."""
    out: dict[str, int] = {}
    for line in lines:
        if line.get("kind") == KIND:
            discount_id = str((line.get("source") or {}).get("discount_id"))
            out[discount_id] = out.get(discount_id, 0) - int(line["amount_minor"])
    return out


def _revised_turn(
    snapshot: dict[str, Any], use: PeriodUse, mine: int
) -> tuple[dict[str, Any] | None, PeriodUse | None, Turn | None]:
    """A stored snapshot on its invoice's revision: (the snapshot to price with, None to apply none; the
    use without this invoice's share; its turn, None when no record moves)."""
    coupon = coupon_of(snapshot["coupon"])
    fixed = int(coupon.amount_minor or 0) if coupon.kind == "fixed" else None
    key = str(snapshot["period_key"])
    if use.period == key:  # the period is counted: the others' share is the record less this invoice's
        base = PeriodUse(use.used, key, max(0, use.taken_minor - mine))
        step = Turn(key, use.used, False, None if fixed is None else max(0, fixed - base.taken_minor))
        return {**snapshot, "amount_left_minor": step.cap_minor}, base, step
    if mine == 0:  # it took nothing, so counted nothing: its turn is decided now, as for a new invoice
        step_now = turn(coupon, use, key)
        if step_now is None or step_now.cap_minor == 0:
            return None, None, None
        return {**snapshot, "period": step_now.number, "amount_left_minor": step_now.cap_minor}, use, step_now
    # a later period is counted (or the record predates period keys): never more than it took
    cap = snapshot.get("amount_left_minor")
    return {**snapshot, "amount_left_minor": mine if cap is None else min(int(cap), mine)}, None, None


def revised(
    repo: DiscountsRepository, doc: Mapping[str, Any], lines: Sequence[Mapping[str, Any]], invoice_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A re-rated invoice's lines and the actions keeping its discounts' period records true
    (docs/billing.md, "A revised draft and the coupon's amount").

    Each discount the invoice stored applies again, its fixed amount capped by what the period's OTHER
    invoices left of it now (the use record less what this invoice took), not by what was left when the
    invoice was first priced; and the record moves by what the discount now takes more or less, so the
    record always equals what the period's invoices show and never exceeds the coupon. The moves are
    conditional on the records as read: a record that moved meanwhile cancels the revision's transaction,
    and the retry prices again from the new record."""
    subscription_id = doc.get("subscription_id")
    before = _took([line for line in doc.get("lines") or []])
    snapshots: list[dict[str, Any]] = []
    moves: list[tuple[str, PeriodUse, PeriodUse, Turn]] = []
    for stored in doc.get("discounts") or []:
        snapshot = dict(stored)
        if not subscription_id or not snapshot.get("period_key"):
            snapshots.append(snapshot)
            continue
        discount_id = str(snapshot["discount_id"])
        use = PeriodUse(*repo.use(discount_id, str(subscription_id)))
        kept, base, step = _revised_turn(snapshot, use, before.get(discount_id, 0))
        if kept is not None:
            snapshots.append(kept)
        if base is not None and step is not None:
            moves.append((discount_id, use, base, step))
    priced = price_lines(
        lines,
        snapshots,
        doc.get("tax_rates") or [],
        str(doc["currency"]),
        (doc.get("period_start"), doc.get("period_end")),
    )
    now_took = _took(priced)
    actions = []
    for discount_id, use, base, step in moves:
        took = now_took.get(discount_id, 0)
        moved = (
            after(base, step, took) if step.new else PeriodUse(base.used, step.key, base.taken_minor + took)
        )
        if moved is None or (moved.used, moved.period, moved.taken_minor) == (
            use.used,
            use.period,
            use.taken_minor,
        ):
            continue
        state = (moved.used, str(moved.period), moved.taken_minor)
        actions.append(
            repo.use_item(
                discount_id, str(subscription_id), (use.used, use.period, use.taken_minor), state, invoice_id
            )
        )
    return priced, actions


def credit_base(lines: Sequence[Mapping[str, Any]], uncredited: Sequence[str]) -> list[dict[str, Any]]:
    """The lines credit may pay, at their amount after discounts (discount lines and the lines whose id
    is in ``uncredited`` left out)."""
    net = net_amounts(lines)
    left_out = set(uncredited)
    return [
        {**line, "amount_minor": net[str(line["line_id"])]}
        for line in lines
        if line.get("kind") != KIND and str(line["line_id"]) not in left_out
    ]


def explain_figures(line: Mapping[str, Any], lines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What explain adds to a line: on a discount line, the discount (coupon, period, base, exact figure,
    rounding, what it took off each line); on any other line, the discounts that reduced it and its tax
    (none when the invoice has neither)."""
    if line.get("kind") == KIND:
        return {"discount": dict(line.get("source") or {})}
    line_id = str(line["line_id"])
    taken: list[dict[str, Any]] = [
        {
            "discount_id": (other.get("source") or {}).get("discount_id"),
            "coupon_id": (other.get("source") or {}).get("coupon_id"),
            "amount_minor": int(share["amount_minor"]),
        }
        for other in lines
        if other.get("kind") == KIND
        for share in (other.get("source") or {}).get("allocations") or []
        if str(share["line_id"]) == line_id
    ]
    if not taken and "tax" not in line:
        return {}
    return {
        "discounts": taken,
        "amount_after_discounts_minor": int(line["amount_minor"])
        - sum(int(t["amount_minor"]) for t in taken),
        "tax": line.get("tax"),
    }
