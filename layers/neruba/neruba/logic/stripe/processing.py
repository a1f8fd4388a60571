"""Processing one stored Stripe event: its effects, its status, and the events waiting for it.

Statuses: ``received`` (stored, not yet processed) -> ``processed`` | ``ignored`` (a type we do not act
on, or an object that is not ours) | ``failed`` (with ``error``) | ``deferred`` (waiting for something it
depends on). Every attempt is appended to the event's history.

Ordering: a refund or a dispute needs to know which invoice its charge paid. That link
(``STRIPELINK#charge:…``, ``pi:…``, ``invoice:…``) is written when the ``invoice.paid`` event is processed.
An event whose link is missing first registers itself as a waiter, *then* looks the link up again (so a
payment processed in between is never missed), and ends ``deferred``; processing the payment writes the
links, then queues every waiter again. ``charge.dispute.closed`` waits the same way for
``charge.dispute.created`` (link ``dispute:…``).

Every effect is idempotent by a key derived from the Stripe object it books (``stripe:payment:{charge or
payment intent}``, ``stripe:refund:{refund_id}``, ``stripe:dispute:{dispute_id}:{created|won|lost}``), so
redeliveries, replays and two events describing the same object post nothing twice.

Example:
    >>> event_keys({"type": "charge.refunded", "data": {"object": {"id": "ch_1"}}})
    ['charge:ch_1']
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from neruba.dal.stripe_events import StripeEvent, StripeEventsRepository, StripeLink
from neruba.errors import NerubaError
from neruba.logic.stripe.checks import Park, PaymentClaim, check_payment, identity_mismatch
from neruba.logic.stripe.effects import EffectConflictError, EffectRefusedError, EffectResult, StripeEffects
from neruba.logic.stripe.stripe_tax import StripeTaxDataError, delegated, stripe_tax_of

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice

AuditItems = Callable[["ProcessResult"], list[dict[str, Any]]]
SETTLED = ("processed", "ignored", "parked")  # a queued copy of such an event changes nothing
CLAIM_HOLD = timedelta(seconds=120)  # over the worker's 60 s timeout, under the queue's 180 s visibility
PAYMENTS = ("invoice.paid", "invoice.payment_succeeded")
HANDLED = (
    *PAYMENTS,
    "invoice.finalized",
    "invoice.payment_failed",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
)


class EventDataError(ValueError):
    """The stored event lacks data its type needs (permanent: retrying cannot help)."""


class EventNotFoundError(LookupError):
    """No stored event with that id."""


class EventBusyError(RuntimeError):
    """Another copy of this event is being processed right now; retry the message later."""


@dataclass
class ProcessResult:
    """The status an attempt ended in, with its outcome text and the events to wake."""

    status: str
    outcome: str
    error: str | None = None
    wake: list[str] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)


def _obj(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise EventDataError("event has no data.object")
    return obj


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if isinstance(value, dict):  # an expanded object
        value = value.get("id")
    if not isinstance(value, str) or not value:
        raise EventDataError(f"data.object.{name} is missing")
    return value


def _opt(obj: dict[str, Any], name: str) -> str | None:
    try:
        return _str(obj, name)
    except EventDataError:
        return None


def _amount(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EventDataError(f"data.object.{name} is not an amount in minor units")
    return value


def event_keys(event: dict[str, Any]) -> list[str]:
    """The link keys an event's object can be found under (charge, payment intent, invoice, dispute)."""
    obj = _obj(event)
    kind = event["type"]
    keys: list[str] = []
    if kind == "charge.refunded":
        keys.append(f"charge:{_str(obj, 'id')}")
    elif kind.startswith("charge.dispute."):
        if kind == "charge.dispute.closed":
            return [f"dispute:{_str(obj, 'id')}"]
        keys.append(f"charge:{_str(obj, 'charge')}")
    if (pi := _opt(obj, "payment_intent")) is not None:
        keys.append(f"pi:{pi}")
    if kind == "charge.refunded" and (invoice := _opt(obj, "invoice")) is not None:
        keys.append(f"invoice:{invoice}")
    return keys


class Processor:
    """Processes stored events with the given effects; ``wake`` queues event ids again."""

    def __init__(
        self,
        repo: StripeEventsRepository,
        effects: StripeEffects,
        wake: Callable[[list[str]], None],
        mode: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.repo = repo
        self.effects = effects
        self.wake = wake
        self.mode = mode  # the configured key's mode (live/test), None: not known, not checked

    def process(
        self,
        event_id: str,
        *,
        trigger: str,
        now: datetime | None = None,
        audit: AuditItems | None = None,
    ) -> ProcessResult:
        """Run one attempt and record it. Unexpected errors are recorded as ``failed`` and re-raised.

        ``audit`` builds TransactWriteItems actions from the result (a replay's audit record); they commit
        in the same transaction as the attempt's status change.
        """
        at = now or datetime.now(UTC)
        stored = self._stored(event_id)
        if trigger == "queue" and stored.status in SETTLED:
            return _settled(stored)  # another copy of a delivery already settled it
        token = uuid.uuid4().hex
        if not self.repo.claim(event_id, token, at, at + CLAIM_HOLD):
            raise EventBusyError(f"event {event_id} is being processed by another copy")
        stored = self._stored(event_id)  # settled between the first read and the claim?
        if trigger == "queue" and stored.status in SETTLED:
            self.repo.release(event_id, token)
            return _settled(stored)
        try:
            event = json.loads(stored.payload or "null")
            result = self._dispatch(event, at)
        except (EventDataError, NerubaError) as exc:
            result = ProcessResult("failed", "invalid_event", error=str(exc))
        except EffectRefusedError as exc:  # an effect not reached through _refused: parked, nothing applied
            result = ProcessResult("parked", "parked", error=str(exc)[:500])
        except Exception as exc:
            failed = ProcessResult("failed", "error", error=f"{type(exc).__name__}: {exc}"[:500])
            self._record(event_id, failed, trigger, at, audit)
            raise
        self._record(event_id, result, trigger, at, audit)
        if result.wake:
            self.wake(result.wake)
        return result

    def _stored(self, event_id: str) -> StripeEvent:
        stored = self.repo.get(event_id, with_payload=True)
        if stored is None:
            raise EventNotFoundError(event_id)
        return stored

    def _record(
        self, event_id: str, result: ProcessResult, trigger: str, at: datetime, audit: AuditItems | None
    ) -> None:
        self.repo.record_attempt(
            event_id,
            status=result.status,
            outcome=result.outcome,
            error=result.error,
            trigger=trigger,
            at=at,
            refs=result.refs,
            with_items=audit(result) if audit is not None else None,
        )

    # ---------------------------------------------------------------- per type
    def _dispatch(self, event: dict[str, Any], at: datetime) -> ProcessResult:
        kind = event.get("type")
        if kind in HANDLED and (park := self._mode_mismatch(event)) is not None:
            return ProcessResult("parked", "parked", error=str(park))
        if kind in PAYMENTS:
            return self._invoice_paid(event, at)
        if kind == "invoice.finalized":
            return self._invoice_finalized(event, at)
        if kind == "invoice.payment_failed":
            return self._payment_failed(event, at)
        if kind == "charge.refunded":
            return self._linked(event, at, self._refund)
        if kind == "charge.dispute.created":
            return self._linked(event, at, self._dispute_created)
        if kind == "charge.dispute.closed":
            return self._linked(event, at, self._dispute_closed)
        return ProcessResult("ignored", f"unhandled type {kind}")

    def _mode_mismatch(self, event: dict[str, Any]) -> Park | None:
        """A live event on a stack whose key is a test key, or the reverse: it was not meant for us."""
        mode = self.mode()
        livemode = event.get("livemode")
        if mode is None or (isinstance(livemode, bool) and livemode == (mode == "live")):
            return None
        said = "an event without livemode" if not isinstance(livemode, bool) else (
            "a live-mode event" if livemode else "a test-mode event"
        )  # fmt: skip
        return Park("livemode_mismatch", f"{said}; the configured Stripe key is a {mode} key")

    @staticmethod
    def _ours(obj: dict[str, Any]) -> tuple[str, str] | None:
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict):
            return None
        invoice_id, customer_id = metadata.get("neruba_invoice_id"), metadata.get("neruba_customer_id")
        if isinstance(invoice_id, str) and invoice_id and isinstance(customer_id, str) and customer_id:
            return invoice_id, customer_id
        return None

    def _stripe_tax(self, event: dict[str, Any], at: datetime) -> ProcessResult | EffectResult | None:
        """Record the tax Stripe Tax computed on a delegated invoice of ours (once per invoice, keyed
        ``stripe:tax:{invoice_id}``): the effect's result, a parked result when the event disagrees with the
        invoice, or None when there is nothing to record (not delegated, or no tax reported)."""
        obj = _obj(event)
        ours = self._ours(obj)
        if ours is None:
            return None
        invoice_id, customer_id = ours
        invoice = self.effects.invoice(invoice_id)
        if invoice is None or not delegated(invoice):
            return None
        mismatch = identity_mismatch(
            invoice, invoice_id, customer_id, _str(obj, "id"), _opt(obj, "customer"), _opt(obj, "currency")
        )
        if mismatch is not None:
            return _parked(mismatch, invoice_id, invoice, customer_id)
        try:
            tax = stripe_tax_of(obj)
        except StripeTaxDataError as exc:
            raise EventDataError(str(exc)) from exc
        if tax is None:
            return None
        try:
            return self.effects.stripe_tax(
                invoice_id=invoice_id,
                customer_id=customer_id,
                currency=invoice.currency,
                tax=tax,
                stripe_invoice_id=_str(obj, "id"),
                event_id=str(event.get("id")),
                idempotency_key=f"stripe:tax:{invoice_id}",
                at=at,
            )
        except EffectRefusedError as exc:
            return _refused(exc, invoice_id, customer_id)

    def _invoice_finalized(self, event: dict[str, Any], at: datetime) -> ProcessResult:
        """``invoice.finalized``: only a delegated invoice's tax is taken from it."""
        taxed = self._stripe_tax(event, at)
        if isinstance(taxed, ProcessResult):
            return taxed
        ours = self._ours(_obj(event))
        if taxed is None or ours is None:
            return ProcessResult("ignored", "no Stripe Tax to record (the invoice's tax is not delegated)")
        refs = {"invoice_id": ours[0], "customer_id": ours[1]}
        return ProcessResult("processed", _outcome("stripe tax", taxed), refs=refs)

    def _invoice_paid(self, event: dict[str, Any], at: datetime) -> ProcessResult:
        obj = _obj(event)
        ours = self._ours(obj)
        if ours is None:
            return ProcessResult("ignored", "invoice not issued by neruba (no neruba metadata)")
        taxed = self._stripe_tax(event, at)  # first, so the payment meets the total Stripe collects
        if isinstance(taxed, ProcessResult):
            return taxed
        invoice_id, customer_id = ours
        currency = _str(obj, "currency").upper()
        payment_id = _opt(obj, "charge") or _opt(obj, "payment_intent") or _str(obj, "id")
        total = obj.get("total", obj.get("amount_due"))
        claim = PaymentClaim(
            customer_id=customer_id,
            currency=currency,
            stripe_invoice_id=_str(obj, "id"),
            stripe_customer_id=_opt(obj, "customer"),
            amount_paid_minor=_amount(obj, "amount_paid"),
            stripe_total_minor=total if isinstance(total, int) and not isinstance(total, bool) else None,
        )
        for _ in range(3):  # decided on the invoice read; decided again if it changed before the write
            invoice = self.effects.invoice(invoice_id)
            plan = check_payment(invoice, claim, invoice_id)
            if isinstance(plan, Park):
                return _parked(plan, invoice_id, invoice, customer_id)
            try:
                effect = self.effects.invoice_paid(
                    invoice_id=invoice_id,
                    customer_id=customer_id,
                    currency=currency,
                    amount_minor=plan.post_minor,
                    stripe_invoice_id=claim.stripe_invoice_id,
                    payment_id=payment_id,
                    idempotency_key=f"stripe:payment:{payment_id}",
                    at=at,
                    plan=plan,
                )
            except EffectConflictError:
                continue
            break
        else:
            raise EffectConflictError(f"invoice {invoice_id} keeps changing")
        link = StripeLink(invoice_id, customer_id, currency, str(event["id"]))
        keys = [f"invoice:{_str(obj, 'id')}"]
        keys += [
            f"{prefix}:{value}"
            for prefix, name in (("charge", "charge"), ("pi", "payment_intent"))
            if (value := _opt(obj, name)) is not None
        ]
        wake: list[str] = []
        for key in keys:
            self.repo.put_link(key, link)  # links first, then read the waiters: none is missed
        for key in keys:
            wake += [w for w in self.repo.waiters(key) if w not in wake]
        refs = {"invoice_id": invoice_id, "customer_id": customer_id}
        outcome = _outcome("payment", effect)
        if taxed is not None:
            outcome = f"{_outcome('stripe tax', taxed)}; {outcome}"
        return ProcessResult("processed", outcome, wake=wake, refs=refs)

    def _payment_failed(self, event: dict[str, Any], at: datetime) -> ProcessResult:
        obj = _obj(event)
        ours = self._ours(obj)
        if ours is None:
            return ProcessResult("ignored", "invoice not issued by neruba (no neruba metadata)")
        invoice_id, customer_id = ours
        invoice = self.effects.invoice(invoice_id)
        mismatch = identity_mismatch(
            invoice, invoice_id, customer_id, _str(obj, "id"), _opt(obj, "customer"), _opt(obj, "currency")
        )
        if mismatch is not None:
            return _parked(mismatch, invoice_id, invoice, customer_id)
        error = obj.get("last_finalization_error") or {}
        reason = str(
            obj.get("failure_reason")
            or (error.get("message") if isinstance(error, dict) else "")
            or "payment_failed"
        )
        effect = self.effects.invoice_payment_failed(
            invoice_id=invoice_id,
            customer_id=customer_id,
            stripe_invoice_id=_str(obj, "id"),
            reason=reason,
            idempotency_key=f"stripe:{event['id']}",
            at=at,
        )
        refs = {"invoice_id": invoice_id, "customer_id": customer_id}
        return ProcessResult("processed", _outcome(f"payment_failed ({reason})", effect), refs=refs)

    def _linked(
        self,
        event: dict[str, Any],
        at: datetime,
        apply: Callable[[dict[str, Any], StripeLink, datetime], ProcessResult],
    ) -> ProcessResult:
        keys = event_keys(event)
        link = self._find_link(keys)
        if link is None:
            for key in keys:
                self.repo.add_waiter(key, event["id"], at)
            link = self._find_link(keys)  # the payment may have been processed meanwhile
            if link is None:
                return ProcessResult("deferred", f"waiting for {keys[0]}")
        try:
            result = apply(event, link, at)
        except EffectRefusedError as exc:
            result = _refused(exc, link.invoice_id, link.customer_id)
        for key in keys:
            self.repo.remove_waiter(key, event["id"])
        result.refs.update({"invoice_id": link.invoice_id, "customer_id": link.customer_id})
        return result

    def _find_link(self, keys: list[str]) -> StripeLink | None:
        for key in keys:
            found = self.repo.link(key)
            if found is not None:
                return found
        return None

    def _refund(self, event: dict[str, Any], link: StripeLink, at: datetime) -> ProcessResult:
        obj = _obj(event)
        charge_id = _str(obj, "id")
        refunds = obj.get("refunds", {}).get("data") if isinstance(obj.get("refunds"), dict) else None
        items: list[tuple[str | None, int, str]] = []
        if isinstance(refunds, list) and refunds:
            for refund in refunds:
                if not isinstance(refund, dict) or refund.get("status") in ("failed", "canceled"):
                    continue
                refund_key = _str(refund, "id")
                items.append((refund_key, _amount(refund, "amount"), f"stripe:refund:{refund_key}"))
        else:  # refunds not included (API versions since 2022-11-15): the charge's cumulative total
            total = _amount(obj, "amount_refunded")
            items.append((None, total, f"stripe:refund:{charge_id}:upto:{total}"))
        park = _currency_mismatch("refund", obj, link)
        if park is not None:
            return _parked(park, link.invoice_id, None, link.customer_id)
        outcomes = []
        for refund_id, amount, key in items:
            effect = self.effects.charge_refunded(
                invoice_id=link.invoice_id,
                customer_id=link.customer_id,
                currency=link.currency,
                amount_minor=amount,
                charge_id=charge_id,
                refund_id=refund_id,
                idempotency_key=key,
                at=at,
                refunded_total_minor=amount if refund_id is None else None,
            )
            outcomes.append(_outcome(f"refund {refund_id or charge_id} {amount}", effect))
        return ProcessResult("processed", "; ".join(outcomes) or "no refund to post")

    def _dispute_created(self, event: dict[str, Any], link: StripeLink, at: datetime) -> ProcessResult:
        obj = _obj(event)
        dispute_id = _str(obj, "id")
        park = _currency_mismatch("dispute", obj, link)
        if park is not None:
            return _parked(park, link.invoice_id, None, link.customer_id)
        effect = self.effects.dispute_created(
            invoice_id=link.invoice_id,
            customer_id=link.customer_id,
            currency=link.currency,
            amount_minor=_amount(obj, "amount"),
            dispute_id=dispute_id,
            charge_id=_str(obj, "charge"),
            idempotency_key=f"stripe:dispute:{dispute_id}:created",
            at=at,
        )
        key = f"dispute:{dispute_id}"
        self.repo.put_link(key, replace(link, charge_id=_str(obj, "charge"), event_id=str(event["id"])))
        return ProcessResult("processed", _outcome("dispute opened", effect), wake=self.repo.waiters(key))

    def _dispute_closed(self, event: dict[str, Any], link: StripeLink, at: datetime) -> ProcessResult:
        obj = _obj(event)
        status = obj.get("status")
        if status not in ("won", "lost"):
            return ProcessResult("ignored", f"dispute closed as {status}")
        dispute_id = _str(obj, "id")
        effect = self.effects.dispute_closed(
            invoice_id=link.invoice_id,
            customer_id=link.customer_id,
            currency=link.currency,
            amount_minor=_amount(obj, "amount"),
            dispute_id=dispute_id,
            charge_id=_str(obj, "charge"),
            result=status,
            idempotency_key=f"stripe:dispute:{dispute_id}:{status}",
            at=at,
        )
        return ProcessResult("processed", _outcome(f"dispute {status}", effect))


def _currency_mismatch(kind: str, obj: dict[str, Any], link: StripeLink) -> Park | None:
    """A refund or dispute in another currency than the payment. (Taking back more than the payment still
    has refundable is refused by the payment record's conditional write: ``EffectRefusedError``.)"""
    currency = _opt(obj, "currency")
    if currency is not None and currency.upper() != str(link.currency).upper():
        return Park(
            "currency_mismatch", f"the {kind} is in {currency.upper()}; the payment was in {link.currency}"
        )
    return None


def _settled(stored: StripeEvent) -> ProcessResult:
    """The recorded result of an event that needs nothing more, as it stands."""
    return ProcessResult(str(stored.status), stored.outcome or "", error=stored.error)


def _parked(park: Park, invoice_id: str, invoice: Invoice | None, customer_id: str) -> ProcessResult:
    """Nothing applied: the event waits for an operator (listed with ``status=parked``, replayable)."""
    owner = invoice.customer_id if invoice is not None else customer_id
    return ProcessResult(
        "parked", "parked", error=str(park), refs={"invoice_id": invoice_id, "customer_id": owner}
    )


def _refused(exc: EffectRefusedError, invoice_id: str, customer_id: str) -> ProcessResult:
    """An effect refused as the event states it: parked, nothing applied, naming the invoice and customer
    it concerns (so ``GET /admin/stripe-events`` shows whose it is)."""
    return ProcessResult(
        "parked", "parked", error=str(exc)[:500], refs={"invoice_id": invoice_id, "customer_id": customer_id}
    )


def _outcome(what: str, effect: EffectResult) -> str:
    return f"{what}: {effect.outcome}" + (f" ({effect.detail})" if effect.detail else "")
