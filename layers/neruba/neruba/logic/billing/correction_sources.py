"""Which backfills a correction carries: decided from the events behind it, not from who ran the rerun
(docs/billing.md, "Whose events a correction carries").

A rerun of an invoice bills every difference found at that moment: a backfill's commit may rerun an
invoice after another backfill, an operator rerun or a void changed the same window, and carry their
events with its own (or carry none of its own). So each rerun asks, for every backfill whose events
lie in the window (:func:`candidates`), what those events account for now: the window rated as it is
less the window rated without them (its counted events taken out, the events it voided as replaced or
superseded put back: ``backfill_preview.HeldUsage``), per line. Less what earlier reruns recorded for
that backfill on the invoice (``dal.backfills.CarriedParts``), that is the backfill's part of this
rerun. A line names each backfill with a part on it (``source.backfills``; ``source.backfill`` the first,
as before), with its share of the line's money; what no backfill accounts for (a void, an amend, a
late live event) is ``source.other_minor``. Each part is recorded in the rerun's own transaction, once,
so a backfill's commit (or revert) record reports, per invoice, the money its own events changed,
whichever rerun carried them.

A backfill is a candidate when its commit began after the invoice was made (an earlier one's events
were billed when the invoice was rated), or when the rerun is its own; a ``reverted`` one only while its
recorded parts on the invoice do not net to zero.

Cost: one query of the customer's backfill spans ending after the window's start and one batch read of
the backfills they name (never the deployment's other backfills); per candidate, its held events read
and one more rating of the window.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neruba.dal.backfills import Backfill, CarriedPart
from neruba.domain.phases import hour_after, hour_of, rated_at
from neruba.timefmt import parse_ts, ts

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.dal.usage import StoredEvent
    from neruba.logic.billing.context import Billing

STARTED = ("committing", "committed", "reverting", "reverted")
DRAFT = "draft"  # the one pseudo-line of a draft's parts: its change of subtotal
LEVEL = "level:"  # a part through a level the rerun's own backfill carries into the window


def candidates(ctx: Billing, invoice: Invoice, own: str | None) -> list[Backfill]:
    """The backfills whose events may lie in the invoice's window and are not billed by its lines: those
    of its customer whose recorded reach overlaps the window (``logic.billing.backfill_reach``: one
    query of the customer's spans ending after the window's start, then the backfills it names), and the
    rerun's own."""
    from neruba.logic.billing.backfill_reach import reaching
    from neruba.logic.billing.backfills import backfills

    repo = backfills(ctx)
    low, high = _hours(invoice)  # the window's events lie in the whole hours it rates
    ids = reaching(repo, invoice.customer_id, ts(low), ts(high))
    made = invoice.document.get("created_at")
    found = []
    for backfill in repo.get_many(sorted(ids | ({own} if own else set()))):
        if backfill.status not in STARTED or invoice.customer_id not in backfill.document["customer_ids"]:
            continue
        began = backfill.committing_at
        if backfill.id == own or not made or (began and parse_ts(began) > parse_ts(str(made))):
            found.append(backfill)
    return found


def _hours(invoice: Invoice) -> tuple[datetime, datetime]:
    """The whole hours a window's usage may come from (the hour it starts in, the hour it ends in)."""
    return hour_of(parse_ts(invoice.period_start)), hour_after(parse_ts(invoice.period_end))


def _in_window(invoice: Invoice, events: list[StoredEvent], anchor: datetime) -> list[StoredEvent]:
    """The events the window rates: each by its hour's effective start (``domain.phases.rated_at``), as
    rating places usage (an event of the first hour before the start, or of the last hour after the end,
    is the window's)."""
    start, end = parse_ts(invoice.period_start), parse_ts(invoice.period_end)
    return [
        e
        for e in events
        if e.customer_id == invoice.customer_id and start <= rated_at(parse_ts(e.timestamp), anchor) < end
    ]


def own_events(ctx: Billing, backfill: Backfill) -> tuple[list[StoredEvent], list[StoredEvent]]:
    """The backfill's events as they stand: those its commit counted, accepted now, and those it voided
    (replaced or superseded) and that are still voided by it."""
    from neruba.logic.billing import backfill_ids, backfill_replace, backfill_supersede
    from neruba.logic.billing.backfills import backfills

    held = backfills(ctx).held_events(backfill.id)
    counted = [e for e in backfill_ids.counted(ctx, backfill.id, held).values() if e.status == "accepted"]
    voided = [
        e for e in backfill_supersede.originals_to_restore(ctx, backfill.id, held) if e.status == "voided"
    ]
    if backfill.document.get("mode") == "replace":
        found = backfill_replace.events_to_restore(ctx, backfill.id, backfill.document)
        voided += [e for e in found if e.status == "voided"]
    return counted, voided


def carried_levels(ctx: Billing, invoice: Invoice, events: list[StoredEvent]) -> set[str]:
    """The level meters (``weighted_sum``, ``latest`` with carry-over) of ``events`` that lie before the
    invoice's window: the level they change carries into it, which :func:`effect` cannot take apart."""
    from neruba.domain.levels import carries_level

    start = parse_ts(invoice.period_start)
    anchor = ctx.subscription(str(invoice.subscription_id)).timeline.anchor.astimezone(UTC)
    found = set()
    for code in {e.meter_code for e in events if e.customer_id == invoice.customer_id}:
        meter = ctx.plans.get_meter(code)
        if meter is None or not carries_level(str(meter.aggregation), bool(meter.carry_over)):
            continue
        if any(e.meter_code == code and rated_at(parse_ts(e.timestamp), anchor) < start for e in events):
            found.add(code)
    return found


def effect(
    ctx: Billing,
    invoice: Invoice,
    rated: dict[str, dict[str, Any]],
    events: tuple[list[StoredEvent], list[StoredEvent]],
) -> dict[str, int]:
    """Per line: the rated amount (before discounts) the backfill's events (``own_events``) account for
    in the window now."""
    from neruba.logic.billing.backfill_replace import as_held
    from neruba.logic.billing.deltas import rated_lines
    from neruba.logic.billing.held_usage import HeldUsage, held_cells, without_cells

    terms = ctx.subscription(str(invoice.subscription_id)).timeline
    anchor = terms.anchor.astimezone(UTC)
    counted, voided = _in_window(invoice, events[0], anchor), _in_window(invoice, events[1], anchor)
    if not counted and not voided:
        return {}
    usage = HeldUsage(ctx.usage, held_cells(ctx, as_held(voided)), without=without_cells(ctx, counted))
    overlay = replace(ctx, usage=usage)  # type: ignore[arg-type]
    start, end = parse_ts(invoice.period_start), parse_ts(invoice.period_end)
    without = rated_lines(overlay.rate_window(terms, start, end))
    lines = set(rated) | set(without)
    found = {
        line: int((rated.get(line) or {}).get("amount_minor") or 0)
        - int((without.get(line) or {}).get("amount_minor") or 0)
        for line in lines
    }
    return {line: amount for line, amount in found.items() if amount}


def _direction(backfill: Backfill) -> str:
    return "revert" if backfill.status in ("reverting", "reverted") else "commit"


def _named(backfill: Backfill) -> dict[str, Any]:
    """How a line names the backfill: its reason and ticket, or its revert's."""
    doc = backfill.document
    if _direction(backfill) == "revert":
        revert = doc.get("revert") or {}
        return {
            "backfill_id": backfill.id,
            "reason": revert.get("reason"),
            "ticket": revert.get("ticket"),
            "revert": True,
        }
    return {"backfill_id": backfill.id, "reason": doc.get("reason"), "ticket": doc.get("ticket")}


def _share(money: int, part: int, whole: int) -> int:
    """``money`` times ``part / whole``, rounded half away from zero in integer arithmetic."""
    if not whole:
        return 0
    value = abs(money * part)
    share = (2 * value + abs(whole)) // (2 * abs(whole))
    return share if (money * part) * whole > 0 else -share


class Attribution:
    """One rerun's parts: per candidate backfill, per line, what its events account for that earlier
    reruns did not record."""

    def __init__(
        self, ctx: Billing, invoice: Invoice, rated: dict[str, dict[str, Any]], own: str | None
    ) -> None:
        from neruba.logic.billing import backfill_ids
        from neruba.logic.billing.backfills import backfills

        recorded = backfills(ctx).parts.of_invoice(invoice.id)
        self.invoice = invoice
        self.deltas: list[dict[str, Any]] = []  # the lines named (their source lists the shares)
        self.parts: list[tuple[Backfill, dict[str, int]]] = []
        self.own: Backfill | None = None
        self.levels: set[str] = set()  # the level meters the rerun's own backfill carries into the window
        self.absorbed: dict[str, int] = {}  # per line: the own backfill's part through those levels
        for backfill in candidates(ctx, invoice, own):
            carried: dict[str, int] = {}
            for part in recorded:
                if part.backfill_id == backfill.id:
                    for line, amount in part.lines.items():
                        if not line.startswith(LEVEL):  # a level's part is no effect to compare with
                            carried[line] = carried.get(line, 0) + amount
            if backfill.status == "reverted" and not any(carried.values()):
                continue
            events = own_events(ctx, backfill)
            now = effect(ctx, invoice, rated, events)
            new = {line: now.get(line, 0) - carried.get(line, 0) for line in set(now) | set(carried)}
            new = {line: amount for line, amount in new.items() if amount}
            if backfill.id == own:  # its events as counted, voided by its revert or not
                every = list(backfill_ids.counted(ctx, own, backfills(ctx).held_events(own)).values())
                self.own, self.levels = backfill, carried_levels(ctx, invoice, every + events[1])
            if new or backfill.id == own:
                self.parts.append((backfill, new))

    def _absorb(self, line_id: str, whole: int) -> None:
        """The rerun's own backfill carries a level into the window: what no backfill accounts for on
        the line is its part (the level its events changed)."""
        left = whole - sum(self._part(b, lines, line_id) for b, lines in self.parts)
        if self.own is not None and left:
            self.absorbed[line_id] = self.absorbed.get(line_id, 0) + left

    def _part(self, backfill: Backfill, lines: dict[str, int], line_id: str) -> int:
        mine = self.absorbed.get(line_id, 0) if backfill is self.own else 0
        return lines.get(line_id, 0) + mine

    def _lines(self, backfill: Backfill, lines: dict[str, int]) -> dict[str, int]:
        """The part as recorded: per line, and the level's part under ``level:{line}``."""
        if backfill is not self.own:
            return lines
        return {**lines, **{f"{LEVEL}{k}": v for k, v in self.absorbed.items() if v}}

    def name_lines(self, deltas: list[dict[str, Any]]) -> None:
        """Each adjustment line names the backfills with a part on its line, with their share of its
        money; what none accounts for is ``other_minor``."""
        self.deltas = deltas
        for delta in deltas:
            line_id = str((delta.get("references") or {}).get("line_id"))
            whole = int(delta.get("gross_minor", delta["amount_minor"]))
            money = int(delta["amount_minor"])
            if delta.get("meter_code") in self.levels:
                self._absorb(line_id, whole)
            named, explained = [], 0
            for backfill, lines in self.parts:
                part = self._part(backfill, lines, line_id)
                if part:
                    named.append({**_named(backfill), "amount_minor": _share(money, part, whole)})
                    explained += part
            if named and explained == whole:  # the backfills account for all of it: no rounding left over
                named[-1]["amount_minor"] = money - sum(int(n["amount_minor"]) for n in named[:-1])
            source = {k: v for k, v in delta["source"].items() if k not in ("backfill", "backfills")}
            if named:
                source["backfill"] = {k: named[0][k] for k in ("backfill_id", "reason", "ticket")}
                source["backfills"] = named
            other = money - sum(int(n["amount_minor"]) for n in named)
            if named and other:
                source["other_minor"] = other
            delta["source"] = source

    def leave_out(self, line_ids: set[str]) -> None:
        """Record no part of the lines ``line_ids`` (left for a later billing to carry)."""
        self.parts = [(b, {k: v for k, v in lines.items() if k not in line_ids}) for b, lines in self.parts]

    def carried_items(self, ctx: Billing, action: str, invoice_id: str | None) -> list[Any]:
        """The Puts recording the parts of a difference billed without a rerun, under a rerun key that
        follows from its lines (each adjustment line's id is new: billed once, recorded once):
        ``action`` ``adjustment_applied`` (``invoice_id`` the window invoice carrying the lines) or
        ``correction_invoiced`` (the correction invoice, or None when credit notes took all of it)."""
        from neruba.logic import idempotency

        rerun = idempotency.digest({"carried": sorted(str(d["line_id"]) for d in self.deltas)}, 16)
        return self.items(ctx, rerun, {"action": action, "correction": {"invoice_id": invoice_id}})

    def audited(self) -> dict[str, Any]:
        """For the rerun's audit record: the backfills whose events it carries (none: nothing)."""
        named = [backfill.id for backfill, lines in self.parts if self._lines(backfill, lines)]
        return {"backfills": named} if named else {}

    def items(self, ctx: Billing, rerun: str, result: dict[str, Any], draft_gross: int = 0) -> list[Any]:
        """The Puts recording each backfill's part of this rerun (``result``: the rerun's answer), its
        money the share of the rerun's difference its lines account for."""
        from neruba.logic.billing.backfills import backfills

        repo = backfills(ctx).parts
        correction = result.get("correction") or {}
        notes = [str(n["id"]) for n in correction.get("credit_notes") or []]
        difference = result.get("difference") or {}
        lines = {str((d.get("references") or {}).get("line_id")): d for d in self.deltas}
        draft = result["action"] == "draft_recomputed"
        if draft and self.levels:  # a draft's change is one figure: what no backfill accounts for
            self._absorb(DRAFT, draft_gross - sum(v for _, p in self.parts for v in p.values()))
        found = []
        for backfill, parts in self.parts:
            recorded = self._lines(backfill, parts)
            if not recorded:
                continue
            amount = tax = 0
            if draft:
                whole = sum(parts.values()) + (self.absorbed.get(DRAFT, 0) if backfill is self.own else 0)
                amount = _share(int(difference.get("subtotal_minor") or 0), whole, draft_gross)
                tax = _share(int(difference.get("tax_minor") or 0), whole, draft_gross)
            else:
                for line_id, delta in lines.items():
                    part = self._part(backfill, parts, line_id)
                    for shown in delta["source"].get("backfills") or []:
                        if shown["backfill_id"] == backfill.id:
                            amount += int(shown["amount_minor"])
                    gross = int(delta.get("gross_minor", delta["amount_minor"]))
                    added = int((delta.get("tax") or {}).get("exclusive_minor") or 0)
                    tax += _share(added, part, gross)
            money = {
                "action": result["action"] if amount or tax else "unchanged",
                "amount_minor": amount,
                "tax_minor": tax,
                "total_minor": amount + tax,
                "correction_invoice_id": correction.get("invoice_id") if amount or tax else None,
                # the credit notes that settled it (a negative correction after the end: docs/billing.md)
                "credit_note_ids": notes if amount or tax else [],
            }
            record = CarriedPart(self.invoice.id, backfill.id, rerun, _direction(backfill), recorded, money)
            found.append(repo.put_item(record))
        return found


def carried(
    ctx: Billing,
    invoice: Invoice,
    rated: dict[str, dict[str, Any]],
    deltas: list[dict[str, Any]],
    room: int | None = None,
) -> tuple[list[dict[str, Any]], Attribution]:
    """A difference billed without a rerun (the next window's look-back; after the end, the corrections
    sweep) is attributed as a rerun's: the lines (at most ``room``, less one per backfill's part to
    record; None: all of them) named, and the parts to record (:meth:`Attribution.carried_items`). A line
    left out is found again, with its parts, by the next billing."""
    parts = Attribution(ctx, invoice, rated, None)
    keep = len(deltas) if room is None else max(0, room - sum(1 for _, lines in parts.parts if lines))
    if keep < len(deltas):
        parts.leave_out({str((d.get("references") or {}).get("line_id")) for d in deltas[keep:]})
    kept = deltas[:keep]
    parts.name_lines(kept)
    return kept, parts


def reported(ctx: Billing, invoice_id: str, backfill_id: str, direction: str) -> dict[str, Any]:
    """What a backfill's commit (``direction`` commit) or revert records for an invoice: the money of
    the parts its events account for, over every rerun that carried them."""
    from neruba.logic.billing.backfills import backfills

    parts = [
        p
        for p in backfills(ctx).parts.of_invoice(invoice_id)
        if p.backfill_id == backfill_id and p.direction == direction
    ]
    moved = [p.part for p in parts if p.part.get("action") != "unchanged"]
    last = moved[-1] if moved else {}
    return {
        "invoice_id": invoice_id,
        "action": last.get("action", "unchanged"),
        "amount_minor": sum(int(p["amount_minor"]) for p in moved),
        "tax_minor": sum(int(p["tax_minor"]) for p in moved),
        "total_minor": sum(int(p["total_minor"]) for p in moved),
        "correction_invoice_id": last.get("correction_invoice_id"),
        "credit_note_ids": list(dict.fromkeys(str(n) for p in moved for n in p.get("credit_note_ids") or [])),
    }
