"""Building and signing Stripe event payloads for tests (the shapes Stripe sends)."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

_ids = itertools.count(1)
SECRET = "whsec_test_current"
OLD_SECRET = "whsec_test_previous"


def sign(raw: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for ``raw`` made by the stripe library itself."""
    import stripe

    at = int(time.time()) if timestamp is None else timestamp
    return str(stripe.WebhookSignature.generate_signature_header(raw.decode("utf-8"), secret, timestamp=at))


def encode(event: dict[str, Any]) -> bytes:
    """Stripe's own formatting: pretty-printed JSON (so a re-serialised body differs byte for byte)."""
    return json.dumps(event, indent=2).encode("utf-8")


def event(
    kind: str, obj: dict[str, Any], event_id: str | None = None, created: int | None = None
) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_test_{next(_ids):06d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created or int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "type": kind,
        "data": {"object": obj},
    }


def invoice_paid(
    invoice_id: str = "in_ours_1",
    customer_id: str = "acme",
    amount: int = 5000,
    charge: str = "ch_1",
    **kw: Any,
) -> dict[str, Any]:
    return event(
        "invoice.paid",
        {
            "id": f"in_stripe_{invoice_id}",
            "object": "invoice",
            "currency": "usd",
            "amount_paid": amount,
            "amount_due": amount,
            "charge": charge,
            "payment_intent": f"pi_{charge}",
            "status": "paid",
            "metadata": {"neruba_invoice_id": invoice_id, "neruba_customer_id": customer_id},
        },
        **kw,
    )


def payment_failed(invoice_id: str = "in_ours_1", customer_id: str = "acme", **kw: Any) -> dict[str, Any]:
    return event(
        "invoice.payment_failed",
        {
            "id": f"in_stripe_{invoice_id}",
            "object": "invoice",
            "currency": "usd",
            "amount_paid": 0,
            "amount_due": 5000,
            "status": "open",
            "failure_reason": "card_declined",
            "metadata": {"neruba_invoice_id": invoice_id, "neruba_customer_id": customer_id},
        },
        **kw,
    )


def charge_refunded(
    charge: str = "ch_1", refunds: list[tuple[str, int]] = (("re_1", 1500),), **kw: Any
) -> dict[str, Any]:  # type: ignore[assignment]
    return event(
        "charge.refunded",
        {
            "id": charge,
            "object": "charge",
            "currency": "usd",
            "amount": 5000,
            "payment_intent": f"pi_{charge}",
            "amount_refunded": sum(a for _, a in refunds),
            "refunded": True,
            "refunds": {
                "object": "list",
                "data": [
                    {"id": r, "object": "refund", "amount": a, "status": "succeeded"} for r, a in refunds
                ],
            },
        },
        **kw,
    )


def dispute(
    kind: str,
    dispute_id: str = "dp_1",
    charge: str = "ch_1",
    amount: int = 5000,
    status: str = "needs_response",
    **kw: Any,
) -> dict[str, Any]:
    return event(
        f"charge.dispute.{kind}",
        {
            "id": dispute_id,
            "object": "dispute",
            "charge": charge,
            "payment_intent": f"pi_{charge}",
            "amount": amount,
            "currency": "usd",
            "status": status,
            "reason": "fraudulent",
        },
        **kw,
    )
