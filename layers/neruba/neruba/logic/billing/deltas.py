"""The differences a correction bills: an invoice's lines as re-rated (``rated_lines``), and the adjustment
lines bringing a finalized invoice's lines (plus its earlier adjustments) to them (``line_deltas``), each
saying what it corrects (``adjustment_source``). Every correction takes its differences from here: the
look-back of a window, reruns, backfills, voids and amends, corrections after the end, previews."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from neruba.logic.billing.document import CARRIED_KINDS, DERIVED_KINDS

if TYPE_CHECKING:
    from neruba.dal.billing import Adjustment
    from neruba.dal.invoices import Invoice
    from neruba.domain.pricing import RatedWindow


def line_dict(line: Any) -> dict[str, Any]:
    """A priced line as stored on the invoice (its ``to_dict()``), with the fields billing relies on."""
    data = dict(line.to_dict())
    data.setdefault("line_id", line.line_id)
    data.setdefault("kind", line.kind)
    data.setdefault("meter_code", line.meter_code)
    data["quantity"] = Decimal(str(data.get("quantity", line.quantity)))
    data["amount_minor"] = int(data.get("amount_minor", line.amount_minor))
    return data


def rated_lines(rated: RatedWindow) -> dict[str, dict[str, Any]]:
    return {line.line_id: line_dict(line) for line in rated.lines}


def line_deltas(
    original: Invoice, rerated: dict[str, dict[str, Any]], recorded: list[Adjustment]
) -> list[dict[str, Any]]:
    """Adjustment lines bringing a finalized invoice's lines (plus earlier adjustments) to ``rerated``,
    priced by the corrected invoice's own discounts and tax rates
    (``logic.billing.adjustment_terms.priced_deltas``): the one function every correction (late events,
    reruns, backfills, voids and amends, corrections after the end, previews) takes its differences from.

    Example: the invoice billed 10 calls for 100; 12 are counted now: one line, +2 calls, +20 (+18 when
    the invoice had 10% off).
    """
    from neruba.logic.billing.adjustment_terms import priced_deltas

    held: dict[str, tuple[Decimal, int, dict[str, Any]]] = {}
    for billed in original.lines:
        if billed.kind in (*CARRIED_KINDS, *DERIVED_KINDS):  # no rating makes these: never taken back
            continue
        held[billed.line_id] = (Decimal(str(billed.quantity)), billed.amount_minor, billed.document)
    counts: dict[str, int] = {}
    for adjustment in recorded:
        if adjustment.original_invoice_id != original.id:
            continue
        ref = adjustment.original_line_id
        quantity, amount, line = held.get(ref, (Decimal(0), 0, adjustment.line))
        gross = adjustment.line.get("gross_minor", adjustment.line["amount_minor"])  # before discounts
        held[ref] = (quantity + Decimal(str(adjustment.line["quantity"])), amount + int(gross), line)
        counts[ref] = counts.get(ref, 0) + 1
    deltas = []
    for line_id in sorted(set(held) | set(rerated)):
        quantity, amount, base = held.get(line_id, (Decimal(0), 0, rerated.get(line_id, {})))
        now_line = rerated.get(line_id)
        new_quantity = Decimal(str(now_line["quantity"])) if now_line else Decimal(0)
        new_amount = int(now_line["amount_minor"]) if now_line else 0
        if new_quantity == quantity and new_amount == amount:
            continue
        n = counts.get(line_id, 0) + 1
        earlier = [
            a.line for a in recorded if (a.original_invoice_id, a.original_line_id) == (original.id, line_id)
        ]
        source = adjustment_source(base if line_id in held else {}, quantity, amount, earlier, now_line)
        delta = _adjustment_line(original, line_id, n, now_line or base, source)
        deltas.append({**delta, "quantity": new_quantity - quantity, "amount_minor": new_amount - amount})
    if not deltas:
        return []

    def template(line_id: str, n: int, base: dict[str, Any]) -> dict[str, Any]:
        return _adjustment_line(original, line_id, n, base, None)

    return priced_deltas(original, rerated, recorded, deltas, template)


def _adjustment_line(
    original: Invoice, line_id: str, n: int, source_line: dict[str, Any], source: dict[str, Any] | None
) -> dict[str, Any]:
    """The adjustment line ``n`` of the original's ``line_id`` (quantity and amount 0)."""
    return {
        "line_id": f"adjustment:{original.id}:{line_id}:{n}",
        "kind": "adjustment",
        "description": f"Adjustment to invoice {original.number or original.id}, line {line_id}",
        "meter_code": source_line.get("meter_code"),
        "group": source_line.get("group", {}),
        "quantity": Decimal(0),
        "amount_minor": 0,
        "period_start": original.period_start,
        "period_end": original.period_end,
        "plan_code": source_line.get("plan_code"),
        "plan_version": source_line.get("plan_version"),
        "tiers": [],  # the re-rated line's tiers price the whole window, not this difference
        "source": source or {},
        "references": {"invoice_id": original.id, "line_id": line_id, "number": original.number},
        "seq_of_line": n,
    }


def adjustment_source(
    billed_line: dict[str, Any],
    quantity: Decimal,
    amount: int,
    earlier: list[dict[str, Any]],
    now_line: dict[str, Any] | None,
) -> dict[str, Any]:
    """What an adjustment line corrects: what was billed so far (the line plus ``earlier`` adjustment
    lines of it) and what the re-rating counts now (quantity, amount, hours, events), so explain can
    show the difference."""
    counted = dict(billed_line.get("source") or {})
    if earlier:  # the latest earlier adjustment counted these
        latest = max(earlier, key=lambda line: int(line.get("seq_of_line") or 0))
        counted = dict((latest.get("source") or {}).get("rerated") or counted)
    now_source = (now_line or {}).get("source") or {}
    aggregation = now_source.get("aggregation") or (billed_line.get("source") or {}).get("aggregation")
    return {
        **({"aggregation": aggregation} if aggregation else {}),  # the corrected line's (for explain)
        "billed": {
            "quantity": quantity,
            "amount_minor": amount,
            "hours": counted.get("hours"),
            "events": counted.get("events"),
        },
        "rerated": {
            "quantity": Decimal(str(now_line["quantity"])) if now_line else Decimal(0),
            "amount_minor": int(now_line["amount_minor"]) if now_line else 0,
            "hours": now_source.get("hours"),
            "events": now_source.get("events"),
            # rated 0 as unbillable: no difference is applied against it (logic.billing.unbillable)
            **({"unbillable": now_source["unbillable"]} if now_source.get("unbillable") else {}),
        },
    }
