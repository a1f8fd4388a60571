"""One-off charges: an operator adds a charge outside the plan (a setup fee, professional services).

Two modes (docs/billing.md, "One-off charges"):

- ``invoice_now``: ONE TransactWriteItems writes the charge (status ``invoiced``), an invoice of its own
  (kind ``one_off``, one line of kind ``one_off``, a draft due now), its ledger posting (guard
  ``invoice:{id}``), the ``invoice.created`` event, the audit record and the idempotency record; then the
  invoice is finalized (numbered in the gapless sequence, ``invoice.finalized``) and sent to Stripe sync
  as correction invoices are (``logic.billing.corrections.issue_now``).
- ``next_invoice``: the charge is stored ``pending``; the next window invoice of one of the customer's
  subscriptions in that currency carries it as its own ``one_off`` line. The pick-up
  (``logic.billing.one_off_lines.pick_up``) is an action of that invoice's own transaction, conditional
  on the charge still being pending: a worker killed before its commit leaves the charge pending
  (nothing was written), and a charge is carried by one invoice only. A pending charge can be voided;
  an invoiced one cannot.

Credits do not pay one-off charges: they are charged in full.

Example::

    create_charge(ctx, "acme", body, "key:k1", idempotency_key="fee-1")  # the stored charge
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, localcontext
from typing import TYPE_CHECKING, Any

from neruba import bootstrap
from neruba.dal.features import ONE_OFF
from neruba.dal.one_offs import STATUS_PENDING, OneOffCharge, OneOffRepository
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.domain.money import to_minor
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic import idempotency
from neruba.logic.billing.context import Billing, request_for
from neruba.logic.billing.document import invoice_document, invoice_event
from neruba.logic.billing.one_off_lines import KIND, charge_line
from neruba.models.billing import MAX_ONE_OFF_DESCRIPTION, MAX_ONE_OFF_MINOR
from neruba.timefmt import ts

if TYPE_CHECKING:
    from neruba.models.billing import OneOffChargeCreate, OneOffChargeVoid

CREATE_SCOPE = "one-off-charge"
VOID_SCOPE = "one-off-charge-void"


def charges(ctx: Billing) -> OneOffRepository:
    """The one-off charges, stored next to the billing state."""
    return ctx.billing.one_offs


def charge_amount(body: OneOffChargeCreate) -> int:
    """The charge in minor units: ``amount_minor``, or ``quantity`` x ``unit_price`` rounded half-up once
    (``domain.money.to_minor``, the one rounding rule). 400 when it is not positive or too large."""
    by_price = body.quantity is not None or body.unit_price is not None
    if (body.amount_minor is not None) == by_price or (by_price and None in (body.quantity, body.unit_price)):
        raise InvalidRequestError(
            "Give amount_minor, or quantity and unit_price (not both).",
            code="one_off_amount_required",
            param="amount_minor",
        )
    if body.amount_minor is not None:
        amount, param = body.amount_minor, "amount_minor"
    else:
        assert body.quantity is not None and body.unit_price is not None
        with localcontext(Context(prec=100)):
            amount, param = to_minor(body.quantity * body.unit_price, body.currency), "unit_price"
    if amount <= 0:
        raise InvalidRequestError(
            "A one-off charge must be a positive amount (use a credit grant or a balance adjustment to "
            "give money back).",
            code="amount_not_positive",
            param=param,
        )
    if amount > MAX_ONE_OFF_MINOR:
        raise InvalidRequestError(
            f"A one-off charge is at most {MAX_ONE_OFF_MINOR} minor units.",
            code="amount_too_large",
            param=param,
        )
    return amount


def _customer(ctx: Billing, customer_id: str) -> Any:
    customer = ctx.plans.get_customer(customer_id)
    if customer is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    return customer


def _has_billed_subscription(ctx: Billing, customer_id: str, currency: str) -> bool:
    """Whether a subscription of the customer in ``currency`` will bill another window."""
    return _billed_subscription(ctx, customer_id, currency) is not None


def _billed_subscription(ctx: Billing, customer_id: str, currency: str) -> str | None:
    """The first subscription of the customer in ``currency`` that will bill another window, if any."""
    for sub in ctx.plans.customer_subscriptions(customer_id):
        if sub.status not in ("active", "trialing") or sub.currency != currency:
            continue
        state = ctx.billing.state(sub.id)
        if state is None or state.status == "active":
            return str(sub.id)
    return None


def _check(ctx: Billing, customer_id: str, body: OneOffChargeCreate) -> tuple[Any, int, str]:
    customer = _customer(ctx, customer_id)
    description = body.description.strip()
    if not description:
        raise InvalidRequestError(
            "description must not be blank.", code="description_required", param="description"
        )
    if len(description) > MAX_ONE_OFF_DESCRIPTION:
        raise InvalidRequestError(
            f"description is at most {MAX_ONE_OFF_DESCRIPTION} characters.",
            code="description_too_long",
            param="description",
        )
    if body.currency != customer.currency:
        raise InvalidRequestError(
            f"The customer is billed in {customer.currency}; a one-off charge must be in that currency.",
            code="currency_mismatch",
            param="currency",
        )
    amount = charge_amount(body)
    if body.mode == "next_invoice" and not _has_billed_subscription(ctx, customer_id, body.currency):
        raise InvalidRequestError(
            "The customer has no active subscription whose next invoice could carry this charge; "
            "send mode invoice_now to invoice it at once.",
            code="no_active_subscription",
            param="mode",
        )
    return customer, amount, description


def create_charge(
    ctx: Billing,
    customer_id: str,
    body: OneOffChargeCreate,
    actor: str,
    idempotency_key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/customers/{id}/one-off-charges``: the stored charge (the same on a retry)."""
    from neruba.logic.billing.corrections import issue_now

    now = now or datetime.now(UTC)
    key = idempotency.require_key(idempotency_key)
    request = body.model_dump(mode="json")
    fingerprint = idempotency.fingerprint(request, customer_id)
    replayed = idempotency.replay(ctx.billing, CREATE_SCOPE, key, fingerprint)
    if replayed is not None:
        _finish(ctx, replayed, now)  # the first attempt may have stopped before finalizing
        return dict(replayed)
    _, amount, description = _check(ctx, customer_id, body)
    charge_id = "ooc_" + idempotency.digest({"customer_id": customer_id, "key": key}, 24)
    charge: dict[str, Any] = {
        "id": charge_id,
        "object": "one_off_charge",
        "customer_id": customer_id,
        "description": description,
        "amount_minor": amount,
        "quantity": str(body.quantity) if body.quantity is not None else None,
        "unit_price": str(body.unit_price) if body.unit_price is not None else None,
        "currency": body.currency,
        "mode": body.mode,
        "metadata": dict(body.metadata),
        "reason": body.reason,
        "ticket": body.ticket,
        "status": STATUS_PENDING,
        "invoice_id": None,
        "created_at": ts(now),
        "voided_at": None,
    }
    actions: list[dict[str, Any]] = []
    if body.mode == "invoice_now":
        invoice, actions = _invoice_now(ctx, charge, now)
        charge.update(status="invoiced", invoice_id=invoice["id"])
    actions.insert(0, charges(ctx).put_item(charge))
    actions.append(ctx.billing.features.customer_item(customer_id, ONE_OFF))  # windows read its charges
    audit = idempotency.audit_put(
        bootstrap.audit(),
        idempotency.Actor(actor, request_id),
        "one_off_charge.create",
        charge_id,
        customer_id=customer_id,
        reason=body.reason,
        ticket=body.ticket,
        at=now,
        after={"amount_minor": amount, "mode": body.mode, "invoice_id": charge["invoice_id"]},
        idempotency_key=key,
    )
    actions += idempotency.record_items(ctx.billing, audit, CREATE_SCOPE, key, fingerprint, charge)
    try:
        commit(Transaction(actions))
    except Cancelled as exc:
        again = idempotency.replay(ctx.billing, CREATE_SCOPE, key, fingerprint)
        if again is None:
            raise ConflictError("The charge changed meanwhile; try again.", code="one_off_conflict") from exc
        charge = dict(again)  # a concurrent attempt with the same key committed first
    if charge["invoice_id"]:
        issue_now(ctx, str(charge["invoice_id"]), now)
    return charge


def _finish(ctx: Billing, charge: dict[str, Any], now: datetime) -> None:
    """A retried ``invoice_now``: finalize and send its invoice if the first attempt stopped while it was
    a draft (a finalized invoice not sent yet is in the scheduler's sync index, which sends it)."""
    from neruba.logic.billing.corrections import issue_now

    invoice = ctx.invoices.get(str(charge["invoice_id"])) if charge.get("invoice_id") else None
    if invoice is not None and invoice.status == "draft":
        issue_now(ctx, invoice.id, now)


def _invoice_now(
    ctx: Billing, charge: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The one-off invoice of a charge (due for finalization now) and the actions writing it."""
    invoice_id = "in_" + idempotency.digest(f"one_off:{charge['id']}", 24)
    at = ts(now)
    customer_id, currency = str(charge["customer_id"]), str(charge["currency"])
    subscription_id = _billed_subscription(ctx, customer_id, currency)
    lines, extras, uses = ctx.standalone_extras(
        customer_id,
        subscription_id,
        [charge_line(charge)],
        currency,
        (at, at),
        invoice_id,
        ctx.current_period_start(subscription_id) if subscription_id else None,
    )  # the discounts of the period the subscription's next window invoice bills
    doc = invoice_document(
        invoice_id=invoice_id,
        customer_id=str(charge["customer_id"]),
        subscription_id=None,
        currency=str(charge["currency"]),
        kind=KIND,
        seq=0,
        details={"one_off_charge_id": charge["id"], **extras},
        period=(at, at),
        lines=lines,
        applications=[],
        created_at=at,
        finalize_at=at,
    )
    actions = [ctx.invoices.put_item(doc, now), invoice_event("invoice.created", doc, now), *uses]
    return doc, actions + ctx.invoice_posting_items(request_for(doc, now))


def list_charges(ctx: Billing, customer_id: str, status: str | None = None) -> dict[str, Any]:
    """``GET /admin/customers/{id}/one-off-charges``: every charge of the customer, oldest first."""
    _customer(ctx, customer_id)
    found = sorted(charges(ctx).charges(customer_id), key=lambda c: str(c.document["created_at"]))
    data = [c.document for c in found if status is None or c.status == status]
    return {"object": "list", "data": data, "has_more": False, "next_cursor": None}


def _refuse(charge: OneOffCharge) -> None:
    if charge.status == "invoiced":
        raise ConflictError(
            f"The charge is already on invoice {charge.invoice_id}; only a pending charge can be voided. "
            "Correct an invoiced charge with a credit note against that invoice.",
            code="one_off_charge_invoiced",
            param="charge_id",
        )
    if charge.status == "void":
        raise ConflictError("The charge is already void.", code="one_off_charge_void", param="charge_id")


def void_charge(
    ctx: Billing,
    customer_id: str,
    charge_id: str,
    body: OneOffChargeVoid,
    actor: str,
    idempotency_key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/customers/{id}/one-off-charges/{charge_id}/void``: void a pending charge."""
    now = now or datetime.now(UTC)
    key = idempotency.require_key(idempotency_key)
    fingerprint = idempotency.fingerprint(body.model_dump(mode="json"), f"{customer_id}/{charge_id}")
    replayed = idempotency.replay(ctx.billing, VOID_SCOPE, key, fingerprint)
    if replayed is not None:
        return dict(replayed)
    _customer(ctx, customer_id)
    repo = charges(ctx)
    charge = repo.get(customer_id, charge_id)
    if charge is None:
        raise NotFoundError(
            f"No one-off charge {charge_id!r}.", code="one_off_charge_not_found", param="charge_id"
        )
    _refuse(charge)
    result = {**charge.document, "status": "void", "voided_at": ts(now)}
    audit = idempotency.audit_put(
        bootstrap.audit(),
        idempotency.Actor(actor, request_id),
        "one_off_charge.void",
        charge_id,
        customer_id=customer_id,
        reason=body.reason,
        ticket=body.ticket,
        at=now,
        before={"status": charge.status},
        after={"status": "void"},
        idempotency_key=key,
    )
    actions = [repo.void_item(customer_id, charge_id, ts(now)), audit]
    actions += idempotency.record_items(ctx.billing, audit, VOID_SCOPE, key, fingerprint, result)[1:]
    try:
        commit(Transaction(actions))
    except Cancelled as exc:
        again = idempotency.replay(ctx.billing, VOID_SCOPE, key, fingerprint)
        if again is not None:
            return dict(again)
        latest = repo.get(customer_id, charge_id)
        if latest is not None:
            _refuse(latest)  # invoiced (or voided) meanwhile
        raise ConflictError("The charge changed meanwhile; try again.", code="one_off_conflict") from exc
    return result
