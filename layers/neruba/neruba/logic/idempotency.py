"""Operator actions, the one mechanism: the ``Idempotency-Key`` answer, the conflict, and the audit record.

Every operator action (billing runs, invoice reruns, subscriptions, the ledger's money actions, Stripe
event replays) follows the same rule:

- **Same key, same body: the same answer.** The request is reduced to a fingerprint (:func:`digest` of its
  canonical JSON); the first answer is stored with it under the key. A retry finds it and gets it back,
  writing nothing.
- **Same key, another body: 409** ``idempotency_conflict`` (:func:`check_same`, the one place that says so).
- **The audit record is written in the transaction of the change** (:func:`audit_put` builds its action;
  :func:`record_items` adds the idempotency record next to it), so a retry finds either nothing (the
  action did not happen) or the action, its audit record and its answer together. The audit record's id
  follows from the key, so a retried action cannot leave two.

Where the first answer is stored: the billing table's ``IDEM#{scope}#{key}`` record
(``BillingRepository.idempotency_put_item``: billing runs, invoice reruns, subscriptions); for the ledger's
money actions the posting's own idempotency guard (its metadata holds ``request_hash``); for Stripe replays
``STRIPEREPLAY#{key}`` in the events table.

Example:
    >>> body = {"customer_id": "acme"}
    >>> fingerprint(body, "subscriptions") == fingerprint(dict(body), "subscriptions")
    True
    >>> check_same(digest(body), digest({"customer_id": "other"}))
    Traceback (most recent call last):
    ...
    neruba.errors.ConflictError: This Idempotency-Key was used with another request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from neruba import jsonutil
from neruba.errors import ConflictError, InvalidRequestError

if TYPE_CHECKING:
    from neruba.dal.audit import AuditRepository
    from neruba.dal.billing import BillingRepository

__all__ = [
    "Actor",
    "Who",
    "audit_put",
    "check_same",
    "claim",
    "digest",
    "fingerprint",
    "record_items",
    "replay",
    "require_key",
]


def digest(value: Any, length: int = 64) -> str:
    """SHA-256 (hex, first ``length`` digits) of the canonical JSON of ``value``: a request's fingerprint."""
    return hashlib.sha256(jsonutil.dumps(value).encode()).hexdigest()[:length]


def fingerprint(body: Any, target: str) -> str:
    """The fingerprint of a request body and what it acts on."""
    return digest({"target": target, "body": body})


def require_key(key: str | None) -> str:
    """The ``Idempotency-Key`` of an action that cannot run without one (money actions): 400 when absent."""
    if not key:
        raise InvalidRequestError(
            "Send an Idempotency-Key header with money actions.",
            code="idempotency_key_required",
            param="Idempotency-Key",
        )
    return key


def check_same(stored: Any, request: Any) -> None:
    """409 ``idempotency_conflict`` when the key's first request (``stored``) is not this one."""
    if stored != request:
        raise ConflictError(
            "This Idempotency-Key was used with another request.", code="idempotency_conflict"
        )


def replay(billing: BillingRepository, scope: str, key: str | None, request: str) -> Any | None:
    """The first result of ``key`` in ``scope`` (None when there is no key or no first result yet);
    409 ``idempotency_conflict`` when the key was used for another request (``request`` fingerprint)."""
    if not key:
        return None
    stored = billing.idempotent_result(scope, key)
    if stored is None:
        return None
    check_same(stored.fingerprint, request)
    return stored.result


def claim(billing: BillingRepository, scope: str, key: str, request: str) -> None:
    """Tie ``key`` to this request (``request`` fingerprint) for an action whose answer is the state it
    moves rather than a stored answer (a backfill's commit or revert answers the backfill as it is now):
    the first request with the key records it, the same request again passes, and another request
    (another body, another backfill) is 409 ``idempotency_conflict`` like every operator action."""
    from neruba.dal.transaction import Cancelled, Transaction, commit

    if replay(billing, scope, key, request) is not None:
        return
    try:
        commit(Transaction([billing.idempotency_put_item(scope, key, request, {"claimed": True})]))
    except Cancelled:
        replay(billing, scope, key, request)  # another request took the key meanwhile: the same one?


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts (an API key's ``key:{id}``, or ``system`` for seeds and tools) and in which request."""

    actor: str = "system"
    request_id: str | None = None


class Who(Protocol):
    """Anything naming who acts and in which request (``Actor``, the ledger's ``Operator``)."""

    @property
    def actor(self) -> str: ...

    @property
    def request_id(self) -> str | None: ...


def audit_put(audit: AuditRepository, by: Who, action: str, target: str, **record: Any) -> dict[str, Any]:
    """The audit record of an operator action, as an action of the action's own transaction.

    ``record``: ``at`` (required), ``customer_id`` (``_global`` when the action concerns no one customer),
    ``reason``, ``ticket``, ``before``, ``after``, ``idempotency_key`` (see ``AuditRepository.record_item``).
    """
    from neruba.dal.audit import GLOBAL_AUDIT

    fields = {"reason": None, "ticket": None, "before": None, "after": None, **record}
    fields["customer_id"] = fields.get("customer_id") or GLOBAL_AUDIT
    return audit.record_item(actor=by.actor, request_id=by.request_id, action=action, target=target, **fields)


def record_items(
    billing: BillingRepository, audit: dict[str, Any], scope: str, key: str | None, request: str, result: Any
) -> list[dict[str, Any]]:
    """The audit action and, with a key, the record of the first answer: add both to the action's unit."""
    items = [audit]
    if key:
        items.append(billing.idempotency_put_item(scope, key, request, result))
    return items
