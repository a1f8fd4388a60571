"""Operator idempotency: the first answer of an action sent with an ``Idempotency-Key``, replayed.

The record (``IDEM#{scope}#{key}`` in the billing table, ``BillingRepository.idempotency_put_item``) holds
a fingerprint of the request and its first result; it is written in the same transaction as the action,
so a retry finds either nothing (the action did not happen) or the answer. The same key with another
request is 409 ``idempotency_conflict``. Used by billing runs, invoice reruns and subscription creation.

Example:
    >>> body = {"customer_id": "acme"}
    >>> fingerprint(body, "subscriptions") == fingerprint(dict(body), "subscriptions")
    True
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from neruba import jsonutil
from neruba.errors import ConflictError

if TYPE_CHECKING:
    from neruba.dal.billing import BillingRepository


def fingerprint(body: Any, target: str) -> str:
    """SHA-256 of the canonical JSON of a request body and what it acts on."""
    return hashlib.sha256(jsonutil.dumps({"target": target, "body": body}).encode()).hexdigest()


def replay(billing: BillingRepository, scope: str, key: str | None, request: str) -> Any | None:
    """The first result of ``key`` in ``scope`` (None when there is no key or no first result yet);
    409 ``idempotency_conflict`` when the key was used for another request (``request`` fingerprint)."""
    if not key:
        return None
    stored = billing.idempotent_result(scope, key)
    if stored is None:
        return None
    if stored["fingerprint"] != request:
        raise ConflictError(
            "This Idempotency-Key was used with another request.", code="idempotency_conflict"
        )
    return stored["result"]
