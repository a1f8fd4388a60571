"""The billing scheduler: take the lease, find due windows through the sparse index, enqueue one job per
window (oldest first), finalize drafts whose grace passed, and record the run.

Only one scheduler works at a time: it holds a lease on ``LOCK#billing-scheduler`` (dal/locks.py). A
second one started while the lease is live records a ``skipped_locked`` run and exits. Every write of the
run that depends on the lock (the run record, the enqueue marks, finalizations) is a transaction carrying
the lease's fencing check, so a scheduler whose lease expired and was taken over cannot commit anything:
its next write raises LockLostError and it stops. Job messages themselves are not fenced: a duplicate job
is harmless because the worker bills each window once.

Cost: one query per shard of the due index returning only due states, plus per due subscription one
message per due window and a share of a batched mark transaction; nothing is read for subscriptions that
are not due.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba.dal.billing import DUE_SHARDS, BillingRun, BillingState, billing_run
from neruba.dal.features import BALANCE_MARKER
from neruba.dal.features import MARKER as FEATURES_MARKER
from neruba.dal.locks import Lease, LockLostError, LockRepository
from neruba.dal.plans import PlansRepository
from neruba.dal.transaction import Transaction, commit
from neruba.logic.billing import sync_due
from neruba.logic.billing.context import Billing
from neruba.logic.billing.features import backfill_features
from neruba.logic.billing.finalize import fenced, finalize_due, send_pending_syncs
from neruba.logic.billing.windows import Window, state_windows
from neruba.logic.billing.worker import ensure_billing_state
from neruba.logic.limits.balance import backfill_flags as balance_flags
from neruba.models.billing import BillingJob
from neruba.timefmt import parse_ts, ts

LOCK_NAME = "billing-scheduler"
LEASE = timedelta(minutes=5)
REQUEUE_AFTER = timedelta(hours=6)
MARKS_PER_TRANSACTION = 25


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunOptions:
    """How a run was triggered and what it covers."""

    trigger: str = "schedule"
    customer_id: str | None = None
    at: datetime | None = None
    backfill: bool = False
    actor: str | None = None
    reason: str | None = None
    lease: timedelta = LEASE
    clock: Callable[[], datetime] = field(default=_utcnow)


class _Holder:
    """The lease of a running scheduler, renewed when half of it has passed."""

    def __init__(self, locks: LockRepository, lease: Lease, length: timedelta, clock: Callable[[], datetime]):
        self.locks, self.lease, self.length, self.clock = locks, lease, length, clock

    def fence(self) -> list[dict[str, Any]]:
        self.keep()
        return [self.locks.fence(self.lease)]

    def keep(self) -> None:
        now = self.clock()
        if now >= self.lease.expires_at - self.length / 2:
            self.lease = self.locks.renew(self.lease, self.length, now)


def run_billing(
    ctx: Billing, locks: LockRepository, plans: PlansRepository, options: RunOptions
) -> BillingRun:
    """One billing run; returns its record (``status``: completed, skipped_locked or lock_lost)."""
    from neruba.observability import logger, metrics

    started = options.clock()
    now = options.at or started
    run_id = "run_" + uuid.uuid4().hex[:20]
    run: dict[str, Any] = {
        "id": run_id,
        "object": "billing_run",
        "trigger": options.trigger,
        "customer_id": options.customer_id,
        "as_of": ts(now),
        "actor": options.actor,
        "reason": options.reason,
        "windows_found": 0,
        "enqueued": 0,
        "invoiced": 0,
        "skipped": 0,
        "failed": 0,
        "finalized": 0,
        "started_at": ts(started),
        "ended_at": None,
    }
    lease = locks.acquire(LOCK_NAME, run_id, options.lease, started)
    if lease is None:
        holder = locks.current(LOCK_NAME) or {}
        run.update(status="skipped_locked", ended_at=ts(options.clock()), lock_token=None)
        run["lock_holder"] = holder.get("owner")
        commit(Transaction([ctx.billing.run_put_item(run)]))
        metrics.add_metric(name="BillingLockContention", unit="Count", value=1)
        logger.info("billing run skipped: lock held", extra={"run_id": run_id, "holder": holder.get("owner")})
        return billing_run(run)
    holder_ = _Holder(locks, lease, options.lease, options.clock)
    run.update(status="running", lock_token=lease.token)
    try:
        fenced([ctx.billing.run_put_item(run)], holder_.fence)
        _enqueue_due(ctx, plans, options, run, now, holder_)
        run["finalized"] = len(finalize_due(ctx, now, holder_.fence, options.customer_id))
        send_pending_syncs(ctx, now)
        sync_due.send_pending(ctx, now)
        run.update(status="completed", ended_at=ts(options.clock()))
        changes = {
            k: run[k] for k in ("status", "ended_at", "windows_found", "enqueued", "skipped", "finalized")
        }
        fenced([ctx.billing.run_update_item(run_id, changes)], holder_.fence)
    except LockLostError:
        run.update(status="lock_lost", ended_at=ts(options.clock()))
        commit(
            Transaction(
                [ctx.billing.run_update_item(run_id, {"status": "lock_lost", "ended_at": run["ended_at"]})]
            )
        )
        logger.warning("billing run lost its lock and stopped", extra={"run_id": run_id})
        return billing_run(run)
    locks.release(holder_.lease)
    return ctx.billing.run(run_id) or billing_run(run)


def _states(
    ctx: Billing, plans: PlansRepository, options: RunOptions, now: datetime
) -> Iterator[BillingState]:
    """Due billing states: from the index, or a customer's subscriptions for a targeted run."""
    if options.customer_id:
        for subscription in plans.customer_subscriptions(options.customer_id):
            ensure_billing_state(ctx.billing, subscription.timeline)
            state = ctx.billing.state(subscription.id)
            if state and state.due_at and parse_ts(state.due_at) <= now:
                yield state
        return
    if options.backfill or ctx.billing.marker("billing-state-backfill") is None:
        backfill_states(ctx, plans)
        ctx.billing.set_marker("billing-state-backfill", now)
    if options.backfill or ctx.billing.marker(FEATURES_MARKER) is None:
        backfill_features(ctx, plans, now)  # windows skip unused features' reads once it has run
    if options.backfill or ctx.billing.marker(BALANCE_MARKER) is None:
        balance_flags(ctx.billing, plans, now)  # voids and expiries skip customers without levels
    for shard in range(DUE_SHARDS):
        yield from ctx.billing.due_states(now, shard)


def backfill_states(ctx: Billing, plans: PlansRepository) -> int:
    """Create billing states for catalog subscriptions that have none; returns how many were created."""
    created = 0
    cursor: str | None = None
    while True:
        docs, cursor = plans.list_docs("subscription", 100, cursor)
        created += sum(1 for doc in docs if ensure_billing_state(ctx.billing, doc))
        if not cursor:
            return created


def _enqueue_due(
    ctx: Billing,
    plans: PlansRepository,
    options: RunOptions,
    run: dict[str, Any],
    now: datetime,
    holder: _Holder,
) -> None:
    from neruba.dal.queue import send_batch
    from neruba.observability import logger

    marks: list[dict[str, Any]] = []
    for state in _states(ctx, plans, options, now):
        holder.keep()
        windows = state_windows(state, now, ctx.add_interval)
        run["windows_found"] += len(windows)
        if not windows:
            continue
        last = windows[-1].seq
        recently = state.enqueued_at and parse_ts(state.enqueued_at) > now - REQUEUE_AFTER
        enqueued_seq = state.enqueued_seq if state.enqueued_seq is not None else -1
        if recently and enqueued_seq >= last and options.trigger == "schedule":
            run["skipped"] += len(windows)
            continue
        jobs = jobs_for(state, windows, run_id=run["id"])
        failed = send_batch(
            ctx.billing_queue_url, [(str(i), job.model_dump_json()) for i, job in enumerate(jobs)]
        )
        run["enqueued"] += len(jobs) - len(failed)
        logger.info(
            "billing windows enqueued",
            extra={
                "run_id": run["id"],
                "subscription_id": state.subscription_id,
                "customer_id": state.customer_id,
                "invoice_ids": [w.invoice_id for w in windows],
                "failed_sends": len(failed),
            },
        )
        if failed:
            continue  # not marked: the next run enqueues them again
        marks.append(ctx.billing.mark_enqueued_item(state.subscription_id, last, now))
        if len(marks) == MARKS_PER_TRANSACTION:
            fenced(marks, holder.fence)
            marks = []
    if marks:
        fenced(marks, holder.fence)


def jobs_for(state: BillingState, windows: list[Window], run_id: str | None = None) -> list[BillingJob]:
    """One BillingQueue job per window of a billing state (``run_id`` names the run that enqueued it)."""
    return [
        BillingJob(
            subscription_id=w.subscription_id,
            customer_id=state.customer_id,
            seq=w.seq,
            window_id=w.window_id,
            kind=w.kind,
            run_id=run_id,
        )
        for w in windows
    ]
