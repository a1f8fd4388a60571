"""The oracle's Stripe payment rules (a mixin of tests.oracle.machine.Oracle) and their model.

Payments come the way Stripe sends them: finalized invoices are pushed to the fake Stripe by the real
sync function, then a signed ``invoice.paid`` (or ``invoice.payment_succeeded``) is posted to
``POST /webhooks/stripe`` and the real worker processes it. The model keeps, per invoice, its total, what
was paid and its status (docs/stripe.md, "Partial payments"), per payment (a Stripe charge) what was
refunded and disputed (docs/ledger.md, "Refunds and disputes"), and the status every delivered event must
end in (docs/stripe.md, "Statuses", "Payment events are checked").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from tests.oracle import harness as h

UNKNOWN_INVOICE = "in_" + "f" * 24
ACTIONS = ["pay", "pay", "pay", "replay", "bad_event", "take_back", "take_back", "close_dispute"]
BAD_EVENTS = [  # signatures that do not verify; signed events naming what we do not have
    "wrong_secret",
    "tampered",
    "stale",
    "future",
    "missing",
    "garbage",
    "unknown_invoice",
    "other_customer",
]


@dataclass
class Bill:
    """One invoice as far as collection goes."""

    customer: str
    total: int
    paid: int = 0
    payments: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "paid" if self.paid >= self.total else "finalized"


@dataclass
class Payment:
    """One Stripe charge booked against an invoice: refunds and disputes (open or lost) come out of it."""

    customer: str
    invoice: str
    amount: int
    refunded: int = 0
    disputed: int = 0

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded - self.disputed


@dataclass
class Delivered:
    """A verified event: its payload and the status it must end in (processed, parked)."""

    payload: dict[str, Any]
    status: str
    reason: str | None = None


@dataclass
class Money:
    bills: dict[str, Bill] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)  # charge id -> payment
    delivered: dict[str, Delivered] = field(default_factory=dict)  # event id -> what it must end as
    disputes: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # id -> (charge, amount, status)
    serial: int = 0
    touched: bool = False  # a Stripe or money rule ran since the invariant last looked

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}_oracle{self.serial:05d}"


def accounts(customer: str) -> dict[str, int]:
    """The customer's balances by account (grants summed), in whatever currency they are kept."""
    from neruba.dal.ledger import LedgerRepository
    from neruba.settings import get_settings

    found: dict[str, int] = {}
    for balances in LedgerRepository(get_settings().ledger_table).balances(customer).values():
        for key, value in balances.items():
            account = key.split("#")[0]
            found[account] = found.get(account, 0) + value
    return found


def moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The accounts that changed, by how much."""
    names = set(before) | set(after)
    return {
        n: after.get(n, 0) - before.get(n, 0) for n in sorted(names) if after.get(n, 0) != before.get(n, 0)
    }


class PaymentRules:
    """Rules and invariants of Stripe payments, refunds and disputes (mixed into the Oracle)."""

    # provided by the Oracle
    api: h.Api
    w: Any

    def _step(self, name: str) -> None: ...  # pragma: no cover - the Oracle's

    def _check(self, name: str, ok: bool, message: str) -> None: ...  # pragma: no cover - the Oracle's

    # ------------------------------------------------------------ helpers
    def _open_invoices(self) -> list[dict[str, Any]]:
        """Every finalized invoice with something to collect, as the API lists them."""
        found = []
        for customer in sorted(self.w.customers):
            answer = self.api(
                "GET", "/v1/invoices", query={"customer_id": customer, "status": "finalized", "limit": "100"}
            )
            self._check("valid_input", answer.status == 200, f"invoices answered {answer.status}")
            found += [i for i in answer.body["data"] if int(i["total_minor"]) > 0]
        return sorted(found, key=lambda i: str(i["id"]))

    def _deliver(self, payload: dict[str, Any], status: str, reason: str | None = None) -> None:
        """Post a correctly signed event, process the queue, and hold the stored event to ``status``."""
        raw, signature = h.signed(payload)
        answer = self.api.webhook(raw, signature)
        self.w.money.touched = True
        self._check(
            "webhook_accepts",
            answer.status == 200 and answer.body.get("duplicate") is False,
            f"a signed new event answered {answer.status} {answer.body}",
        )
        self.w.money.delivered[payload["id"]] = Delivered(payload, status, reason)
        h.stripe_work()
        self._event_ends(payload["id"])

    def _event_ends(self, event_id: str) -> None:
        want = self.w.money.delivered[event_id]
        answer = self.api("GET", f"/admin/stripe-events/{event_id}", scopes="admin")
        self._check("event_recorded", answer.status == 200, f"{event_id}: {answer.status} {answer.body}")
        stored = answer.body
        self._check(
            "event_outcome",
            stored.get("status") == want.status
            and (want.reason is None or str(stored.get("error") or "").startswith(want.reason)),
            f"{event_id} ({want.payload['type']}) ended {stored.get('status')} ({stored.get('error')}), "
            f"the model says {want.status} {want.reason or ''}",
        )

    def _paid_event(self, theirs: dict[str, Any], cumulative: int, kind: str, charge: str) -> dict[str, Any]:
        """Stripe's event for a payment of the invoice sync-out created (``amount_paid`` is a running
        total)."""
        total = int(theirs["total"])
        obj = {
            **theirs,
            "status": "paid" if cumulative >= total else "open",
            "amount_due": total,
            "amount_paid": cumulative,
            "amount_remaining": max(0, total - cumulative),
            "charge": charge,
            "payment_intent": f"pi_{charge}",
        }
        return {
            "id": self.w.money.next_id("evt"),
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "livemode": False,
            "type": kind,
            "data": {"object": obj},
        }

    def _bill_matches(self, invoice_id: str) -> None:
        bill = self.w.money.bills[invoice_id]
        answer = self.api("GET", f"/v1/invoices/{invoice_id}")
        self._check("valid_input", answer.status == 200, f"invoice {invoice_id}: {answer.status}")
        doc = answer.body
        paid, remaining = int(doc.get("amount_paid_minor") or 0), int(doc.get("amount_remaining_minor") or 0)
        self._check(
            "paid_within_total",
            0 <= paid <= int(doc["total_minor"]),
            f"{invoice_id}: paid {paid} of {doc['total_minor']}",
        )
        self._check(
            "invoice_status",
            (doc["status"], paid, remaining) == (bill.status, bill.paid, bill.total - bill.paid),
            f"{invoice_id}: {doc['status']} paid {paid} remaining {remaining}; the model says "
            f"{bill.status} paid {bill.paid} remaining {bill.total - bill.paid}",
        )

    # ------------------------------------------------------------ rules
    @precondition(lambda self: bool(self.w.customers))
    @rule(data=st.data(), action=st.sampled_from(ACTIONS))
    def stripe(self, data: st.DataObject, action: str) -> None:
        """One Stripe or money action (one rule, so that the others keep their share of the steps; an
        action that needs what does not exist yet falls back to the one that makes it)."""
        money = self.w.money
        if action == "close_dispute" and not money.disputes:
            action = "take_back"
        if action == "take_back" and not money.payments:
            action = "pay"
        if action == "replay" and not money.delivered:
            action = "bad_event"
        if action == "pay" and not self.w.invoices:
            action = "bad_event"  # nothing billed yet: only events naming what we do not have
        if action == "pay":
            how = data.draw(st.sampled_from(["full", "full", "part", "one", "over"]), label="how")
            kind = data.draw(st.sampled_from(["invoice.paid", "invoice.payment_succeeded"]), label="kind")
            self.pay(data, how, kind)
        elif action == "replay":
            self.replay(
                data, data.draw(st.sampled_from(["redeliver", "same_charge", "operator"]), label="how")
            )
        elif action == "bad_event":
            self.bad_event(data, data.draw(st.sampled_from(BAD_EVENTS), label="how"))
        elif action == "take_back":
            self.take_back(
                data,
                data.draw(st.sampled_from(["refunds", "disputes"]), label="action"),
                data.draw(st.sampled_from(["one", "all", "beyond", "half"]), label="size"),
                data.draw(st.sampled_from(["payment_id", "invoice_id"]), label="by"),
            )
        else:
            self.close_dispute(data, data.draw(st.sampled_from(["won", "lost"]), label="outcome"))

    def pay(self, data: st.DataObject, how: str, kind: str) -> None:
        """Stripe collects an invoice, in full or in part (or reports more than it asks: parked)."""
        self._step("stripe_pay")
        self.w.money.touched = True
        candidates = self._open_invoices()
        if not candidates:
            return
        doc = data.draw(st.sampled_from(candidates))
        invoice_id, customer, total = doc["id"], doc["customer_id"], int(doc["total_minor"])
        bill = self.w.money.bills.setdefault(invoice_id, Bill(customer, total))
        self._check(
            "invoice_status",
            bill.status == "finalized" and bill.total == total,
            f"{invoice_id} is listed finalized with {total}; the model has {bill}",
        )
        h.stripe_sync()
        theirs = h.stripe_invoice(invoice_id)
        self._check(
            "synced",
            theirs is not None and int(theirs["total"]) == total and theirs["status"] == "open",
            f"finalized {invoice_id} ({total}) is in Stripe as {theirs}",
        )
        assert theirs is not None
        remaining = total - bill.paid
        step = {"full": remaining, "part": max(1, remaining // 2), "one": 1, "over": remaining + 1}[how]
        charge = self.w.money.next_id("ch")
        payload = self._paid_event(theirs, bill.paid + step, kind, charge)
        before = accounts(customer)
        if how == "over":
            self._deliver(payload, "parked", "overpayment")
            self._check("parked_moves_nothing", moved(before, accounts(customer)) == {}, "overpayment posted")
        else:
            self._deliver(payload, "processed")
            bill.paid += step
            bill.payments.append(charge)
            self.w.money.payments[charge] = Payment(customer, invoice_id, step)
            want = {"cash": step, "receivable": -step}
            got = moved(before, accounts(customer))
            self._check("payment_posted", got == want, f"payment of {step} moved {got}, not {want}")
        self._bill_matches(invoice_id)

    def replay(self, data: st.DataObject, how: str) -> None:
        """The same event again, another event for the same charge, or an operator's replay: no double
        effect (docs/stripe.md: effects are keyed by the Stripe object)."""
        self._step("stripe_replay")
        self.w.money.touched = True
        event_id = data.draw(st.sampled_from(sorted(self.w.money.delivered)))
        first = self.w.money.delivered[event_id]
        obj = first.payload["data"]["object"]
        customer = obj["metadata"]["neruba_customer_id"]
        before = accounts(customer) if customer in self.w.customers else {}
        if how == "redeliver":
            raw, signature = h.signed(first.payload)
            answer = self.api.webhook(raw, signature)
            self._check(
                "webhook_duplicate",
                answer.status == 200 and answer.body.get("duplicate") is True,
                f"a redelivered event answered {answer.status} {answer.body}",
            )
            h.stripe_work()
            self._event_ends(event_id)
        elif how == "same_charge":
            other = "invoice.payment_succeeded" if first.payload["type"] == "invoice.paid" else "invoice.paid"
            payload = {**first.payload, "id": self.w.money.next_id("evt"), "type": other}
            self._deliver(payload, first.status, first.reason)
        else:
            answer = self.api(
                "POST",
                f"/admin/stripe-events/{event_id}/replay",
                {"reason": "oracle replay"},
                headers={"Idempotency-Key": self.w.money.next_id("rp")},
                scopes="admin",
            )
            self._check(
                "operator_replay",
                answer.status == 200 and answer.body.get("status") == first.status,
                f"replay of {event_id} ({first.status}) answered {answer.status} {answer.body}",
            )
        if customer in self.w.customers:
            got = moved(before, accounts(customer))
            self._check("no_double_effect", got == {}, f"{how} of {event_id} moved {got}")

    def bad_event(self, data: st.DataObject, how: str) -> None:
        """A payment event that does not verify, or that verifies but names what we do not have."""
        if how in ("unknown_invoice", "other_customer"):
            self._misdirected(data, how)
        else:
            self._forged(data, how)

    def _some_invoice(self, data: st.DataObject) -> tuple[str, str]:
        """An invoice and its customer; before any bill, an id we do not have and a known customer."""
        if not self.w.invoices:
            return UNKNOWN_INVOICE, data.draw(st.sampled_from(sorted(self.w.customers)), label="customer")
        invoice_id = data.draw(st.sampled_from(sorted(self.w.invoices)), label="invoice")
        return invoice_id, str(self.w.invoices[invoice_id]["customer"])

    def _forged(self, data: st.DataObject, how: str) -> None:
        """A payment event that does not verify: 400 invalid_signature, nothing stored or moved."""
        self._step("stripe_forge")
        invoice_id, customer = self._some_invoice(data)
        theirs = {
            "id": "in_stripe_forged",
            "object": "invoice",
            "customer": "cus_forged",
            "currency": "usd",
            "total": 1000,
            "metadata": {"neruba_invoice_id": invoice_id, "neruba_customer_id": customer},
        }
        payload = self._paid_event(theirs, 1000, "invoice.paid", self.w.money.next_id("ch"))
        now = int(time.time())
        raw, signature = h.signed(
            payload, secret="whsec_someone_else" if how == "wrong_secret" else h.STRIPE_SECRET
        )
        if how == "tampered":
            raw = raw.replace(b'"amount_paid": 1000', b'"amount_paid": 1001')
        elif how in ("stale", "future"):
            raw, signature = h.signed(payload, at=now - 400 if how == "stale" else now + 400)
        elif how == "garbage":
            signature = "t=abc,v1=0000"
        before = accounts(customer) if customer in self.w.customers else {}
        answer = self.api.webhook(raw, None if how == "missing" else signature)
        self._check(
            "forged_refused",
            answer.status == 400 and answer.code == "invalid_signature",
            f"{how} signature answered {answer.status} {answer.body}",
        )
        stored = self.api("GET", f"/admin/stripe-events/{payload['id']}", scopes="admin")
        self._check("forged_not_stored", stored.status == 404, f"forged event stored: {stored.body}")
        h.stripe_work()
        if customer in self.w.customers:
            got = moved(before, accounts(customer))
            self._check("forged_moves_nothing", got == {}, f"a forged event moved {got}")

    def _misdirected(self, data: st.DataObject, how: str) -> None:
        """A signed payment event naming an invoice we do not have, or another customer: parked with its
        reason, never applied, never lost (docs/stripe.md, "Parked")."""
        self._step("stripe_misdirected")
        invoice_id, owner = self._some_invoice(data)
        if how == "unknown_invoice" or invoice_id == UNKNOWN_INVOICE:
            target, customer, reason = UNKNOWN_INVOICE, owner, "invoice_not_found"
        else:
            others = sorted(c for c in self.w.customers if c != owner) or ["ghost"]
            target, customer, reason = invoice_id, data.draw(st.sampled_from(others)), "customer_mismatch"
        obj = {
            "id": "in_stripe_elsewhere",
            "object": "invoice",
            "customer": "cus_elsewhere",
            "currency": "usd",
            "total": 500,
            "metadata": {"neruba_invoice_id": target, "neruba_customer_id": customer},
        }
        payload = self._paid_event(obj, 500, "invoice.paid", self.w.money.next_id("ch"))
        named = sorted({owner, customer} & self.w.customers)
        before = {c: accounts(c) for c in named}
        self._deliver(payload, "parked", reason)
        after = {c: accounts(c) for c in named}
        self._check("parked_moves_nothing", before == after, f"a {how} event moved money")
        listed = self.api(
            "GET", "/admin/stripe-events", query={"status": "parked", "limit": "100"}, scopes="admin"
        )
        ids = {e["id"] for e in listed.body.get("data", [])} if listed.ok() else set()
        self._check(
            "parked_listed", payload["id"] in ids, f"parked {payload['id']} not listed: {listed.body}"
        )

    def take_back(self, data: st.DataObject, action: str, size: str, by: str) -> None:
        """An operator's refund or dispute of a payment received, within or beyond what is refundable."""
        self._step("take_back")
        self.w.money.touched = True
        charge = data.draw(st.sampled_from(sorted(self.w.money.payments)))
        payment = self.w.money.payments[charge]
        bill = self.w.money.bills[payment.invoice]
        amount = {
            "one": 1,
            "all": payment.refundable,
            "half": payment.refundable // 2,
            "beyond": payment.refundable + 1,
        }[size]
        amount = max(amount, 1)
        body: dict[str, Any] = {
            "amount_minor": amount,
            "reason": "oracle",
            by: charge if by == "payment_id" else payment.invoice,
        }
        before = accounts(payment.customer)
        answer = self.api(
            "POST",
            f"/admin/customers/{payment.customer}/{action}",
            body,
            headers={"Idempotency-Key": self.w.money.next_id("tb")},
        )
        kind = "refund" if action == "refunds" else "dispute"
        if by == "invoice_id" and bill.status != "paid":
            want, code = 409, "invoice_not_paid"
        elif by == "invoice_id" and len(bill.payments) > 1:
            want, code = 400, "payment_id_required"
        elif amount > payment.refundable:
            want, code = 409, f"{kind}_exceeds_refundable"
        else:
            want, code = 201, None
        self._check(
            "take_back_answer",
            answer.status == want and answer.code == code,
            f"{kind} of {amount} of {charge} (refundable {payment.refundable}, by {by}, invoice "
            f"{bill.status} with {len(bill.payments)} payments) answered {answer.status} {answer.body}, "
            f"not {want} {code}",
        )
        got = moved(before, accounts(payment.customer))
        if want != 201:
            self._check("no_partial_write", got == {}, f"a refused {kind} moved {got}")
            return
        if kind == "refund":
            payment.refunded += amount
            expected = {"cash": -amount, "refunds": amount}
        else:
            payment.disputed += amount
            dispute_id = str(answer.body.get("dispute_id") or answer.body.get("id"))
            self.w.money.disputes[dispute_id] = (charge, amount, "open")
            expected = {"cash": -amount, "disputes": amount}
        self._check("take_back_posted", got == expected, f"{kind} of {amount} moved {got}, not {expected}")
        self._bill_matches(payment.invoice)

    def close_dispute(self, data: st.DataObject, outcome: str) -> None:
        """A dispute closes: won returns the funds (refundable again), lost writes them off; closing a
        closed dispute with another outcome is 409 dispute_closed."""
        self._step("close_dispute")
        self.w.money.touched = True
        dispute_id = data.draw(st.sampled_from(sorted(self.w.money.disputes)))
        charge, amount, status = self.w.money.disputes[dispute_id]
        payment = self.w.money.payments[charge]
        before = accounts(payment.customer)
        answer = self.api(
            "POST",
            f"/admin/disputes/{dispute_id}/close",
            {"outcome": outcome, "reason": "oracle"},
            headers={"Idempotency-Key": self.w.money.next_id("dc")},
        )
        got = moved(before, accounts(payment.customer))
        if status != "open":
            same = status == outcome
            self._check(
                "dispute_closes_once",
                (answer.ok() if same else answer.status == 409 and answer.code == "dispute_closed")
                and got == {},
                f"closing a {status} dispute as {outcome} answered {answer.status} {answer.body}, "
                f"moved {got}",
            )
            return
        self._check(
            "valid_input", answer.ok(), f"closing {dispute_id} answered {answer.status} {answer.body}"
        )
        self.w.money.disputes[dispute_id] = (charge, amount, outcome)
        if outcome == "won":
            payment.disputed -= amount
            expected = {"cash": amount, "disputes": -amount}
        else:
            expected = {"dispute_losses": amount, "disputes": -amount}
        self._check("dispute_posted", got == expected, f"dispute {outcome} moved {got}, not {expected}")

    # ------------------------------------------------------------ invariants
    @invariant()
    def collections_as_the_model_says(self) -> None:
        """Every invoice the model collected on has its status, paid and remaining amounts; every verified
        event ended in the status the model gives it (none left received, failed or deferred); the Stripe
        queues' DLQs are empty."""
        money = self.w.money
        if not money.touched:  # nothing can have moved: only these rules send events or move money
            return
        money.touched = False
        for invoice_id in sorted(money.bills):
            self._bill_matches(invoice_id)
        answer = self.api("GET", "/admin/stripe-events", query={"limit": "100"}, scopes="admin")
        self._check("valid_input", answer.status == 200, f"stripe events answered {answer.status}")
        stored = {e["id"]: e["status"] for e in answer.body["data"]}
        want = {k: v.status for k, v in money.delivered.items()}
        self._check("events_end_recorded", stored == want, f"stored events {stored}, the model {want}")
        for dlq in ("StripeEventsDLQ", "StripeSyncDLQ"):
            left = h.dlq_messages(dlq)
            self._check("stripe_dlq_empty", not left, f"{dlq} holds {[m['Body'] for m in left]}")
