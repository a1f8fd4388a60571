"""Operator grants raising a metered entitlement's limit (admin
``POST /v1/customers/{id}/entitlements/{feature}/grants``; docs/limits.md, "Entitlement grants").

A grant needs an ``Idempotency-Key``. In ONE transaction (``logic.idempotency``): the customer's grants
with the new one (on condition that they are still what was read; expired grants are dropped then), the
audit record (``customer.entitlement_grant``) and the record of the answer under the key. The same key
with the same body answers the first grant again and writes nothing; with another body, 409
``idempotency_conflict``. The entitlement checks read the grants with the customer's settings (no extra
read).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from neruba import bootstrap
from neruba.dal.transaction import Cancelled, Transaction
from neruba.domain.entitlement_grants import Grant, parse, stored
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic.idempotency import Actor, audit_put, digest, fingerprint, record_items, replay, require_key
from neruba.logic.limits.entitlements import entitlement, settings_at
from neruba.models.limits import EntitlementGrantIn
from neruba.timefmt import iso_z

IDEMPOTENCY_SCOPE = "entitlement-grant"
ATTEMPTS = 5


def grant(
    customer_id: str,
    feature: str,
    body: EntitlementGrantIn,
    idempotency_key: str | None,
    by: Actor,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Raise ``feature``'s limit for the customer (see the module docstring); returns the grant with the
    entitlement as it stands after it."""
    now = now or datetime.now(UTC)
    key = require_key(idempotency_key)
    billing, limits = bootstrap.billing_records(), bootstrap.limits()
    request = fingerprint(body.model_dump(mode="json"), f"entitlement-grants:{customer_id}:{feature}")
    for _attempt in range(ATTEMPTS):
        first = replay(billing, IDEMPOTENCY_SCOPE, key, request)
        if first is not None:
            return dict(first)
        record, settings = settings_at(customer_id, now)
        found = settings.features.get(feature)
        if found is None:
            raise NotFoundError(
                f"Customer {customer_id!r} has no feature {feature!r}.",
                code="feature_not_found",
                param="feature",
            )
        if found.kind != "metered" or found.limit is None:
            raise InvalidRequestError(
                f"Feature {feature!r} is not metered: only a metered feature's limit can be raised.",
                code="feature_not_metered",
                param="feature",
            )
        expires_at = body.expires_at.astimezone(UTC) if body.expires_at else settings.period(now)[1]
        if expires_at <= now:
            raise InvalidRequestError(
                "'expires_at' must be after now.", code="invalid_expiry", param="expires_at"
            )
        new = Grant("egr_" + digest([customer_id, key], 24), feature, body.amount, now, expires_at)
        grants = [*parse(record.grants), new]
        answer = {
            "object": "entitlement_grant",
            "id": new.id,
            "customer_id": customer_id,
            "feature": feature,
            "amount": new.to_doc()["amount"],
            "starts_at": iso_z(now),
            "expires_at": iso_z(expires_at),
            "reason": body.reason,
            "ticket": body.ticket,
            "entitlement": entitlement(customer_id, feature, now, extra=[new]),
        }
        audit = audit_put(
            bootstrap.audit(),
            by,
            "customer.entitlement_grant",
            new.id,
            customer_id=customer_id,
            at=now,
            before=None,
            after=new.to_doc(),
            reason=body.reason,
            ticket=body.ticket,
            idempotency_key=key,
        )
        records = record_items(billing, audit, IDEMPOTENCY_SCOPE, key, request, answer)
        update = limits.grants_item(customer_id, stored(grants, now), record.grants)
        try:
            Transaction().add(update, name="grants").extend(records).commit()
        except Cancelled:
            continue  # the grants (or this key's record) changed meanwhile: read again
        return answer
    raise ConflictError("The customer's grants kept changing; try again.", code="limits_conflict")
