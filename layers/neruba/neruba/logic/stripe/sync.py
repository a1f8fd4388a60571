"""Pushing a finalized invoice to Stripe: customer, draft invoice, one invoice item per line, finalize.

Each step stores what it got (Stripe ids) in the invoice's sync record (``invoice.stripe``) before the next
one starts, so a retry resumes where the last attempt stopped. Each create call carries a Stripe
idempotency key derived from our ids:

=====================  ==========================================
customer               ``neruba-customer-{customer_id}``
invoice                ``neruba-{invoice_id}-invoice``
one invoice item       ``neruba-{invoice_id}-item-{line_id}``
credits applied        ``neruba-{invoice_id}-item-credits``
exclusive tax          ``neruba-{invoice_id}-item-tax``
finalize               ``neruba-{invoice_id}-finalize``
=====================  ==========================================

An invoice whose tax is delegated to Stripe Tax (``tax_provider: stripe_tax``, docs/billing.md, "Tax
delegated to Stripe Tax") is created with ``automatic_tax[enabled]=true`` and carries no tax item of ours;
its finalized total is compared with ours before tax, and Stripe's tax is kept in the sync record
(``tax``) until a webhook records it on the invoice (``logic.stripe.stripe_tax``). Stripe refusing
to compute it (``customer_tax_location_invalid``) is a failed attempt with ``last_error``
``stripe_tax_location_invalid``: retried, then parked in StripeSyncDLQ, never a silent loss.

A retry with the same key returns Stripe's first answer, so a call whose response was lost never creates
a second object. Stripe (API v1) also saves a 500 under its key; after a 5xx the step's key gets a suffix
``-r{n}`` (counted in the sync record) and, before creating again, the step looks the object up by our
metadata (Stripe list endpoints are consistent), so the object is neither lost nor created twice. Keys
expire after 24 hours at Stripe; the stored ids and the metadata look-ups cover retries after that.

Example:
    >>> idempotency_key("in_1", "item", "usage:api_calls:-:0")
    'neruba-in_1-item-usage:api_calls:-:0'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from neruba.dal.stripe_events import StripeEventsRepository
from neruba.logic.stripe.effects import InvoiceSource
from neruba.logic.stripe.stripe_tax import (
    TAX_REFUSALS,
    delegated,
    our_pre_tax,
    stripe_pre_tax,
    stripe_tax_of,
)
from neruba.timefmt import ts_seconds

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice

SYNCABLE = ("finalized", "paid", "payment_failed")
T = TypeVar("T")


class SyncError(RuntimeError):
    """A sync attempt failed; the message is retried (and lands in StripeSyncDLQ after the last try)."""


class SyncMismatchError(SyncError):
    """Stripe's finalized total differs from ours: retrying cannot fix it, an operator must look."""


def idempotency_key(invoice_id: str, step: str, part: str | None = None, retry: int = 0) -> str:
    """The Stripe idempotency key of one step (at most 255 characters; long line ids are hashed)."""
    key = f"neruba-{invoice_id}-{step}" + (f"-{part}" if part else "") + (f"-r{retry}" if retry else "")
    if len(key) > 255:
        key = f"neruba-{invoice_id}-{step}-h{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def _plain(obj: Any) -> dict[str, Any]:
    """A stripe object (or a dict) as a plain dict."""
    to_dict = getattr(obj, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else dict(obj)


def _listed(page: Any) -> list[dict[str, Any]]:
    return [_plain(found) for found in (getattr(page, "data", None) or [])]


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "http_status", None)
    return int(status) if isinstance(status, int) else None


class InvoiceSync:
    """One invoice's push to Stripe through a ``stripe.StripeClient``."""

    def __init__(
        self, client: Any, invoices: InvoiceSource, repo: StripeEventsRepository, now: datetime | None = None
    ) -> None:
        self.client = client
        self.invoices = invoices
        self.repo = repo
        self.now = now or datetime.now(UTC)

    def run(self, invoice_id: str) -> dict[str, Any]:
        """Sync one invoice; returns its sync record. Raises SyncError (after recording it) on failure."""
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise SyncError(f"invoice {invoice_id} not found")
        sync: dict[str, Any] = dict(invoice.stripe or {})
        if invoice.sync_status == "synced":
            return sync
        if invoice.status not in SYNCABLE:
            sync.update(status="skipped", last_error=f"invoice is {invoice.status}")
            self._save(invoice_id, sync)
            return sync
        failing = sync.get("status") == "failed"  # a stripe_sync.failed event was sent for this streak
        sync["attempts"] = int(sync.get("attempts") or 0) + 1
        sync.setdefault("items", {})
        sync.setdefault("retries", {})
        sync["status"] = "in_progress"
        try:
            self._steps(invoice, sync)
        except SyncMismatchError as exc:
            sync.update(status="mismatch", last_error=str(exc))
            self._save(invoice_id, sync)
            raise
        except Exception as exc:
            sync.update(status="failed", last_error=f"{type(exc).__name__}: {exc}"[:500])
            refused = getattr(exc, "code", None) in TAX_REFUSALS  # Stripe Tax cannot place the customer
            if refused:
                said = getattr(exc, "user_message", None) or str(exc)
                sync["last_error"] = f"stripe_tax_location_invalid: {said}"[:500]
            if (_status(exc) or 0) >= 500 or refused:  # the next attempt looks up, then uses a new key
                step = sync.get("step") or "unknown"
                sync["retries"][step] = int(sync["retries"].get(step, 0)) + 1
            self._save(invoice_id, sync, [] if failing else self._failed_event(invoice, sync))
            raise SyncError(sync["last_error"]) from exc
        sync.update(status="synced", last_error=None, synced_at=ts_seconds(self.now))
        sync.pop("step", None)
        self._save(invoice_id, sync)
        again = self.invoices.get(invoice_id)
        if again is not None and again.status == "void":  # voided while this sync was under way
            from neruba.logic.stripe.void_sync import VoidSync

            VoidSync(self.client, self.invoices).run(invoice_id)
        return sync

    def fail(self, invoice_id: str, error: str) -> dict[str, Any]:
        """Record a failed attempt that could not start (e.g. ``stripe_not_configured``) and raise
        SyncError, so the message is retried and then dead-lettered; never a silent skip."""
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise SyncError(f"invoice {invoice_id} not found")
        sync: dict[str, Any] = dict(invoice.stripe or {})
        if invoice.sync_status == "synced":
            return sync
        failing = sync.get("status") == "failed"
        sync["attempts"] = int(sync.get("attempts") or 0) + 1
        sync.update(status="failed", last_error=error)
        self._save(invoice_id, sync, [] if failing else self._failed_event(invoice, sync))
        raise SyncError(error)

    def _save(self, invoice_id: str, sync: dict[str, Any], extra: Sequence[dict[str, Any]] = ()) -> None:
        sync["updated_at"] = ts_seconds(self.now)
        record = {k: v for k, v in sync.items()}
        if extra:
            self.invoices.set_sync(invoice_id, record, extra)
        else:
            self.invoices.set_sync(invoice_id, record)

    def _failed_event(self, invoice: Invoice, sync: dict[str, Any]) -> list[dict[str, Any]]:
        """The ``stripe_sync.failed`` outbox action, stored with the record of the attempt that failed first
        (the attempts after it, until one succeeds, fail without a new event: the message is retried, then
        parked in StripeSyncDLQ, and the record keeps the latest error)."""
        from neruba.logic.webhooks.outbox import event_action
        from neruba.timefmt import iso

        data = {
            "invoice_id": invoice.id,
            "customer_id": invoice.customer_id,
            "attempt": int(sync["attempts"]),
            "step": sync.get("step"),
            "error": sync.get("last_error") or "",
            "failed_at": iso(self.now),
        }
        return [event_action("stripe_sync.failed", invoice.customer_id, data, self.now)]

    def _step(self, sync: dict[str, Any], name: str) -> int:
        sync["step"] = name
        return int(sync["retries"].get(name, 0))

    def _steps(self, invoice: Invoice, sync: dict[str, Any]) -> None:
        invoice_id = invoice.id
        if not sync.get("customer_id"):
            sync["customer_id"] = self._customer(invoice, sync)
            self._save(invoice_id, sync)
        if not sync.get("invoice_id"):
            sync["invoice_id"] = self._draft(invoice, sync)
            self._save(invoice_id, sync)
        for line_id, amount, description in self._lines(invoice):
            if line_id in sync["items"]:
                continue
            sync["items"][line_id] = self._item(invoice, sync, line_id, amount, description)
            self._save(invoice_id, sync)
        if not sync.get("finalized"):
            finalized = self._finalize(invoice, sync)
            sync.update(finalized=True, number=finalized.get("number"), stripe_status=finalized.get("status"))
            total, ours = finalized.get("total"), invoice.total_minor
            if delegated(invoice):  # Stripe added its tax: compare before tax, keep what it computed
                tax = stripe_tax_of(finalized)
                sync["tax"] = tax.to_dict() if tax is not None else None
                total, ours = stripe_pre_tax(finalized, tax), our_pre_tax(invoice.document)
            if isinstance(total, int) and total != ours:
                raise SyncMismatchError(f"Stripe total {total} differs from ours {ours}")

    @staticmethod
    def _lines(invoice: Invoice) -> list[tuple[str, int, str]]:
        lines = [
            (line.line_id, line.amount_minor, str(line.description or line.line_id))
            for line in invoice.lines
            if line.amount_minor != 0
        ]
        credits = invoice.credits_applied_minor
        if credits:
            lines.append(("credits", -credits, "Credits applied"))
        tax = int(invoice.document.get("tax_minor") or 0)  # exclusive tax; discount lines are lines above
        if tax and not delegated(invoice):  # Stripe Tax adds its own (recorded here later as tax_minor)
            lines.append(("tax", tax, "Tax"))
        return lines

    def _create(self, call: Callable[..., T], params: dict[str, Any], key: str) -> T:
        return call(params=params, options={"idempotency_key": key})

    def _customer(self, invoice: Invoice, sync: dict[str, Any]) -> str:
        customer_id = invoice.customer_id
        retry = self._step(sync, "customer")
        catalog = self.invoices.customer(customer_id) or {}
        known = catalog.get("stripe_customer_id") or self.repo.stripe_customer(customer_id)
        if known:
            return str(known)
        params: dict[str, Any] = {"metadata": {"neruba_customer_id": customer_id}}
        location = invoice.document.get("tax_location") if delegated(invoice) else None
        if isinstance(location, dict) and location.get("country"):  # where Stripe Tax places the customer
            params["address"] = {k: v for k, v in location.items() if k in ("country", "state") and v}
        if catalog.get("name"):
            params["name"] = catalog["name"]
        if catalog.get("email"):
            params["email"] = catalog["email"]
        key = f"neruba-customer-{customer_id}" + (f"-r{retry}" if retry else "")
        created = _plain(self._create(self.client.v1.customers.create, params, key))
        self.repo.put_stripe_customer(customer_id, created["id"], self.now)
        return str(created["id"])

    def _draft(self, invoice: Invoice, sync: dict[str, Any]) -> str:
        retry = self._step(sync, "invoice")
        if retry:  # a 5xx may have created it: look it up by our metadata before creating
            listed = self.client.v1.invoices.list(params={"customer": sync["customer_id"], "limit": 100})
            for found in _listed(listed):
                if (found.get("metadata") or {}).get("neruba_invoice_id") == invoice.id:
                    return str(found["id"])
        params = {
            "customer": sync["customer_id"],
            "currency": invoice.currency.lower(),
            "auto_advance": False,
            "collection_method": "charge_automatically",
            "pending_invoice_items_behavior": "exclude",
            "description": f"Invoice {invoice.number or invoice.id}",
            "metadata": {
                "neruba_invoice_id": invoice.id,
                "neruba_customer_id": invoice.customer_id,
                "neruba_number": str(invoice.number or ""),
            },
        }
        if delegated(invoice):
            params["automatic_tax"] = {"enabled": True}
        created = self._create(
            self.client.v1.invoices.create, params, idempotency_key(invoice.id, "invoice", retry=retry)
        )
        return str(_plain(created)["id"])

    def _item(self, invoice: Invoice, sync: dict[str, Any], line_id: str, amount: int, text: str) -> str:
        retry = self._step(sync, f"item:{line_id}")
        if retry:
            listed = self.client.v1.invoice_items.list(params={"invoice": sync["invoice_id"], "limit": 100})
            for found in _listed(listed):
                if (found.get("metadata") or {}).get("neruba_line_id") == line_id:
                    return str(found["id"])
        params = {
            "customer": sync["customer_id"],
            "invoice": sync["invoice_id"],
            "amount": amount,
            "currency": invoice.currency.lower(),
            "description": text[:500],
            "metadata": {"neruba_invoice_id": invoice.id, "neruba_line_id": line_id[:500]},
        }
        key = idempotency_key(invoice.id, "item", line_id, retry)
        return str(_plain(self._create(self.client.v1.invoice_items.create, params, key))["id"])

    def _finalize(self, invoice: Invoice, sync: dict[str, Any]) -> dict[str, Any]:
        retry = self._step(sync, "finalize")
        if retry:  # a 5xx may have finalized it already
            current = _plain(self.client.v1.invoices.retrieve(sync["invoice_id"]))
            if current.get("status") != "draft":
                return current
        finalized = self.client.v1.invoices.finalize_invoice(
            sync["invoice_id"],
            params={"auto_advance": True},
            options={"idempotency_key": idempotency_key(invoice.id, "finalize", retry=retry)},
        )
        return _plain(finalized)


class StripeNotConfiguredError(SyncError):
    """No usable Stripe API key (parameter missing, malformed, or ``api_key`` empty as on the local stack)."""


NOT_CONFIGURED = "stripe_not_configured"


def is_loopback(address: str) -> bool:
    """Whether an http(s) address names this machine (localhost, 127.0.0.0/8 or ::1)."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address)
        host = parts.hostname or ""
    except ValueError:
        return False
    if parts.scheme not in ("http", "https"):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def stripe_client() -> Any:
    """A ``stripe.StripeClient`` with the configured API key. Network retries are left to the queue.

    ``NERUBA_STRIPE_API_BASE`` points the client at the local stack's Stripe emulation; it is honoured only
    for a loopback address, so a deployed function never sends its key anywhere but Stripe.

    Raises StripeNotConfiguredError when there is no API key.
    """
    import os

    import stripe

    from neruba.logic.stripe.secrets import StripeConfigError, load_config

    try:
        api_key = load_config().api_key
    except StripeConfigError as exc:
        raise StripeNotConfiguredError(NOT_CONFIGURED) from exc
    if not api_key:
        raise StripeNotConfiguredError(NOT_CONFIGURED)
    base = os.environ.get("NERUBA_STRIPE_API_BASE") or None
    if base and not is_loopback(base):
        from neruba.observability import logger

        logger.error("NERUBA_STRIPE_API_BASE ignored: not a loopback address", extra={"api_base": base})
        base = None
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": base} if base else None,
        max_network_retries=0,
    )


def sync_message(body: str, invoices: InvoiceSource, client: Any | None = None) -> str:
    """Handle one StripeSyncQueue message ``{"invoice_id": ...}`` with the invoices of ``invoices``
    (``neruba.bootstrap.invoice_source()``); returns the sync status.

    Raises (so the message is retried, then dead-lettered) on malformed messages and failed attempts; a
    total mismatch is recorded on the invoice and the message consumed (retrying cannot fix it).
    """
    from pydantic import ValidationError

    from neruba import bootstrap
    from neruba.logic.stripe.credit_note_sync import credit_note_id_of
    from neruba.models.stripe import SyncMessage
    from neruba.observability import logger, metrics

    credit_note_id = credit_note_id_of(body)
    if credit_note_id is not None:  # a credit note to push (logic.stripe.credit_note_sync)
        return _credit_note_message(credit_note_id, client)
    from neruba.logic.stripe.void_sync import void_invoice_id_of

    voided = void_invoice_id_of(body)
    if voided is not None:  # a voided invoice to take out of Stripe (logic.stripe.void_sync)
        return _void_message(voided, invoices, client)
    try:
        invoice_id = SyncMessage.model_validate_json(body).invoice_id
    except ValidationError as exc:
        logger.error("malformed stripe sync message", extra={"body_size": len(body)})
        metrics.add_metric(name="StripeSyncFailures", unit="Count", value=1)
        raise SyncError("malformed sync message") from exc
    logger.append_keys(invoice_id=invoice_id)
    sync = InvoiceSync(None, invoices, bootstrap.stripe_events())
    try:
        sync.client = client if client is not None else stripe_client()
    except StripeNotConfiguredError:
        logger.error("stripe is not configured: invoice not pushed", extra={"invoice_id": invoice_id})
        metrics.add_metric(name="StripeSyncFailures", unit="Count", value=1)
        sync.fail(invoice_id, NOT_CONFIGURED)  # raises after recording: retried, then StripeSyncDLQ
        return "synced"  # the invoice had already been synced before the key went missing
    try:
        record = sync.run(invoice_id)
    except SyncMismatchError as exc:
        logger.error("stripe invoice total mismatch", extra={"invoice_id": invoice_id, "error": str(exc)})
        metrics.add_metric(name="StripeSyncFailures", unit="Count", value=1)
        return "mismatch"
    except SyncError as exc:
        logger.warning("stripe sync attempt failed", extra={"invoice_id": invoice_id, "error": str(exc)})
        metrics.add_metric(name="StripeSyncFailures", unit="Count", value=1)
        raise
    if record.get("status") == "synced":
        logger.info("invoice synced to stripe", extra={"invoice_id": invoice_id})
        metrics.add_metric(name="StripeSyncSucceeded", unit="Count", value=1)
    return str(record.get("status"))


def _void_message(invoice_id: str, invoices: InvoiceSource, client: Any | None) -> str:
    """Take a voided invoice out of Stripe; raises SyncError (retried, then StripeSyncDLQ) when Stripe is
    not configured or a call fails. An invoice that never reached Stripe needs no client."""
    from neruba.logic.stripe.void_sync import VoidSync
    from neruba.observability import logger, metrics

    logger.append_keys(invoice_id=invoice_id)
    try:
        state = VoidSync(client, invoices, connect=stripe_client).run(invoice_id)
    except StripeNotConfiguredError as exc:
        metrics.add_metric(name="StripeSyncFailures", unit="Count", value=1)
        raise SyncError(str(exc)) from exc
    except Exception as exc:
        if _status(exc) is None and not type(exc).__module__.startswith("stripe"):
            raise
        metrics.add_metric(name="StripeSyncFailures", unit="Count", value=1)
        raise SyncError(f"void of {invoice_id}: {type(exc).__name__}") from exc
    logger.info("voided invoice taken out of stripe", extra={"status": state.get("status")})
    return str(state.get("status"))


def _credit_note_message(credit_note_id: str, client: Any | None) -> str:
    """Push one credit note; raises SyncError (the message is retried, then dead-lettered) when Stripe is
    not configured, the invoice is not in Stripe yet, or the call fails."""
    from neruba import bootstrap
    from neruba.logic.stripe.credit_note_sync import CreditNoteNotReadyError, sync_credit_note
    from neruba.observability import logger, metrics

    logger.append_keys(credit_note_id=credit_note_id)
    try:
        stripe = client if client is not None else stripe_client()
        state = sync_credit_note(
            stripe, bootstrap.billing().billing.credit_notes, bootstrap.invoices(), credit_note_id
        )
    except (StripeNotConfiguredError, CreditNoteNotReadyError) as exc:
        metrics.add_metric(name="StripeSyncFailures", unit="Count", value=1)
        logger.warning("credit note not pushed; the message is retried", extra={"reason": str(exc)})
        raise SyncError(str(exc)) from exc
    except Exception as exc:
        if _status(exc) is None and not type(exc).__module__.startswith("stripe"):
            raise
        metrics.add_metric(name="StripeSyncFailures", unit="Count", value=1)
        raise SyncError(f"credit note {credit_note_id}: {type(exc).__name__}") from exc
    logger.info("credit note synced to stripe", extra={"status": state.get("status")})
    return str(state.get("status"))
