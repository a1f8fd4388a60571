"""The delivery worker: one queue message is one attempt at POSTing one event to one endpoint.

- 2xx within 5 seconds is delivered; anything else (another status, a redirect, a timeout, a refused
  address, any exception raised while attempting) is a failed attempt, logged with its time, status,
  latency and up to 500 characters of answer (or of the error), and retried like a network error.
- Retries wait with exponential backoff and full jitter (a random wait between 0 and
  ``min(6 h, 30 s * 2^(n-1))`` after the n-th failure) until 72 hours after the event; then the delivery is
  ``failed`` (resend it with the API or ``neruba webhooks resend``).
- SQS delays stop at 15 minutes: a longer wait is a chain of messages, each delayed by what remains (at
  most 900 s); on receipt the worker compares the delivery's stored due time with the clock and sends the
  message on again until it is due.
- The delivery's stored state decides, never the message: a message for an attempt already made, or a
  second copy while another worker holds the attempt's lease, is dropped, so a redelivered or duplicated
  message never posts twice in a row. A worker killed after the POST and before recording it leaves the
  lease to expire and the message to come back: the event is posted again with the same id (delivery is
  at least once; receivers drop an id they have seen).
- An endpoint whose attempts have failed without a success for 3 days is disabled, with an audit record.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from neruba import bootstrap
from neruba.dal.webhooks import WebhooksRepository
from neruba.logic.webhooks.context import Webhooks
from neruba.logic.webhooks.http import EXCERPT_CHARS, Answer
from neruba.logic.webhooks.relay import RETRY_WINDOW, message
from neruba.logic.webhooks.signing import HEADER, signature_header
from neruba.logic.webhooks.urls import UrlRefusedError, checked_addresses
from neruba.models.webhooks import DeliveryMessage
from neruba.timefmt import iso, parse_ts

LEASE = timedelta(seconds=60)  # longer than one attempt (5 s) and shorter than the queue's visibility
BASE_SECONDS = 30
CAP_SECONDS = 6 * 3600
MAX_DELAY_SECONDS = 900  # SQS's limit
DISABLE_AFTER = timedelta(days=3)


def backoff(failed_attempts: int, rng: Callable[[], float] = random.random) -> timedelta:
    """Full jitter: a uniform wait in [0, min(cap, base * 2^(n-1))) after the n-th failed attempt."""
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2 ** max(0, failed_attempts - 1))
    return timedelta(seconds=rng() * ceiling)


def hop_delay(due: datetime, now: datetime) -> int:
    """The DelaySeconds of the next message toward ``due`` (at most SQS's 900)."""
    return max(0, min(MAX_DELAY_SECONDS, math.ceil((due - now).total_seconds())))


MAX_ACTIVE_SECRETS = 2


def active_secrets_docs(secrets: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The stored secrets (newest first) that sign now: the newest, and the one before it until its
    overlap ends; never more than two, even for an endpoint stored before that rule."""
    live = [s for s in secrets if not s.get("expires_at") or parse_ts(s["expires_at"]) > now]
    return live[:MAX_ACTIVE_SECRETS]


def active_secrets(secrets: list[dict[str, Any]], now: datetime) -> list[str]:
    """The secret values that sign now (see :func:`active_secrets_docs`)."""
    return [s["secret"] for s in active_secrets_docs(secrets, now)]


def record(
    repo: WebhooksRepository,
    msg: DeliveryMessage,
    attempt: dict[str, Any],
    outcome: str,
    next_at: datetime | None,
    now: datetime,
) -> bool:
    """Record the attempt (the step a crash test kills after the POST)."""
    return repo.record_attempt(msg.event_id, msg.endpoint_id, attempt, outcome, next_at, now)


def process_message(
    body: str, hooks: Webhooks, now: datetime, rng: Callable[[], float] = random.random
) -> str:
    """Handle one delivery message; returns what happened (``delivered``, ``pending``, ``failed``,
    ``waiting``, ``stale``, ``busy``, ``follow_up``, ``unknown``)."""
    repo = hooks.repo
    msg = DeliveryMessage.model_validate_json(body)
    state = repo.delivery(msg.event_id, msg.endpoint_id)
    if state is None:
        return "unknown"
    if state.status != "pending" or state.next_at is None:
        return "stale"
    done = state.attempts
    due = parse_ts(state.next_at)
    if msg.attempt <= done:
        if msg.attempt == done and state.sent < done:  # the follow-up may not have been sent
            _follow_up(hooks, msg, done, due, now)
            return "follow_up"
        return "stale"
    if msg.attempt > done + 1:
        return "stale"
    if due > now:
        hooks.enqueue([(message(msg.event_id, msg.endpoint_id, msg.attempt, due), hop_delay(due, now))])
        return "waiting"
    if not repo.take_lease(msg.event_id, msg.endpoint_id, done, now, now + LEASE):
        return "busy"  # another worker holds this attempt; its message stays until it records
    found = repo.endpoint(msg.endpoint_id)
    event = repo.event(msg.event_id)
    gone = found is None or not found[0].get("enabled") or event is None
    if gone:
        answer = Answer(0, 0, "", "endpoint_disabled" if found is not None else "endpoint_deleted")
    else:
        assert found is not None and event is not None
        answer = _attempt(hooks, found[0], found[1], str(event.body), now)
    delivered = 200 <= answer.status_code < 300
    deadline = parse_ts(state.deadline) if state.deadline else due + RETRY_WINDOW
    next_at: datetime | None = None
    if delivered:
        outcome = "delivered"
    elif gone or now >= deadline:
        outcome = "failed"
    else:
        outcome, next_at = "pending", min(now + backoff(done + 1, rng), deadline)
    attempt = {
        "attempt": done + 1,
        "at": iso(now),
        "status_code": answer.status_code,
        "latency_ms": answer.latency_ms,
        "response_excerpt": answer.excerpt,
        "error": answer.error,
    }
    if not record(repo, msg, attempt, outcome, next_at, now):
        return "busy"
    _observe(msg, attempt, outcome)
    if found is not None:
        _health(hooks, msg.endpoint_id, delivered, now)
    if next_at is not None:
        _follow_up(hooks, msg, done + 1, next_at, now)
    return outcome


METRIC_OF = {
    "delivered": "WebhookDelivered",
    "pending": "WebhookAttemptFailed",
    "failed": "WebhookDeliveryFailed",
}


def _observe(msg: DeliveryMessage, attempt: dict[str, Any], outcome: str) -> None:
    """One log line per attempt (per endpoint: query it by ``endpoint_id``) and the totals as metrics."""
    from neruba.observability import logger, metrics

    logger.info(
        "webhook attempt",
        extra={
            "event_id": msg.event_id,
            "endpoint_id": msg.endpoint_id,
            "attempt": attempt["attempt"],
            "status_code": attempt["status_code"],
            "latency_ms": attempt["latency_ms"],
            "outcome": outcome,
        },
    )
    metrics.add_metric(name=METRIC_OF[outcome], unit="Count", value=1)
    endpoint_metrics(msg.endpoint_id, outcome, int(attempt["latency_ms"]))


def endpoint_metrics(endpoint_id: str, outcome: str, latency_ms: int) -> None:
    """Per-endpoint figures (docs/webhooks.md, "Metrics per endpoint"): ``WebhookEndpointAttempts``
    (dimensions ``endpoint_id`` and ``outcome``: delivered, retrying, failed) and
    ``WebhookEndpointLatency`` (``endpoint_id``). Each endpoint adds at most four metric series; endpoints
    are few (operators create them), which keeps the cardinality bounded."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    label = {"delivered": "delivered", "pending": "retrying", "failed": "failed"}[outcome]
    with single_metric(
        name="WebhookEndpointAttempts", unit=MetricUnit.Count, value=1, namespace="Neruba"
    ) as metric:
        metric.add_dimension(name="endpoint_id", value=endpoint_id)
        metric.add_dimension(name="outcome", value=label)
    with single_metric(
        name="WebhookEndpointLatency", unit=MetricUnit.Milliseconds, value=latency_ms, namespace="Neruba"
    ) as metric:
        metric.add_dimension(name="endpoint_id", value=endpoint_id)


def _attempt(
    hooks: Webhooks, endpoint: dict[str, Any], secrets: list[dict[str, Any]], body: str, now: datetime
) -> Answer:
    """Check the URL again (DNS may have changed), sign, POST to the address just checked. Whatever
    raises on the way is this attempt's failure, never the message's: a poison message would come back
    forever, unrecorded."""
    started = time.monotonic()
    try:
        addresses = checked_addresses(str(endpoint["url"]), hooks.stage, hooks.resolver)
        raw = body.encode()
        header = signature_header(raw, active_secrets(secrets, now), timestamp=int(now.timestamp()))
        headers = {"Content-Type": "application/json", HEADER: header, "User-Agent": "Neruba-Webhooks/1"}
        if addresses:  # deployed stages: connect to the address just checked, never resolve again
            return hooks.post(str(endpoint["url"]), raw, headers, addresses[0])
        return hooks.post(str(endpoint["url"]), raw, headers)
    except UrlRefusedError as exc:
        return Answer(0, 0, "", exc.code)
    except Exception as exc:  # any failure on the way is this attempt's outcome
        elapsed = int((time.monotonic() - started) * 1000)
        return Answer(0, elapsed, "", f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS])


def _follow_up(hooks: Webhooks, msg: DeliveryMessage, done: int, due: datetime, now: datetime) -> None:
    hooks.enqueue([(message(msg.event_id, msg.endpoint_id, done + 1, due), hop_delay(due, now))])
    hooks.repo.mark_sent(msg.event_id, msg.endpoint_id, done)


def _health(hooks: Webhooks, endpoint_id: str, delivered: bool, now: datetime) -> None:
    """Keep the endpoint's ``failing_since``; disable it (with an audit record) after 3 days of it."""
    from neruba.dal.transaction import Cancelled, Transaction
    from neruba.logic.idempotency import Actor, audit_put

    found = hooks.repo.endpoint(endpoint_id)
    if found is None:
        return
    doc, secrets = found
    since = doc.get("failing_since")
    if delivered:
        if since:
            hooks.repo.put_endpoint({**doc, "failing_since": None}, secrets, was=found)
        return  # (a change made meanwhile wins: the next attempt notes its outcome again)
    if not since:
        hooks.repo.put_endpoint({**doc, "failing_since": iso(now)}, secrets, was=found)
        return
    if doc.get("enabled") and now - parse_ts(since) >= DISABLE_AFTER:
        reason = f"every attempt failed since {since}"
        disabled = {
            **doc,
            "enabled": False,
            "status": "disabled",
            "disabled_reason": reason,
            "updated_at": iso(now),
        }
        unit = Transaction([hooks.repo.endpoint_item(disabled, secrets, was=found)])
        unit.add(
            audit_put(
                bootstrap.audit(), Actor(), "webhook_endpoint.disable", endpoint_id,
                at=now, reason=reason, before={"enabled": True}, after={"enabled": False},
            )
        )  # fmt: skip
        try:
            unit.commit()
        except Cancelled:
            return  # changed meanwhile (an operator); the next failure decides again
        from neruba.observability import logger

        logger.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint_id, "reason": reason})


def resend(
    hooks: Webhooks,
    now: datetime,
    *,
    event_id: str | None = None,
    failed_since: datetime | None = None,
    endpoint_id: str | None = None,
    limit: int = 1000,
) -> list[dict[str, str]]:
    """Put deliveries back on the queue, due now, with a new 72-hour window: every endpoint that wants
    one event (or the named one), or every delivery that failed since a time. A delivery being attempted
    right now is left alone."""
    repo = hooks.repo
    pairs: list[tuple[str, str]] = []
    if event_id is not None:
        event = repo.event(event_id)
        if event is None:
            return []
        for doc, _ in repo.all_endpoints():
            if endpoint_id not in (None, doc["id"]):
                continue
            if doc.get("enabled") and event.type in doc.get("enabled_events", []):
                repo.create_delivery(event_id, doc["id"], now, now + RETRY_WINDOW)
                pairs.append((event_id, doc["id"]))
    elif failed_since is not None:
        for evt, endpoint in repo.failed_since(failed_since, limit):
            state = repo.delivery(evt, endpoint)
            if endpoint_id in (None, endpoint) and state is not None and state.status == "failed":
                pairs.append((evt, endpoint))
    done: list[dict[str, str]] = []
    messages = []
    for evt, endpoint in pairs:
        try:
            attempts = repo.reopen(evt, endpoint, now, now + RETRY_WINDOW)
        except Exception as exc:
            from neruba.dal.dynamo import is_condition_failure

            if is_condition_failure(exc):
                continue  # an attempt is in flight
            raise
        messages.append((message(evt, endpoint, attempts + 1, now), 0))
        done.append({"event_id": evt, "endpoint_id": endpoint})
    hooks.enqueue(messages)
    return done
