"""Auto top-up: after a window consumed credit, invoice the top-up the customer's rule asks for.

``logic.ledger.credits.check_auto_top_up`` decides (one stored request per crossing under the threshold,
the same ``request_id`` until credit is back over it). For a returned request this module writes, in ONE
TransactWriteItems:

- the ledger posting of a purchased grant funded by receivable (Dr ``receivable``, Cr
  ``prepaid_credit#{grant}``), guarded by its idempotency key ``topup:{request_id}``, and the grant;
- a draft invoice of kind ``topup`` (id ``in_`` + hash of ``topup:{request_id}``, one line of kind
  ``topup`` for the amount), put with ``attribute_not_exists(pk)`` and due for finalization like every
  draft, so it is numbered in the same gapless sequence and handed to Stripe sync.

The invoice carries no invoice posting of its own: the grant's posting already made the amount
receivable, so the books and the invoice agree (receivable = sum of the invoices' ``total_minor``).

Retries: a second call for the same request is cancelled by the posting's guard (and the invoice's
condition) and returns the stored invoice id; nothing new is written. A failure here never undoes the
window's invoice (that transaction has committed): it is logged with the ids and the stored request is
the retry point; the next check (the job's retry, the next window, :func:`complete_top_ups`) returns the
same request while credit stays under the threshold; :func:`complete_top_ups` writes any stored request
still without its invoice (for an operator or a sweep).

Example::

    invoice_id = auto_top_up(ctx, ledger, "acme", "USD", now)  # None when no top-up is due
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.logic.billing.document import invoice_document
from neruba.timefmt import ts

if TYPE_CHECKING:
    from neruba.dal.ledger import LedgerRepository
    from neruba.domain.credits import TopUpRequest
    from neruba.logic.billing.context import Billing

TOP_UP_ACTOR = "system:auto_top_up"


def top_up_invoice_id(request_id: str) -> str:
    """``in_`` + 24 hex digits of SHA-256 of ``topup:{request_id}``.

    Example:
        >>> top_up_invoice_id("tu_1") == top_up_invoice_id("tu_1") != top_up_invoice_id("tu_2")
        True
    """
    return "in_" + hashlib.sha256(f"topup:{request_id}".encode()).hexdigest()[:24]


def top_up_grant_key(request_id: str) -> str:
    """The idempotency key of the top-up's grant and posting: ``topup:{request_id}``."""
    return f"topup:{request_id}"


def top_up_invoice(
    request: TopUpRequest, grant_id: str, now: datetime, grace_end: datetime
) -> dict[str, Any]:
    """The draft invoice of a top-up request: one ``topup`` line, nothing credited, all of it due.

    Example:
        >>> doc = top_up_invoice(request, "cg_1", now, now)  # doctest: +SKIP
        >>> doc["kind"], doc["total_minor"], doc["lines"][0]["kind"]  # doctest: +SKIP
        ('topup', 5000, 'topup')
    """
    at = ts(request.requested_at)
    line: dict[str, Any] = {
        "line_id": f"topup:{request.request_id}",
        "kind": "topup",
        "description": "Prepaid credit top-up",
        "meter_code": None,
        "group": {},
        "quantity": 1,
        "unit_price": None,
        "tiers": [],
        "amount_minor": request.amount_minor,
        "period_start": at,
        "period_end": at,
        "plan_code": None,
        "plan_version": None,
        "source": {
            "top_up_request_id": request.request_id,
            "grant_id": grant_id,
            "available_minor": request.available_minor,
            "threshold_minor": request.threshold_minor,
        },
        "references": {"top_up_request_id": request.request_id, "grant_id": grant_id},
    }
    return invoice_document(
        invoice_id=top_up_invoice_id(request.request_id),
        customer_id=request.customer_id,
        subscription_id=None,
        currency=request.currency,
        kind="topup",
        seq=0,
        details={"top_up_request_id": request.request_id, "grant_id": grant_id},
        period=(at, at),
        lines=[line],
        applications=[],
        created_at=ts(now),
        finalize_at=ts(grace_end),
    )


def create_top_up(ctx: Billing, ledger: LedgerRepository, request: TopUpRequest, now: datetime) -> str:
    """Write the top-up invoice and its receivable-funded purchased grant in one transaction; returns the
    invoice id (the same on a retry, which writes nothing). The grant raises the balance: for a customer
    with balance alert levels it moves the balance version too (``logic.limits.balance``)."""
    from neruba.domain.credits import grant_id_for
    from neruba.logic.ledger.credits import create_grant
    from neruba.logic.limits.balance import customer_and_watch, raised_item

    key = top_up_grant_key(request.request_id)
    grant_id = grant_id_for(request.customer_id, key)
    doc = top_up_invoice(request, grant_id, now, now + ctx.grace)
    # the grant raises the balance: with levels it moves the balance version (known from the credit
    # application that caused the top-up, else read)
    watched = ctx.watched.pop(request.customer_id, None)
    if watched is None:
        watched = customer_and_watch(ctx.plans, request.customer_id)[1] is not None
    raised = [raised_item(ctx.plans.table_name, request.customer_id)] if watched else []
    create_grant(
        ledger,
        customer_id=request.customer_id,
        kind="purchased",
        amount_minor=request.amount_minor,
        currency=request.currency,
        idempotency_key=key,
        actor=TOP_UP_ACTOR,
        funding="receivable",
        source="grant",  # a grant posting; metadata names the top-up request and its invoice
        at=now,
        metadata={"top_up_request_id": request.request_id, "invoice_id": doc["id"]},
        extra_items=[ctx.invoices.put_item(doc, now + ctx.grace), *raised],
    )
    return str(doc["id"])


def auto_top_up(
    ctx: Billing, ledger: LedgerRepository, customer_id: str, currency: str, now: datetime
) -> str | None:
    """Check the customer's rule after credit was consumed; create the top-up if one is due.

    Never raises: the window that consumed the credit is already invoiced, so a failure is logged with
    its ids and left to the next check (the stored request is the retry point). Returns the top-up
    invoice id, or None when no top-up is due or it could not be written now.
    """
    from neruba.logic.ledger.credits import check_auto_top_up
    from neruba.observability import logger

    ids: dict[str, Any] = {"customer_id": customer_id, "currency": currency}
    try:
        request = check_auto_top_up(ledger, customer_id, currency, at=now)
        if request is None:
            return None
        ids["top_up_request_id"] = request.request_id
        invoice_id = create_top_up(ctx, ledger, request, now)
    except Exception:
        logger.exception("auto top-up not written; the next check retries it", extra=ids)
        return None
    logger.info("auto top-up invoiced", extra={**ids, "invoice_id": invoice_id})
    return invoice_id


def complete_top_ups(ctx: Billing, ledger: LedgerRepository, customer_id: str, now: datetime) -> list[str]:
    """Repair: write the top-up of every stored request of a customer that has no invoice yet (one that
    failed and was never retried because credit went back over the threshold by other means). Each write
    is idempotent by request id. Returns the invoice ids written.

    Example::

        complete_top_ups(ctx, ledger, "acme", now)  # ['in_...'] or []
    """
    requests = ledger.top_ups.requests(customer_id)
    missing = [r for r in requests if ctx.invoices.get(top_up_invoice_id(r.request_id)) is None]
    return [create_top_up(ctx, ledger, request, now) for request in missing]
