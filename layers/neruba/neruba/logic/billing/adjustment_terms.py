"""What a difference carried to a later invoice is worth: the corrected invoice's own discounts and tax
rates applied to its re-rating (docs/billing.md, "Adjustments: the corrected invoice's discounts and
rates").

A re-rating gives each rated line's difference before discounts (``logic.billing.worker.line_deltas``).
This prices the corrected invoice again with the re-rated lines and the discounts and rates it stored
(``logic.billing.discounts.repriced``: the same snapshots, a fixed amount capped at what was left of it
in that period), and each adjustment line then carries, per line of the corrected invoice:

- ``amount_minor``: the line's amount after the corrected invoice's discounts now, less what was billed
  for it after discounts (the line itself and every earlier adjustment of it);
- ``gross_minor``: the same difference before discounts (what the re-rating alone changed);
- ``tax``: the line's tax at the corrected invoice's rates now, less the tax billed for it so far;
- ``corrected_terms: true``: the invoice carrying it applies none of its own discounts to it and keeps
  this tax (``logic.billing.discounts.price_lines``).

So a void gives back what the voided usage was billed after discounts, a commit and its revert net to
zero, the tax given back is the tax collected at the rates it was collected at, and the sum of a
customer's invoices equals a re-rating of the surviving events with each period's discounts and rates.
A line whose rating did not change can still move (a fixed amount or a rounding shared again between the
invoice's lines); it gets an adjustment of quantity 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from neruba.dal.billing import Adjustment
from neruba.domain.numbers import canonical_text
from neruba.logic.billing.discounts import CORRECTED as FLAG
from neruba.logic.billing.discounts import KIND as DISCOUNT
from neruba.logic.billing.discounts import net_amounts, price_lines
from neruba.logic.billing.document import CARRIED_KINDS as _CARRIED
from neruba.timefmt import ts

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice

TAX_KEYS = ("amount_after_discounts_minor", "net_minor", "inclusive_minor", "exclusive_minor")
FIXED_KINDS = ("adjustment",)  # carried lines whose amount after discounts never moves


def fixed(line: Mapping[str, Any]) -> bool:
    """Whether ``line`` is an adjustment priced by its corrected invoice (no discount, its own tax)."""
    return bool(line.get(FLAG))


def _add(total: dict[str, Any] | None, tax: Mapping[str, Any] | None, sign: int) -> dict[str, Any] | None:
    """``total`` plus ``sign`` x ``tax`` (tax entries as lines store them; None: no tax)."""
    if not tax:
        return total
    out: dict[str, Any] = dict(total or {k: 0 for k in TAX_KEYS})
    out.setdefault("rates", [])
    for key in TAX_KEYS:
        out[key] = int(out.get(key) or 0) + sign * int(tax.get(key) or 0)
    by_id = {str(r["tax_rate_id"]): dict(r) for r in out["rates"]}
    for part in tax.get("rates") or []:
        empty = {"taxable_minor": 0, "amount_minor": 0, "exact_minor": "0"}
        named = {k: part[k] for k in ("tax_rate_id", "percentage", "inclusive")}
        mine = by_id.setdefault(str(part["tax_rate_id"]), {**named, **empty})
        mine["taxable_minor"] = int(mine["taxable_minor"]) + sign * int(part["taxable_minor"])
        mine["amount_minor"] = int(mine["amount_minor"]) + sign * int(part["amount_minor"])
        exact = Decimal(str(mine["exact_minor"])) + sign * Decimal(str(part["exact_minor"]))
        mine["exact_minor"] = canonical_text(exact)
    out["rates"] = list(by_id.values())
    return out


def _billed_tax(original: Invoice, line: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tax an adjustment line billed: its own (priced by its corrected invoice), or, for one written
    before that rule, its amount taxed at the corrected invoice's rates."""
    if fixed(line) or line.get("tax"):
        return line.get("tax")
    rates = original.document.get("tax_rates") or []
    if not rates:
        return None
    period = (original.period_start, original.period_end)
    return price_lines([line], [], rates, original.currency, period)[0].get("tax")


def priced_deltas(
    original: Invoice,
    rerated: Mapping[str, Mapping[str, Any]],
    recorded: list[Adjustment],
    deltas: list[dict[str, Any]],
    template: Any,
) -> list[dict[str, Any]]:
    """``deltas`` (differences before discounts, by rated line) as the corrected invoice's discounts and
    rates price them, plus a line of quantity 0 for each other line whose amount after discounts or tax
    moved; ``template(line_id, n, base)`` builds the empty adjustment of such a line."""
    stored = [dict(line) for line in original.document.get("lines") or []]
    rated_kinds = {str(line["line_id"]) for line in stored if line.get("kind") not in (*_CARRIED, DISCOUNT)}
    carried = [line for line in stored if line.get("kind") in _CARRIED]
    doc = original.document
    now = price_lines(
        [*(dict(v) for v in rerated.values()), *carried],
        doc.get("discounts") or [],
        doc.get("tax_rates") or [],
        original.currency,
        (original.period_start, original.period_end),
    )  # the corrected invoice's discounts and rates, as a re-rated draft keeps them (``repriced``)
    net_now, net_then = net_amounts(now), net_amounts(stored)
    tax_now = {str(line["line_id"]): line.get("tax") for line in now if line.get("kind") != DISCOUNT}
    tax_then: dict[str, Any] = {str(line["line_id"]): line.get("tax") for line in stored}
    counts: dict[str, int] = {}
    for adjustment in recorded:
        if adjustment.original_invoice_id != original.id:
            continue
        ref = adjustment.original_line_id
        net_then[ref] = net_then.get(ref, 0) + int(adjustment.line["amount_minor"])
        tax_then[ref] = _add(tax_then.get(ref), _billed_tax(original, adjustment.line), 1)
        counts[ref] = counts.get(ref, 0) + 1
    by_ref = {str(d["references"]["line_id"]): d for d in deltas}
    moving = [
        str(line["line_id"])
        for line in now
        if line.get("kind") not in (*FIXED_KINDS, DISCOUNT) and str(line["line_id"]) not in by_ref
    ]
    base = {str(line["line_id"]): line for line in stored}
    out = []
    for line_id in [*sorted(by_ref), *sorted(set(moving) | (rated_kinds - set(by_ref) - set(moving)))]:
        delta = by_ref.get(line_id)
        if delta is None:
            delta = template(line_id, counts.get(line_id, 0) + 1, base.get(line_id) or {})
        net = net_now.get(line_id, 0) - net_then.get(line_id, 0)
        tax = _add(_add(None, tax_now.get(line_id), 1), tax_then.get(line_id), -1)
        moved = tax is not None and any(int(tax[k]) for k in TAX_KEYS)
        if line_id not in by_ref and net == 0 and not moved:
            continue
        source = dict(delta.get("source") or {})
        for side, value in (("billed", net_then.get(line_id, 0)), ("rerated", net_now.get(line_id, 0))):
            source[side] = {**(source.get(side) or {}), "net_minor": value}
        priced = {**delta, "gross_minor": int(delta["amount_minor"]), "amount_minor": net, "source": source}
        priced.pop("tax", None)
        if tax is not None:
            priced["tax"] = tax
        out.append({**priced, FLAG: True})
    return out


def adjustment_record(
    delta: dict[str, Any], status: Literal["pending", "applied"], applied_to: str | None, now: datetime
) -> Adjustment:
    """The adjustment of an adjustment line (key ``{original_invoice}#{line_id}#{n:03d}``)."""
    ref = delta["references"]
    return Adjustment(
        key=f"{ref['invoice_id']}#{ref['line_id']}#{int(delta['seq_of_line']):03d}",
        original_invoice_id=ref["invoice_id"],
        original_line_id=ref["line_id"],
        status=status,
        applied_to=applied_to,
        created_at=ts(now),
        line=delta,
    )


def added_tax(lines: list[dict[str, Any]]) -> int:
    """The exclusive tax ``lines`` (priced adjustment lines) add on top of their amounts."""
    return sum(int((line.get("tax") or {}).get("exclusive_minor") or 0) for line in lines)
