"""Webhook endpoints (admin scope): create, list, read, update, delete, rotate the signing secret.

A secret is shown in the answer of the create or rotate that made it, and again to a retry of that same
request (same Idempotency-Key and body) while the secret still signs; it is stored once, with the endpoint
(the ops table is encrypted at rest), because signing needs it: the idempotency record keeps only its
SHA-256 digest, to find it among the endpoint's active secrets. No other answer or log shows it.
Rotation keeps the old secret signing next to the new one for ``overlap_seconds`` (both ``v1`` values in
the header), then only the new; any older secret stops at the rotation, so at most two sign at any time.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets as _random
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from neruba import bootstrap
from neruba.dal.webhooks import Endpoint, EndpointSecret
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic.idempotency import Actor, audit_put, fingerprint, replay
from neruba.logic.webhooks.context import Webhooks
from neruba.logic.webhooks.delivery import active_secrets, active_secrets_docs
from neruba.logic.webhooks.signing import new_secret
from neruba.logic.webhooks.urls import UrlRefusedError, check_url
from neruba.models.webhooks import EndpointCreate, EndpointUpdate, ResendRequest, SecretRotation
from neruba.timefmt import iso, parse_ts


def new_endpoint_id() -> str:
    return "we_" + _random.token_hex(10)


def _checked_url(hooks: Webhooks, url: str) -> str:
    try:
        return check_url(url, hooks.stage, hooks.resolver)
    except UrlRefusedError as exc:
        raise InvalidRequestError(str(exc), code=exc.code, param="url") from exc


def view(
    doc: dict[str, Any], secrets: Sequence[EndpointSecret], now: datetime, shown: str | None = None
) -> dict[str, Any]:
    """An endpoint as the API answers it (the secret only when ``shown``; ``json_response`` writes its times
    in UTC with ``Z``)."""
    return {
        **doc,
        "object": "webhook_endpoint",
        "status": "enabled" if doc.get("enabled") else "disabled",
        "secret": shown,
        "secret_hint": secrets[0].secret[-4:] if secrets else "",
        "secrets_active": len(active_secrets(secrets, now)),
    }


def _audit(
    hooks: Webhooks, by: Actor, action: str, target: str, now: datetime, **record: Any
) -> dict[str, Any]:
    return audit_put(bootstrap.audit(), by, action, target, at=now, **record)


SECRET_DIGEST = "secret_sha256"  # noqa: S105 (a field name)  # the idempotency record's stand-in for the secret it showed


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _replayed(
    hooks: Webhooks, scope: str, key: str | None, request: str, now: datetime | None = None
) -> dict[str, Any] | None:
    """The first answer of ``key``, or None. When that answer showed a secret, the replay shows it again
    while it is one of the endpoint's active secrets (found by its digest), else ``secret: null``."""
    if hooks.idempotency is None:
        return None
    found = replay(hooks.idempotency, scope, key, request)
    if found is None:
        return None
    answer = dict(found)
    digest = answer.pop(SECRET_DIGEST, None)
    if digest and now is not None:
        stored = hooks.repo.endpoint(str(answer["id"]))
        live = active_secrets(stored.secrets, now) if stored is not None else []
        answer["secret"] = next((s for s in live if _digest(s) == digest), None)
    return answer


def _remember(
    hooks: Webhooks, scope: str, key: str | None, request: str, answer: dict[str, Any]
) -> list[dict[str, Any]]:
    """The idempotency record of ``answer``: a secret it shows is kept as its digest only (the secret
    itself is stored once, with the endpoint)."""
    if not key or hooks.idempotency is None:
        return []
    stored = answer
    if answer.get("secret"):
        stored = {**answer, "secret": None, SECRET_DIGEST: _digest(str(answer["secret"]))}
    return [hooks.idempotency.idempotency_put_item(scope, key, request, stored)]


def create(
    hooks: Webhooks, body: EndpointCreate, by: Actor, now: datetime, key: str | None = None
) -> dict[str, Any]:
    """A new endpoint and its first secret. With an Idempotency-Key, a repeat returns the first answer
    and creates nothing; it shows the secret again while that secret still signs."""
    from neruba.dal.transaction import Transaction

    request = fingerprint(body.model_dump(mode="json"), "webhook-endpoints")
    replayed = _replayed(hooks, "webhook-endpoint", key, request, now)
    if replayed is not None:
        return replayed
    url = _checked_url(hooks, body.url)
    secret = new_secret()
    doc = {
        "id": new_endpoint_id(),
        "url": url,
        "enabled_events": sorted(set(body.enabled_events)),
        "description": body.description,
        "enabled": True,
        "disabled_reason": None,
        "failing_since": None,
        "created_at": iso(now),
        "updated_at": iso(now),
    }
    secrets = [EndpointSecret(secret)]
    answer = view(doc, secrets, now, shown=secret)
    unit = Transaction([hooks.repo.endpoint_item(doc, secrets, new=True)])
    unit.add(_audit(hooks, by, "webhook_endpoint.create", str(doc["id"]), now, before=None, after=doc))
    unit.extend(_remember(hooks, "webhook-endpoint", key, request, answer))
    unit.commit()
    return answer


def _found(hooks: Webhooks, endpoint_id: str) -> Endpoint:
    found = hooks.repo.endpoint(endpoint_id)
    if found is None:
        raise NotFoundError(f"No webhook endpoint {endpoint_id}.", code="webhook_endpoint_not_found",
                            param="endpoint_id")  # fmt: skip
    return found


def _changed(hooks: Webhooks, endpoint_id: str, exc: Exception) -> None:
    """Raise for a write whose endpoint changed since it was read: 404 if deleted, else 409 (retry)."""
    _found(hooks, endpoint_id)
    raise ConflictError("The endpoint changed meanwhile; read it and retry.", code="conflict") from exc


def get(hooks: Webhooks, endpoint_id: str, now: datetime) -> dict[str, Any]:
    found = _found(hooks, endpoint_id)
    return view(found.document, found.secrets, now)


def list_page(hooks: Webhooks, limit: int, cursor: str | None, now: datetime) -> dict[str, Any]:
    page, next_cursor = hooks.repo.list_endpoints(limit, cursor)
    data = [view(found.document, found.secrets, now) for found in page]
    return {"object": "list", "data": data, "has_more": next_cursor is not None, "next_cursor": next_cursor}


def update(
    hooks: Webhooks, endpoint_id: str, body: EndpointUpdate, by: Actor, now: datetime
) -> dict[str, Any]:
    from neruba.dal.transaction import Cancelled, Transaction

    found = _found(hooks, endpoint_id)
    doc, secrets = found.document, found.secrets
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "url" in changes:
        changes["url"] = _checked_url(hooks, changes["url"])
    if "enabled_events" in changes:
        changes["enabled_events"] = sorted(set(changes["enabled_events"]))
    new = {**doc, **changes, "updated_at": iso(now)}
    if changes.get("enabled") is True:
        new.update(disabled_reason=None, failing_since=None)
    elif changes.get("enabled") is False:
        new["disabled_reason"] = "disabled by an operator"
    unit = Transaction([hooks.repo.endpoint_item(new, secrets, was=found)])
    before = {k: doc.get(k) for k in changes}
    unit.add(_audit(hooks, by, "webhook_endpoint.update", endpoint_id, now, before=before, after=changes))
    try:
        unit.commit()
    except Cancelled as exc:
        _changed(hooks, endpoint_id, exc)
    return view(new, secrets, now)


def delete(hooks: Webhooks, endpoint_id: str, by: Actor, now: datetime) -> dict[str, Any]:
    doc = _found(hooks, endpoint_id).document
    if not hooks.repo.delete_endpoint(endpoint_id):
        raise NotFoundError(f"No webhook endpoint {endpoint_id}.", code="webhook_endpoint_not_found")
    from neruba.dal.transaction import Transaction

    Transaction(
        [_audit(hooks, by, "webhook_endpoint.delete", endpoint_id, now, before=doc, after=None)]
    ).commit()
    return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}


def rotate(
    hooks: Webhooks, endpoint_id: str, body: SecretRotation, by: Actor, now: datetime, key: str | None = None
) -> dict[str, Any]:
    """A new secret signs from now; the one that was newest keeps signing for ``overlap_seconds`` and every
    older one stops now, so at most two secrets ever sign (docs/webhooks.md). With an
    Idempotency-Key a repeat returns the first answer and rotates nothing; it shows the new secret again
    while that secret still signs."""
    from neruba.dal.transaction import Cancelled, Transaction

    request = fingerprint(body.model_dump(mode="json"), endpoint_id)
    replayed = _replayed(hooks, "webhook-rotate", key, request, now)
    if replayed is not None:
        return replayed
    found = _found(hooks, endpoint_id)
    doc, secrets = found.document, found.secrets
    ends = now + timedelta(seconds=body.overlap_seconds)
    kept = []
    for old in active_secrets_docs(secrets, now)[:1]:  # the newest one only: older overlaps end now
        if body.overlap_seconds:
            expires = parse_ts(old.expires_at) if old.expires_at else None
            kept.append(replace(old, expires_at=iso(min(expires, ends) if expires else ends)))
    secret = new_secret()
    rotated = [EndpointSecret(secret), *kept]
    new = {**doc, "updated_at": iso(now)}
    unit = Transaction([hooks.repo.endpoint_item(new, rotated, was=found)])
    unit.add(_audit(hooks, by, "webhook_endpoint.rotate_secret", endpoint_id, now,
                    before=None, after={"overlap_ends": iso(ends)}))  # fmt: skip
    answer = view(new, rotated, now, shown=secret)
    unit.extend(_remember(hooks, "webhook-rotate", key, request, answer))
    try:
        unit.commit()
    except Cancelled as exc:
        _changed(hooks, endpoint_id, exc)
    return answer


def event(hooks: Webhooks, event_id: str) -> dict[str, Any]:
    """One event as sent, with each endpoint's delivery state and every attempt."""
    import json

    found = hooks.repo.event(event_id)
    if found is None:
        raise NotFoundError(f"No webhook event {event_id}.", code="webhook_event_not_found", param="event_id")
    states, attempts = hooks.repo.deliveries_of(event_id)
    keep = ("endpoint_id", "status", "attempts", "next_at", "delivered_at", "failed_at")
    return {  # the payload is the body as sent; the rest is read from stored items (times: json_response)
        **found.summary(),
        "object": "event",
        "deliveries": [{k: getattr(s, k) for k in keep} for s in states],
        "attempts": [asdict(attempt) for attempt in attempts],
        "payload": json.loads(found.body or "null"),
    }


def resend(
    hooks: Webhooks, body: ResendRequest, by: Actor, now: datetime, key: str | None = None
) -> dict[str, Any]:
    """Send one event, or every delivery failed since a time, again (audited). With an Idempotency-Key a
    repeat answers the first result and sends nothing; a resend stopped before its answer was recorded
    may send again when retried, which receivers absorb (they drop an event id they have seen)."""
    from neruba.dal.transaction import Cancelled, Transaction
    from neruba.logic.webhooks.delivery import resend as resend_deliveries

    if (body.event_id is None) == (body.failed_since is None):
        raise InvalidRequestError(
            "Send either event_id or failed_since.", code="resend_target_required", param="event_id"
        )
    request = fingerprint(body.model_dump(mode="json"), "webhook-resends")
    replayed = _replayed(hooks, "webhook-resend", key, request)
    if replayed is not None:
        return replayed
    if body.endpoint_id is not None:
        _found(hooks, body.endpoint_id)  # 404 when there is no such endpoint (or it was deleted)
    if body.event_id is not None:
        event(hooks, body.event_id)  # 404 when there is no such event
        done = resend_deliveries(hooks, now, event_id=body.event_id, endpoint_id=body.endpoint_id)
    else:
        done = resend_deliveries(hooks, now, failed_since=body.failed_since, endpoint_id=body.endpoint_id)
    answer = {"object": "webhook_resend", "resent": len(done), "deliveries": done}
    target = body.event_id or f"failed_since:{iso(body.failed_since) if body.failed_since else ''}"
    audit = _audit(
        hooks,
        by,
        "webhook.resend",
        target,
        now,
        reason=body.reason,
        ticket=body.ticket,
        before=None,
        after=answer,
    )
    unit = Transaction([audit])
    unit.extend(_remember(hooks, "webhook-resend", key, request, answer))
    with contextlib.suppress(Cancelled):  # a concurrent request with the same key recorded first
        unit.commit()
    return answer
