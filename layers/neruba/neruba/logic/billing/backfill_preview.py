"""What a backfill would change: per invoice, the amount before and after its commit.

The preview rates each affected invoice's window with the billing context's own rating
(``Billing.rate_window``) and the rerun's own differences (``logic.billing.worker.line_deltas``), on the
stored usage with the backfill's held events laid over it (:class:`HeldUsage`): no second pricing. The
events it lays over are the ones the commit would count: those whose transaction id is not stored yet
(ingest counts an event once per customer and transaction id).

For ``mode: replace`` the overlay also drops the stored cells of the range's hours for the backfill's
customers and meters (:func:`replace_overlay`): the range then holds what the commit leaves there.

Level meters (``weighted_sum``, ``latest`` with ``carry_over``) start a window from their stored closing
level, which the overlay does not move: a held event before an invoiced window changes that window's
preview only through the hours the window reads.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from neruba.dal.backfills import HeldEvent
from neruba.dal.invoices import Invoice
from neruba.domain.ingest import hour_bucket
from neruba.domain.phases import rated_at
from neruba.domain.usage import CellUsage
from neruba.logic.billing import unbillable
from neruba.logic.billing.adjustment_terms import added_tax
from neruba.logic.billing.backfill_replace import as_held, replaced_events
from neruba.logic.billing.backfill_supersede import to_supersede
from neruba.logic.billing.context import Billing
from neruba.logic.billing.corrections import billing_ended
from neruba.logic.billing.deltas import line_deltas, rated_lines
from neruba.logic.billing.held_usage import HeldUsage, held_cells, without_cells
from neruba.timefmt import parse_ts

RATED_KINDS = ("usage",)  # the invoices a backfill corrects: usage windows (opening ones have no usage)


def to_count(ctx: Billing, backfill_id: str, mode: str, held: list[HeldEvent]) -> list[HeldEvent]:
    """The held events a commit would count: those whose (customer, transaction id) is not stored yet,
    and those it would count as the corrected copy of the stored event of their id
    (``backfill_ids.resolve``)."""
    from neruba.logic.billing.backfill_ids import resolve

    found = resolve(ctx, backfill_id, mode, held)
    counting = ("new", "supersede", "relink")
    return [e for e in held if found[(e.customer_id, e.transaction_id)].kind in counting]


def affected_invoices(ctx: Billing, events: list[HeldEvent]) -> list[Invoice]:
    """The customers' usage invoices (not void) whose window holds at least one of the events, and for an
    event of a level meter (``weighted_sum``, ``latest`` with carry-over: its level carries into every
    later window) every later one too; in period order, so each rerun stores the closing level the next
    one starts from."""
    from neruba.domain.levels import carries_level

    times: dict[str, list[datetime]] = defaultdict(list)
    carried: dict[str, datetime] = {}  # customer -> its earliest event of a level meter
    levels: dict[str, bool] = {}
    for held in events:
        at = parse_ts(str(held.event["timestamp"]))
        times[held.customer_id].append(at)
        code = str(held.event["code"])
        if code not in levels:
            meter = ctx.plans.get_meter(code)
            levels[code] = meter is not None and carries_level(str(meter.aggregation), bool(meter.carry_over))
        if levels[code]:
            carried[held.customer_id] = min(at, carried.get(held.customer_id, at))
    found: list[Invoice] = []
    anchors: dict[str, datetime] = {}
    for customer_id, ats in sorted(times.items()):
        cursor: str | None = None
        while True:
            page, cursor = ctx.invoices.list(customer_id, None, 100, cursor)
            for invoice in page:
                if invoice.kind not in RATED_KINDS or invoice.status == "void" or not invoice.subscription_id:
                    continue
                sub_id = str(invoice.subscription_id)
                if sub_id not in anchors:
                    anchors[sub_id] = ctx.subscription(sub_id).timeline.anchor.astimezone(UTC)
                start, end = parse_ts(invoice.period_start), parse_ts(invoice.period_end)
                since = carried.get(customer_id)
                # the hour an event falls in is rated from its start (the first hour from the subscription's)
                if any(start <= rated_at(at, anchors[sub_id]) < end for at in ats) or (
                    since is not None and end > since
                ):
                    found.append(invoice)
            if cursor is None:
                break
    return sorted(found, key=lambda i: (i.customer_id, i.period_start, i.id))


def invoice_change(ctx: Billing, invoice: Invoice) -> tuple[tuple[int, int], list[dict[str, Any]]]:
    """What the invoice's window is billed now, (after its discounts, exclusive tax), counting its lines
    and the corrections recorded against it, and the adjustment lines a rerun on ``ctx``'s usage would
    compute (priced by the invoice's own discounts and rates: ``logic.billing.worker.line_deltas``;
    withheld ones included: split them with ``logic.billing.unbillable.split``)."""
    subscription_id = str(invoice.subscription_id)
    recorded = ctx.billing.adjustments(subscription_id)
    taken_back = line_deltas(invoice, {}, recorded)
    billed = (-sum(int(d["amount_minor"]) for d in taken_back), -added_tax(taken_back))
    subscription = ctx.subscription(subscription_id).timeline
    rated = ctx.rate_window(subscription, parse_ts(invoice.period_start), parse_ts(invoice.period_end))
    return billed, line_deltas(invoice, rated_lines(rated), recorded)


def preview(ctx: Billing, backfill_id: str) -> dict[str, Any]:
    """``GET /admin/backfills/{id}/preview``: per affected invoice, before and after the commit."""
    from neruba.logic.billing import backfill_ids, backfill_unbilled
    from neruba.logic.billing.backfills import backfills, get_backfill, refuse_advance

    found = get_backfill(ctx, backfill_id)
    held = backfills(ctx).held_events(backfill_id)
    if found.status == "open":  # what the commit would refuse, the preview refuses (the review step)
        doc = found.document
        refuse_advance(ctx, list(doc["customer_ids"]), list(doc["meter_codes"]), parse_ts(doc["start"]),
                       parse_ts(doc["end"]))  # fmt: skip
        backfill_ids.require_countable(ctx, backfill_id, found.document, held)
    mode = str(found.document.get("mode") or "add")
    is_open = found.status == "open"
    counting = to_count(ctx, backfill_id, mode, held) if is_open else []
    chosen = {(e.customer_id, e.transaction_id) for e in counting}
    left = [e for e in held if (e.customer_id, e.transaction_id) not in chosen] if is_open else []
    conflicting, named = backfill_ids.other_content(ctx, left) if left else (0, [])
    replacing = mode == "replace" and is_open
    replaced: list[HeldEvent] = []
    superseded_events = to_supersede(ctx, backfill_id, found.document, held) if is_open else []
    superseded = as_held(superseded_events)
    without = without_cells(ctx, superseded_events)
    usage = HeldUsage(ctx.usage, held_cells(ctx, counting), without=without)
    if replacing:
        replaced, usage = replace_overlay(ctx, backfill_id, found.document, held, counting, without)
    overlay = replace(ctx, usage=usage)  # type: ignore[arg-type]
    rows: list[dict[str, Any]] = []
    for invoice in affected_invoices(ctx, counting + replaced + superseded):
        (billed, billed_tax), computed = invoice_change(overlay, invoice)
        deltas, withheld = unbillable.split(computed)
        if not computed:
            continue
        difference = sum(int(d["amount_minor"]) for d in deltas)
        tax = added_tax(deltas)
        if invoice.status == "draft":
            applied = "draft_recomputed"
        elif billing_ended(ctx, str(invoice.subscription_id)):
            applied = "correction_invoiced"
        else:
            applied = "adjustment_pending"
        rows.append(
            {
                "invoice_id": invoice.id,
                "number": invoice.number,
                "status": invoice.status,
                "customer_id": invoice.customer_id,
                "subscription_id": invoice.subscription_id,
                "period_start": invoice.period_start,
                "period_end": invoice.period_end,
                "before_minor": billed + billed_tax,
                "after_minor": billed + billed_tax + difference + tax,
                "difference_minor": difference + tax,
                "subtotal_before_minor": billed,
                "subtotal_after_minor": billed + difference,
                "subtotal_difference_minor": difference,
                "tax_difference_minor": tax,
                "applied_as": applied,
                "withheld": withheld,
            }
        )
    periods = open_periods(ctx, overlay.usage, counting + replaced + superseded)
    unbilled = backfill_unbilled.unbilled(ctx, counting)
    return {
        "object": "backfill_preview",
        "backfill_id": backfill_id,
        "events_held": len(held),
        "events_counted": len(counting),
        "events_conflicting": conflicting,
        "conflicting": named,
        "events_replaced": len(replaced),
        "events_superseded": len(superseded),
        "events_unbilled": sum(int(u["events"]) for u in unbilled),
        "unbilled": unbilled,
        "invoices": rows,
        "open_periods": periods,
        "difference_minor": sum(int(r["difference_minor"]) for r in rows)
        + sum(int(p["difference_minor"]) for p in periods),
    }


def refuse_withheld(ctx: Billing, backfill_id: str) -> None:
    """409 ``correction_unbillable`` when the commit would bring a line of an invoice it corrects, or of an
    open period, to 0 because it is unbillable (the preview's ``withheld`` and ``unbillable_lines``):
    checked before anything is written."""
    shown = preview(ctx, backfill_id)
    withheld = [w for row in shown["invoices"] for w in row["withheld"]]
    withheld += [
        {
            "invoice_id": None,
            "subscription_id": p["subscription_id"],
            "period_start": p["period_start"],
            **line,
        }
        for p in shown["open_periods"]
        for line in p["unbillable_lines"]
    ]  # the open period would bill these lines 0 once the events are counted
    unbillable.refuse(withheld)


def replace_overlay(
    ctx: Billing,
    backfill_id: str,
    doc: dict[str, Any],
    held: list[HeldEvent],
    counting: list[HeldEvent],
    without: dict[tuple[str, str], dict[tuple[str, str], CellUsage]],
) -> tuple[list[HeldEvent], HeldUsage]:
    """mode replace: the events the commit would void, and the usage as it would be after it: within the
    range (whole hours), the backfill's customers and meters hold only the events counted and the stored
    events that stand for held ones (the same content under the same transaction id); outside it, the
    cells of the events superseded hold their other events (``without``)."""
    from datetime import UTC, timedelta

    from neruba.logic.billing.backfill_ids import resolve

    replaced = as_held(replaced_events(ctx, backfill_id, doc, held, datetime.now(UTC)))
    start, end = parse_ts(str(doc["start"])), parse_ts(str(doc["end"]))
    found = resolve(ctx, backfill_id, "replace", held)
    stands = [r.target for r in found.values() if r.kind == "stands" and r.target is not None]
    standing = [e for e in as_held(stands) if start <= parse_ts(str(e.event["timestamp"])) < end]
    pairs = {(c, m) for c in doc["customer_ids"] for m in doc["meter_codes"]}
    cleared = (pairs, hour_bucket(start), hour_bucket(end - timedelta(microseconds=1)))
    return replaced, HeldUsage(ctx.usage, held_cells(ctx, counting + standing), cleared, without)


def open_periods(ctx: Billing, overlay: Any, events: list[HeldEvent]) -> list[dict[str, Any]]:
    """The current periods (not invoiced yet) the events change: the upcoming invoice's window of each
    subscription (``logic.billing.upcoming``) to date, without and with the events."""
    from datetime import UTC

    from neruba.logic.billing.upcoming import upcoming_invoice

    now = datetime.now(UTC)
    found = []
    for customer_id in sorted({e.customer_id for e in events}):
        before = upcoming_invoice(ctx.plans, ctx.usage, customer_id, now, ctx.billing)["windows"]
        after = upcoming_invoice(ctx.plans, overlay, customer_id, now, ctx.billing)["windows"]
        for old, new in zip(before, after, strict=True):
            difference = int(new["total_minor"]) - int(old["total_minor"])
            subtotal = int(new["subtotal_minor"]) - int(old["subtotal_minor"])
            was = unbillable.flagged_lines(old["lines"])
            newly = [line for line in unbillable.flagged_lines(new["lines"]) if line not in was]
            if difference or subtotal or newly:
                found.append(
                    {
                        "customer_id": customer_id,
                        "subscription_id": old.get("subscription_id"),
                        "period_start": old["period_start"],
                        "period_end": old["period_end"],
                        "before_minor": int(old["total_minor"]),
                        "after_minor": int(new["total_minor"]),
                        "difference_minor": difference,
                        "subtotal_before_minor": int(old["subtotal_minor"]),
                        "subtotal_after_minor": int(new["subtotal_minor"]),
                        "subtotal_difference_minor": subtotal,
                        "tax_difference_minor": difference - subtotal,
                        # lines the events would bring to 0 as unbillable: the commit is refused
                        "unbillable_lines": newly,
                    }
                )
    return found
