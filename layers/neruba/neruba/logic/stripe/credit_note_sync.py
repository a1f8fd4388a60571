"""Pushing a credit note to Stripe as a Stripe credit note on the invoice's Stripe invoice.

A StripeSyncQueue message ``{"credit_note_id": ...}`` (sent after the credit note's transaction) creates
one Stripe credit note with one custom line per credited line, and the same split of the paid part
(``credit_amount``, ``refund_amount``, ``out_of_band_amount``; Stripe creates the refund for
``refund_amount``). The call carries the Stripe idempotency key ``neruba-{credit_note_id}-credit-note``,
and the Stripe id is stored on the credit note (``stripe``), so a retried message creates nothing twice.
The exclusive tax the note gives back (``tax_minor``) is one more custom line ``Tax``, as the invoice's
exclusive tax is one item of its Stripe invoice (``logic.stripe.sync``); inclusive tax is inside the line
amounts, as it is inside the invoice's items. A credit note whose invoice has not reached Stripe yet is
retried (the message fails and comes back) until the invoice's own sync has created it.

Stripe takes a note first off what its invoice still asks (``amount_remaining``) and wants the rest given
as ``credit_amount`` / ``refund_amount`` / ``out_of_band_amount``. A note that lowered what was due in
Neruba may reach a Stripe invoice the customer already paid in full (paid before the note reached
Stripe): the payment's event then books the part above what was due as the customer's credit balance
(``logic.stripe.checks``), so the sync sends the part Stripe's invoice no longer has remaining as
``credit_amount`` (``post_payment_split``), which credits the Stripe customer's balance by as much. Before
creating, the sync looks for a Stripe credit note carrying the note's id in its metadata, so a retry after
a lost answer (when the invoice's remaining amount, hence the split, has changed) never creates a second.

Example:
    >>> credit_note_params({"id": "cn_1", "invoice_id": "in_1", "memo": None, "lines": [
    ...     {"line_id": "a", "amount_minor": 300, "description": "API calls"}], "credit_amount_minor": 0,
    ...     "refund_amount_minor": 0, "out_of_band_amount_minor": 0}, "in_S")["lines"][0]["unit_amount"]
    300
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from neruba.logic.stripe import stripe_tax

if TYPE_CHECKING:
    from neruba.dal.credit_notes import CreditNotesRepository
    from neruba.dal.invoices import InvoicesRepository


class CreditNoteNotReadyError(RuntimeError):
    """The invoice has no Stripe invoice yet: the message is retried."""


def _tax_line(note: dict[str, Any]) -> list[dict[str, Any]]:
    tax = int(note.get("tax_minor") or 0)
    if not tax:
        return []
    return [{"type": "custom_line_item", "description": "Tax", "quantity": 1, "unit_amount": tax}]


def credit_note_params(
    note: dict[str, Any],
    stripe_invoice_id: str,
    stripe_computes_tax: bool = False,
    stripe_remaining: int | None = None,
) -> dict[str, Any]:
    """The Stripe ``POST /v1/credit_notes`` parameters of a credit note (no ``Tax`` line when Stripe
    computes the invoice's tax: Stripe adds the tax of the credited lines itself); ``stripe_remaining``:
    what Stripe's invoice still asks (see ``post_payment_split``)."""
    params: dict[str, Any] = {
        "invoice": stripe_invoice_id,
        "lines": [
            {
                "type": "custom_line_item",
                "description": str(line.get("description") or line["line_id"])[:500],
                "quantity": 1,
                "unit_amount": int(line["amount_minor"]),
            }
            for line in note["lines"]
            if int(line["amount_minor"])  # a line of nothing but tax (a grant's part): its Tax line
        ]
        + ([] if stripe_computes_tax else _tax_line(note)),
        "metadata": {"neruba_credit_note_id": note["id"], "neruba_invoice_id": note["invoice_id"]},
    }
    for theirs, amount in post_payment_split(note, stripe_remaining).items():
        if amount:
            params[theirs] = amount
    if note.get("memo"):
        params["memo"] = note["memo"]
    return params


def post_payment_split(note: dict[str, Any], stripe_remaining: int | None = None) -> dict[str, int]:
    """What Stripe must be told of the note's part after payment: the note's own credit, refund and
    out-of-band parts, plus, when Stripe's invoice asks less than the note's part before payment
    (``stripe_remaining``: paid in Stripe before the note reached it), the difference as ``credit_amount``
    (the customer's credit balance, as the ledger books that payment). ``None``: Stripe's invoice not read.

    Example:
        >>> note = {"amount_minor": 300, "pre_payment_amount_minor": 300, "credit_amount_minor": 0}
        >>> post_payment_split(note, 0)["credit_amount"], post_payment_split(note, 1000)["credit_amount"]
        (300, 0)
    """
    split = {
        theirs: int(note.get(ours) or 0)
        for ours, theirs in (
            ("credit_amount_minor", "credit_amount"),
            ("refund_amount_minor", "refund_amount"),
            ("out_of_band_amount_minor", "out_of_band_amount"),
        )
    }
    if stripe_remaining is not None:
        after_payment = max(int(note["amount_minor"]) - max(stripe_remaining, 0), 0)
        split["credit_amount"] += max(after_payment - sum(split.values()), 0)
    return split


def sync_credit_note(
    client: Any, notes: CreditNotesRepository, invoices: InvoicesRepository, credit_note_id: str
) -> dict[str, Any]:
    """Create the Stripe credit note once; returns the stored sync state."""
    note = notes.get(credit_note_id)
    if note is None:
        return {"status": "missing"}
    if (note.get("stripe") or {}).get("credit_note_id"):
        return dict(note["stripe"])
    invoice = invoices.get(str(note["invoice_id"]))
    if invoice is None or not invoice.stripe_invoice_id or invoice.sync_status != "synced":
        raise CreditNoteNotReadyError(f"invoice {note['invoice_id']} is not in Stripe yet")
    delegated = stripe_tax.delegated(invoice)
    created = _existing(client, invoice.stripe_invoice_id, credit_note_id)
    sent: dict[str, int] = {}
    if created is None:
        theirs = _plain(client.v1.invoices.retrieve(invoice.stripe_invoice_id))
        remaining = int(theirs.get("amount_remaining") or 0)
        params = credit_note_params(note, invoice.stripe_invoice_id, delegated, remaining)
        created = client.v1.credit_notes.create(
            params=params, options={"idempotency_key": f"neruba-{credit_note_id}-credit-note"}
        )
        extra = int(params.get("credit_amount") or 0) - int(note.get("credit_amount_minor") or 0)
        if extra:  # the part Stripe's invoice no longer asked: paid there before the note arrived
            sent = {"paid_before_credit_minor": extra}
    state: dict[str, Any] = {"credit_note_id": str(created["id"]), "status": "synced", **sent}
    if delegated:
        state.update(compare_tax(note, created))
    notes.set_stripe(credit_note_id, state)
    return state


def _existing(client: Any, stripe_invoice_id: str, credit_note_id: str) -> Any | None:
    """The Stripe credit note an earlier attempt created for this note (found by our metadata), if any."""
    listed = client.v1.credit_notes.list(params={"invoice": stripe_invoice_id, "limit": 100})
    for found in getattr(listed, "data", None) or []:
        plain = _plain(found)
        if (plain.get("metadata") or {}).get("neruba_credit_note_id") == credit_note_id:
            return found
    return None


def _plain(obj: Any) -> dict[str, Any]:
    to_dict = getattr(obj, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else dict(obj)


def compare_tax(note: dict[str, Any], created: Any) -> dict[str, Any]:
    """What Stripe's credit note of a delegated invoice credited against ours: its tax (``total_taxes`` or
    ``tax_amounts``) and its total. Equal: ``tax_minor`` (Stripe's) is kept beside ``synced``; different:
    ``status: mismatch`` with both sides, for an operator (docs/billing.md, "Credit notes of a delegated
    invoice")."""
    theirs = _plain(created)
    taxes: list[Any] = []
    for name in ("total_taxes", "tax_amounts"):  # the current field, then the older one
        found = theirs.get(name)
        if isinstance(found, list):
            taxes = found
            break
    stripe_tax_minor = sum(int(_plain(t).get("amount") or 0) for t in taxes)
    stripe_total = int(theirs.get("total") or theirs.get("amount") or 0)
    ours_tax = int(note.get("tax_minor") or 0) + int(note.get("tax_included_minor") or 0)
    ours_total = int(note["amount_minor"])
    said = {"tax_minor": stripe_tax_minor, "amount_minor": stripe_total}
    if (stripe_tax_minor, stripe_total) == (ours_tax, ours_total):
        return said
    error = (f"stripe_credit_note_mismatch: Stripe credited {stripe_total} with tax {stripe_tax_minor}, "
             f"Neruba {ours_total} with tax {ours_tax}")  # fmt: skip
    from neruba.observability import logger, metrics

    metrics.add_metric(name="StripeSyncFailures", unit="Count", value=1)
    logger.error("stripe credit note amounts differ", extra={"credit_note_id": note["id"], "error": error})
    return {**said, "status": "mismatch", "last_error": error}


def credit_note_id_of(body: str) -> str | None:
    """The credit note a StripeSyncQueue message names, None for an invoice message."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    found = value.get("credit_note_id") if isinstance(value, dict) else None
    return found if isinstance(found, str) and 0 < len(found) <= 128 else None
