"""Pay-in-advance charges: an event billed when it arrives (docs/pricing.md, "Pay-in-advance charges").

The ingest worker sends one ``{"advance": {...}}`` message per counted event of a meter some charge bills
in advance (``logic.ingest.advance``) to the billing queue; the billing worker hands it to
:func:`process_message`, which

1. finds the subscription whose phase at the start of the event's hour (``domain.phases.rated_at``,
   the phase that rates that hour in arrears) charges the meter in advance, and the billing
   period holding the event;
2. reads the period's position (units in use, units paid) and prices the change
   (``domain.advance.price_change``: marginal price under the charge's model, proration, one rounding);
3. writes, in ONE transaction: the advance item ``ADV#{customer}`` / ``{transaction_id}`` (condition:
   new, so the same event twice bills once), the position (condition: unchanged since read, so two events
   at once are priced in turn), and either the event's own invoice with its ledger posting and
   ``invoice.created`` event (``invoice_now``, and ``refund`` on removal) or the item ``pending`` for the
   next invoice (``next_invoice``, and ``credit`` on removal);
4. finalizes and sends the invoice to Stripe sync (``logic.billing.corrections.issue_now``); a redelivered
   message finding its item does only this, which is safe to repeat.

The next window invoice carries pending items (``advance_lines.pick_up``, called with the one-off
charges' pick-up in that invoice's own transaction, conditional on the item still pending). The
period's own usage line of the charge is 0 (``domain.lines.ADVANCE_NOTE``), so nothing is billed
twice, and re-rating (finalization, reruns, late events) never touches advance lines
(``document.CARRIED_KINDS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from neruba.dal.features import ADVANCE
from neruba.dal.one_offs import STATUS_PENDING
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.domain.advance import Change, Terms, event_delta, period_of, price_change, terms_of
from neruba.domain.numbers import canonical_text
from neruba.logic import idempotency
from neruba.logic.billing.advance_lines import KIND
from neruba.logic.billing.advance_phase import charge_for
from neruba.logic.billing.context import Billing, request_for
from neruba.logic.billing.document import invoice_document, invoice_event
from neruba.timefmt import parse_ts, ts

if TYPE_CHECKING:
    from neruba.dal.advance import AdvanceRepository
    from neruba.dal.plans import Subscription

ATTEMPTS = 5  # positions moved by concurrent events before the message is left to SQS to retry


class AdvanceContentionError(Exception):
    """The period's position kept moving under this event; SQS delivers the message again."""


def _text(value: Decimal) -> str:
    return canonical_text(value)


def _line(
    event: Mapping[str, Any],
    sub: Subscription,
    version: Mapping[str, Any],
    charge: Mapping[str, Any],
    change: Change,
    period: tuple[datetime, datetime],
    at: datetime,
) -> dict[str, Any]:
    """The advance line of an event: what it billed and every figure behind it (in ``source``). ``at`` is
    when it is billed from (an event of a subscription's first hour before its start: the start)."""
    sent = parse_ts(str(event["timestamp"]))  # the event's own time, shown
    terms = terms_of(charge) or Terms()
    meter = str(charge["meter_code"])
    if change.units >= 0:
        what = f"{_text(change.units)} unit(s) billed in advance ({charge['model']})"
    else:
        what = f"{_text(-change.units)} unit(s) removed: {terms.on_removal} for what was paid"
    share = f", prorated to the {_text(change.fraction)} of the period left" if terms.prorate else ""
    if change.unbillable:
        share += ": amount too large to bill (over the line limit), billed as 0"
    return {
        "line_id": f"advance:{meter}:{event['transaction_id']}",
        "kind": KIND,
        "description": f"{meter}: {what}{share} (event {event['transaction_id']} at {ts(sent)})",
        "meter_code": meter,
        "group": {},
        "quantity": change.units,
        "unit_price": charge.get("unit_price"),
        "tiers": [],
        "amount_minor": change.amount_minor,
        "period_start": at.isoformat(),
        "period_end": period[1].isoformat(),
        "plan_code": str(version["code"]),
        "plan_version": int(version["version"]),
        "source": {
            "advance_id": str(event["transaction_id"]),
            "transaction_id": str(event["transaction_id"]),
            "event_timestamp": ts(sent),
            "meter_code": meter,
            "subscription_id": sub.id,
            "billing_period_start": period[0].isoformat(),
            "billing_period_end": period[1].isoformat(),
            "delta": canonical_text(change.delta),
            "level_before": canonical_text(change.before.level),
            "level_after": canonical_text(change.after.level),
            "paid_before": canonical_text(change.before.paid),
            "paid_after": canonical_text(change.after.paid),
            "full_amount": canonical_text(change.full_amount),
            "fraction": canonical_text(change.fraction),
            "seconds": canonical_text(change.seconds),
            "period_seconds": canonical_text(change.period_seconds),
            "amount": canonical_text(change.amount),
            "invoicing": terms.invoicing,
            "on_removal": terms.on_removal,
            **({"unbillable": change.unbillable} if change.unbillable else {}),
        },
        "references": None,
    }


def _invoiced_now(terms: Terms, change: Change) -> bool:
    """Whether the line gets an invoice of its own now (else it waits for the next invoice)."""
    if change.amount_minor < 0:
        return terms.on_removal == "refund"
    return terms.invoicing == "invoice_now"


def _invoice(
    ctx: Billing, item: dict[str, Any], line: dict[str, Any], now: datetime
) -> tuple[str, list[Any]]:
    """The event's own invoice (kind ``advance``, due for finalization now) and the actions writing it;
    its period is the billing period the event falls in (the line's ``source.billing_period_*``)."""
    invoice_id = "in_" + idempotency.digest(f"advance:{item['customer_id']}:{item['id']}", 24)
    at = ts(now)
    period = (line["source"]["billing_period_start"], line["source"]["billing_period_end"])
    lines, extras, uses = ctx.standalone_extras(
        str(item["customer_id"]),
        str(line["source"]["subscription_id"]),
        [line],
        str(item["currency"]),
        period,
        invoice_id,
        str(period[0]),
    )  # the discounts of the billing period the event falls in, their use recorded with the invoice
    doc = invoice_document(
        invoice_id=invoice_id,
        customer_id=str(item["customer_id"]),
        subscription_id=None,
        currency=str(item["currency"]),
        kind=KIND,
        seq=0,
        details={
            "advance": {"transaction_id": item["id"], "subscription_id": line["source"]["subscription_id"]},
            **extras,
        },
        period=period,
        lines=lines,
        applications=[],
        created_at=at,
        finalize_at=at,
    )
    actions = [ctx.invoices.put_item(doc, now), invoice_event("invoice.created", doc, now), *uses]
    return invoice_id, actions + ctx.invoice_posting_items(request_for(doc, now))


def _item(event: Mapping[str, Any], currency: str, amount: int, now: datetime, **more: Any) -> dict[str, Any]:
    return {
        "id": str(event["transaction_id"]),
        "object": "advance_item",
        "customer_id": str(event["customer_id"]),
        "meter_code": str(event["meter_code"]),
        "event_timestamp": str(event["timestamp"]),
        "currency": currency,
        "amount_minor": amount,
        "created_at": ts(now),
        "invoice_id": None,
        **more,
    }


def process_message(ctx: Billing, event: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Bill one event of a meter charged in advance (at most once); returns its advance item."""
    from neruba.logic.billing.corrections import issue_now

    repo = ctx.billing.advance
    customer_id, transaction_id = str(event["customer_id"]), str(event["transaction_id"])
    for _attempt in range(ATTEMPTS):
        stored = repo.get(customer_id, transaction_id)
        if stored is not None:  # billed already (a redelivery): finish what the first attempt began
            if stored.invoice_id:
                issue_now(ctx, stored.invoice_id, now)
            return stored.document
        written = _write(ctx, repo, event, now)
        if written is None:
            continue  # the position moved, or the item appeared meanwhile: read again
        if written.get("invoice_id"):
            issue_now(ctx, str(written["invoice_id"]), now)
        return written
    raise AdvanceContentionError(f"advance billing of {customer_id}/{transaction_id} kept contending")


def _write(
    ctx: Billing, repo: AdvanceRepository, event: Mapping[str, Any], now: datetime
) -> dict[str, Any] | None:
    """One attempt: price against the position read and commit; None when a condition failed."""
    at = parse_ts(str(event["timestamp"]))
    meter_code = str(event["meter_code"])
    found = charge_for(ctx.plans, str(event["customer_id"]), meter_code, at)
    if isinstance(found, str):
        item = _item(event, "", 0, now, status="not_billed", reason=found)
        return _commit(Transaction().add(repo.put_item(item), name="item"), item)
    sub, version, charge = found
    anchor = sub.timeline.anchor.astimezone(UTC)
    at = max(at, anchor)  # an event of the first hour before the start: billed as at the start
    period = period_of(anchor, sub.timeline.every, at, ctx.add_interval)
    start = ts(period[0])
    position, revision = repo.position(sub.id, meter_code, start)
    meter = ctx.plans.get_meter(meter_code)
    aggregation = meter.aggregation if meter is not None else "count"
    unit = Transaction()
    new_value = True
    if aggregation == "unique_count":
        value = str(event.get("value"))
        new_value = not repo.seen(sub.id, meter_code, start, value)
        if new_value:
            unit.add(repo.seen_item(sub.id, meter_code, start, value), name="position")
    currency = str(version["currency"])
    delta = event_delta(aggregation, event.get("value"), new_value)
    change = price_change(charge, position, delta, at, period, currency)
    line = _line(event, sub, version, charge, change, period, at)
    terms = terms_of(charge) or Terms()
    if change.amount_minor == 0:
        item = _item(event, currency, 0, now, status="recorded", line=line, reason="nothing_to_bill")
    elif _invoiced_now(terms, change):
        item = _item(event, currency, change.amount_minor, now, status="invoiced", line=line)
        item["invoice_id"], actions = _invoice(ctx, item, line, now)
        unit.extend(actions)
    else:
        item = _item(event, currency, change.amount_minor, now, status=STATUS_PENDING, line=line)
        unit.add(ctx.billing.features.customer_item(str(event["customer_id"]), ADVANCE))  # windows pick it up
    unit.add(repo.put_item(item), name="item")
    unit.add(repo.position_item(sub.id, meter_code, start, change.after, revision), name="position")
    return _commit(unit, item)


def _commit(unit: Transaction, item: dict[str, Any]) -> dict[str, Any] | None:
    try:
        commit(unit)
    except Cancelled as exc:
        if exc.failed("item") or exc.failed("position"):
            return None  # another attempt billed this event, or another event moved the position
        raise
    return item
