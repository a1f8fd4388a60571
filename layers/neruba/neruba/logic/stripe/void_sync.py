"""Taking a voided invoice out of Stripe (docs/billing.md, "Void and regenerate", Stripe).

A void (``logic.billing.void``) sends StripeSyncQueue the message ``{"void_invoice_id": ...}`` after its
transaction. The sync worker reads the Stripe invoice first and does what its Stripe status allows:

=================  ===================================================  ===================================
Stripe status      call                                                 Stripe idempotency key
=================  ===================================================  ===================================
``draft``          delete it (Stripe deletes drafts, never voids them)  (a DELETE needs none)
``open``,          void it                                              ``neruba-{invoice_id}-void``
``uncollectible``
``paid``           Stripe refuses to void a paid invoice: one Stripe    ``neruba-{invoice_id}-void-credit``
                   credit note of its total to the customer's Stripe
                   balance (``credit_amount``), which Stripe applies to
                   the customer's next Stripe invoice (the replacement);
                   on an automatic-tax invoice its line is the total
                   less Stripe's exclusive tax (Stripe adds that tax)
``void``, gone     nothing: done
=================  ===================================================  ===================================

Because each attempt starts from Stripe's own state, a lost answer or a redelivered message never voids
or credits twice; after a 5xx the key gets a suffix ``-r{n}`` (Stripe saves a 500 under its key), and
before a credit note is created the invoice's Stripe credit notes are listed for ours (metadata
``neruba_void_of``), so one is never created twice even after keys expire. What was done is stored in the
invoice's sync record (``stripe.void``: ``status`` ``voided`` / ``deleted`` / ``credited`` /
``not_in_stripe``, and ``credit_note_id``). An invoice that never reached Stripe (no Stripe invoice found
by its id or our metadata) is ``not_in_stripe``; an invoice sync that was under way when the void committed
finishes and then runs this once more (``logic.stripe.sync.InvoiceSync.run``), so the Stripe invoice it
made is taken out too.

Example:
    >>> void_invoice_id_of('{"void_invoice_id": "in_1"}')
    'in_1'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neruba.logic.stripe.effects import InvoiceSource

DONE = ("voided", "deleted", "credited")


def void_invoice_id_of(body: str) -> str | None:
    """The voided invoice a StripeSyncQueue message names, None for any other message."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    found = value.get("void_invoice_id") if isinstance(value, dict) else None
    return found if isinstance(found, str) and 0 < len(found) <= 128 else None


def void_message(invoice_id: str) -> str:
    return json.dumps({"void_invoice_id": invoice_id})


def _plain(obj: Any) -> dict[str, Any]:
    to_dict = getattr(obj, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else dict(obj)


def _http(exc: Exception) -> int:
    status = getattr(exc, "http_status", None)
    return int(status) if isinstance(status, int) else 0


def _added_tax(found: dict[str, Any]) -> int:
    """The tax Stripe Tax added on top of an automatic-tax invoice: Stripe adds the tax of the credited
    line to a credit note on such an invoice, so the line is the total before that tax."""
    if not (found.get("automatic_tax") or {}).get("enabled"):
        return 0
    from neruba.logic.stripe.stripe_tax import stripe_tax_of

    tax = stripe_tax_of(found)
    return tax.exclusive_minor if tax is not None else 0


def needs_stripe(record: dict[str, Any]) -> bool:
    """Whether the sync record says the invoice may be in Stripe and is not yet taken out."""
    state = record.get("void") or {}
    if state.get("status") in DONE:
        return False
    return bool(record.get("invoice_id") or record.get("customer_id"))


class VoidSync:
    """One voided invoice's Stripe invoice taken out, through a ``stripe.StripeClient``."""

    def __init__(
        self, client: Any | None, invoices: InvoiceSource, connect: Callable[[], Any] | None = None
    ) -> None:
        self._given = client
        self._connect = connect
        self.invoices = invoices

    @property
    def client(self) -> Any:
        """The Stripe client, made on first use (an invoice that never reached Stripe needs none)."""
        if self._given is None:
            assert self._connect is not None, "a client or a way to make one"
            self._given = self._connect()
        return self._given

    def run(self, invoice_id: str) -> dict[str, Any]:
        """Take it out (see the module docstring); returns the stored void state. Raises on a failed call
        (after recording the retry count): the message is retried, then dead-lettered."""
        invoice = self.invoices.get(invoice_id)
        if invoice is None or invoice.status != "void":
            return {"status": "not_void"}
        record = dict(invoice.stripe or {})
        state = dict(record.get("void") or {})
        if state.get("status") in DONE:
            return state
        if not needs_stripe(record):  # never reached Stripe: nothing to call
            state = {"status": "not_in_stripe"}
            self._save(invoice_id, record, state)
            return state
        try:
            state.update(self._take_out(invoice_id, record, state))
        except Exception as exc:
            if _http(exc) >= 500:
                state["retries"] = int(state.get("retries") or 0) + 1
                self._save(invoice_id, record, state)
            raise
        self._save(invoice_id, record, state)
        return state

    def _save(self, invoice_id: str, record: dict[str, Any], state: dict[str, Any]) -> None:
        self.invoices.set_sync(invoice_id, {**record, "void": state})

    def _key(self, invoice_id: str, step: str, state: dict[str, Any]) -> str:
        retry = int(state.get("retries") or 0)
        return f"neruba-{invoice_id}-{step}" + (f"-r{retry}" if retry else "")

    def _find(self, invoice_id: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """The Stripe invoice: by the stored id, else by our metadata among the customer's invoices."""
        theirs = record.get("invoice_id")
        if theirs:
            try:
                return _plain(self.client.v1.invoices.retrieve(str(theirs)))
            except Exception as exc:
                if _http(exc) == 404:
                    return None  # a deleted draft
                raise
        if not record.get("customer_id"):
            return None
        listed = self.client.v1.invoices.list(params={"customer": record["customer_id"], "limit": 100})
        for found in getattr(listed, "data", None) or []:
            plain = _plain(found)
            if (plain.get("metadata") or {}).get("neruba_invoice_id") == invoice_id:
                return plain
        return None

    def _take_out(self, invoice_id: str, record: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        found = self._find(invoice_id, record)
        if found is None:
            return {"status": "deleted" if record.get("invoice_id") else "not_in_stripe"}
        theirs, status = str(found["id"]), found.get("status")
        if status == "void":
            return {"status": "voided", "stripe_invoice_id": theirs}
        if status == "draft":
            try:
                self.client.v1.invoices.delete(theirs)
            except Exception as exc:
                if _http(exc) != 404:
                    raise
            return {"status": "deleted", "stripe_invoice_id": theirs}
        if status == "paid":
            return {"status": "credited", "stripe_invoice_id": theirs,
                    "credit_note_id": self._credit(invoice_id, found, state)}  # fmt: skip
        self.client.v1.invoices.void_invoice(
            theirs, options={"idempotency_key": self._key(invoice_id, "void", state)}
        )
        return {"status": "voided", "stripe_invoice_id": theirs}

    def _credit(self, invoice_id: str, found: dict[str, Any], state: dict[str, Any]) -> str:
        theirs = str(found["id"])
        listed = self.client.v1.credit_notes.list(params={"invoice": theirs, "limit": 100})
        for note in getattr(listed, "data", None) or []:
            plain = _plain(note)
            if (plain.get("metadata") or {}).get("neruba_void_of") == invoice_id:
                return str(plain["id"])
        total = int(found.get("amount_paid") or found.get("total") or 0)
        params = {
            "invoice": theirs,
            "lines": [{"type": "custom_line_item", "description": "Invoice voided", "quantity": 1,
                       "unit_amount": total - _added_tax(found)}],
            "credit_amount": total,
            "metadata": {"neruba_void_of": invoice_id},
        }  # fmt: skip
        created = self.client.v1.credit_notes.create(
            params=params, options={"idempotency_key": self._key(invoice_id, "void-credit", state)}
        )
        return str(_plain(created)["id"])
