"""The ``billing`` sweep check: work the billing scheduler should have done and did not.

1. **Due windows without an invoice.** A billing state still in the sparse ``by-due`` index (``bst#n``)
   with ``due_at <= now - DUE_LAG`` has a window that is due and not billed (billing the window advances
   ``due_at`` in the same transaction as the invoice put). Unless the scheduler enqueued it within
   ``IN_FLIGHT``, its jobs are sent to BillingQueue again (one per due window, oldest first, as the
   scheduler does). A duplicate job is harmless: the worker's conditional invoice put and state advance
   bill each window once.
2. **Drafts past their grace.** A draft still in the ``fin#n`` index with ``finalize_at <= now -
   DUE_LAG`` is finalized here, under the scheduler's lock (lease, fencing token and numbering exactly as
   the scheduler does it, through ``logic.billing.finalize.finalize_invoice``). While a scheduler holds the
   lock the draft is reported and left to it.
3. **Finalized invoices not synced to Stripe.** Those still in the ``sync#n`` index for longer than
   ``SYNC_LAG`` (the sync message was never sent), and those whose sync record is missing, ``failed`` or
   stuck ``in_progress`` for longer than ``SYNC_LAG`` (read per customer from the ``by-list`` index,
   invoices whose period started within ``SYNC_LOOKBACK``): ``{"invoice_id"}`` is sent to StripeSyncQueue
   again (the sync resumes from its stored steps and Stripe idempotency keys, so a re-send never creates
   a second Stripe invoice). ``mismatch`` and ``skipped`` records are reported, not re-sent.

4. **Credit notes and voids owed to Stripe** (``logic/sweeps/owed_syncs.py``): their transaction marked
   them owed and no message was sent; it is sent now.

5. **Backfills left ``committing``** without a message to finish them (``logic/sweeps/backfills.py``):
   their ``{"backfill"}`` message is sent to BillingQueue again.

Each state, draft, invoice and customer is handled on its own: one that fails (a send the queue refuses,
a read, a finalization or top-up that raises) is recorded in the result's ``failures`` with its ids, and
the check goes on with the rest.

Every re-send is claimed first in the ops table (``SWEEPCLAIM#...``, ``OpsRepository.claim_resend``): a
second sweep within ``COOLDOWN`` does not send the same work again (it reports it as in flight), and a
window or invoice that keeps failing is re-sent at most once per ``COOLDOWN`` (its failures end in the DLQ
and the ``BillingWindowsFailed`` / ``StripeSyncFailures`` alarms).

Cost: eight index queries per kind (``bst``, ``fin``, ``sync``) returning only overdue items, plus one
``by-list`` query per catalog customer (its finalized invoices of the last ``SYNC_LOOKBACK``, about
thirteen a year for a monthly plan).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from neruba import bootstrap
from neruba.logic.sweeps.backfills import stuck_backfills
from neruba.logic.sweeps.owed_syncs import owed_syncs
from neruba.logic.sweeps.runner import CheckResult, SweepContext
from neruba.timefmt import iso

if TYPE_CHECKING:
    from neruba.dal.billing import BillingState
    from neruba.dal.invoices import Invoice
    from neruba.dal.ops import OpsRepository
    from neruba.logic.billing.context import Billing

DUE_LAG = timedelta(hours=2)  # two scheduler periods: the scheduler and the worker had their chance
IN_FLIGHT = timedelta(minutes=30)  # the scheduler enqueued it this recently: leave it to the worker
SYNC_LAG = timedelta(minutes=60)  # a Stripe sync that long without success is re-sent
SYNC_LOOKBACK = timedelta(days=400)
COOLDOWN = timedelta(hours=6)  # like the scheduler's REQUEUE_AFTER
RESENDABLE_SYNC = (None, "failed", "in_progress")


def billing_check(ctx: SweepContext) -> CheckResult:
    """Re-enqueue overdue windows, finalize stuck drafts, re-send unsynced finalized invoices, write
    stranded auto top-ups."""

    billing = ctx.billing()
    ops = bootstrap.ops()
    result = CheckResult(
        "billing", checked={"due_states": 0, "drafts": 0, "sync_pending": 0, "finalized_invoices": 0}
    )
    details: dict[str, list[dict[str, Any]]] = {
        "in_flight": [],
        "left_to_scheduler": [],
        "needs_operator": [],
    }
    _due_windows(ctx, billing, ops, result, details)
    _stuck_drafts(ctx, billing, result, details)
    _unsynced(ctx, billing, ops, result, details)
    owed_syncs(ctx, billing, ops, result, details, COOLDOWN)
    stuck_backfills(ctx, billing, ops, result, details, COOLDOWN)
    _stranded_top_ups(ctx, billing, result, details)
    result.details = {**details, "as_of": iso(ctx.now)}
    return result


def _due_windows(
    ctx: SweepContext, billing: Billing, ops: OpsRepository, result: CheckResult, details: dict[str, Any]
) -> None:
    from neruba.dal.billing import DUE_SHARDS

    cutoff = ctx.now - DUE_LAG
    for shard in range(DUE_SHARDS):
        for state in billing.billing.due_states(cutoff, shard):
            result.checked["due_states"] += 1
            try:  # one state's failure is reported and never stops the others
                _due_window(ctx, billing, ops, state, result, details)
            except Exception as exc:
                ids = {"subscription_id": state.subscription_id, "customer_id": state.customer_id}
                result.fail("due_window", exc, **ids)


def _due_window(
    ctx: SweepContext,
    billing: Billing,
    ops: OpsRepository,
    state: BillingState,
    result: CheckResult,
    details: dict[str, Any],
) -> None:
    from neruba.dal.queue import send_batch
    from neruba.logic.billing.scheduler import jobs_for
    from neruba.logic.billing.windows import state_windows
    from neruba.timefmt import parse_ts

    subscription_id, seq = state.subscription_id, state.next_seq
    ids = {"subscription_id": subscription_id, "customer_id": state.customer_id, "seq": seq}
    result.found += 1
    enqueued = state.enqueued_at
    recently = enqueued and parse_ts(enqueued) > ctx.now - IN_FLIGHT
    if recently and (state.enqueued_seq if state.enqueued_seq is not None else -1) >= seq:
        details["in_flight"].append({"kind": "due_window", **ids})
        return
    if not ops.claim_resend("billing", f"{subscription_id}#{seq}", ctx.now, COOLDOWN):
        details["in_flight"].append({"kind": "due_window", **ids})
        return
    windows = state_windows(state, ctx.now, billing.add_interval)
    jobs = jobs_for(state, windows)
    if not jobs:
        return
    failed = send_batch(
        billing.billing_queue_url, [(str(i), j.model_dump_json()) for i, j in enumerate(jobs)]
    )
    if failed:
        result.fail("send", f"BillingQueue refused {len(failed)} job(s)", kind_of_work="due_window", **ids)
        return
    result.repaired += 1
    result.repairs.append(
        {
            "kind": "window_requeued",
            **ids,
            "windows": [w.window_id for w in windows],
            "invoice_ids": [w.invoice_id for w in windows],
        }
    )


def _stuck_drafts(ctx: SweepContext, billing: Billing, result: CheckResult, details: dict[str, Any]) -> None:
    from neruba.dal.billing import DUE_SHARDS
    from neruba.dal.locks import LockLostError
    from neruba.logic.billing.finalize import finalize_invoice
    from neruba.logic.billing.scheduler import LEASE, LOCK_NAME

    drafts = [d for shard in range(DUE_SHARDS) for d in billing.invoices.drafts_due(shard, ctx.now - DUE_LAG)]
    result.checked["drafts"] = len(drafts)
    if not drafts:
        return
    result.found += len(drafts)
    locks = bootstrap.locks()
    lease = locks.acquire(LOCK_NAME, "sweep", LEASE, ctx.now)
    if lease is None:
        details["left_to_scheduler"] += [_invoice_ids(d) for d in drafts]
        return
    try:
        for draft in sorted(drafts, key=lambda d: (str(d.created_at), d.id)):
            try:  # one draft's failure is reported and never stops the others
                finalized = finalize_invoice(billing, draft, ctx.now, lambda: [locks.fence(lease)])
            except LockLostError:
                raise
            except Exception as exc:
                result.fail("draft", exc, **_invoice_ids(draft))
                continue
            if finalized is None:
                details["left_to_scheduler"].append(_invoice_ids(draft))
                continue
            result.repaired += 1
            result.repairs.append(
                {"kind": "draft_finalized", **_invoice_ids(draft), "number": finalized.number}
            )
    except LockLostError:
        details["left_to_scheduler"].append({"reason": "lock lost"})
    finally:
        locks.release(lease)


def _unsynced(
    ctx: SweepContext, billing: Billing, ops: OpsRepository, result: CheckResult, details: dict[str, Any]
) -> None:
    from neruba.dal.billing import DUE_SHARDS
    from neruba.dal.sweep_repairs import customer_ids
    from neruba.timefmt import parse_ts

    cutoff = ctx.now - SYNC_LAG
    pending = [i for shard in range(DUE_SHARDS) for i in billing.invoices.sync_pending(shard, cutoff)]
    result.checked["sync_pending"] = len(pending)
    for invoice in pending:  # the sync message was never sent: send it and leave the index
        result.found += 1
        try:  # one invoice's failure is reported and never stops the others
            if not ops.claim_resend("sync", invoice.id, ctx.now, COOLDOWN):
                details["in_flight"].append({"kind": "stripe_sync", **_invoice_ids(invoice)})
                continue
            if _send_sync(billing, invoice, "sync_sent", result, details):
                billing.invoices.clear_sync_due(invoice.id)
        except Exception as exc:
            result.fail("stripe_sync", exc, **_invoice_ids(invoice))
    seen = {i.id for i in pending}
    for customer_id in customer_ids(ctx.settings.catalog_table):
        try:
            invoices = billing.invoices.finalized_since(customer_id, ctx.now - SYNC_LOOKBACK)
        except Exception as exc:
            result.fail("finalized_invoices", exc, customer_id=customer_id)
            continue
        for invoice in invoices:
            result.checked["finalized_invoices"] += 1
            if invoice.id in seen:
                continue
            status = invoice.sync_status
            since = invoice.sync_updated_at or invoice.finalized_at
            if status == "synced" or not since or parse_ts(str(since)) > cutoff:
                continue
            result.found += 1
            if status not in RESENDABLE_SYNC:
                details["needs_operator"].append({**_invoice_ids(invoice), "sync_status": status})
                continue
            try:
                if not ops.claim_resend("sync", invoice.id, ctx.now, COOLDOWN):
                    details["in_flight"].append({"kind": "stripe_sync", **_invoice_ids(invoice)})
                    continue
                _send_sync(billing, invoice, "sync_resent", result, details, sync_status=status)
            except Exception as exc:
                result.fail("stripe_sync", exc, **_invoice_ids(invoice))


def _stranded_top_ups(
    ctx: SweepContext, billing: Billing, result: CheckResult, details: dict[str, Any]
) -> None:
    """Write the invoice and grant of every stored auto top-up request that has none (a top-up that failed
    after its window was billed, and that no later window retried). Idempotent by request id."""
    from neruba.dal.sweep_repairs import customer_ids
    from neruba.logic.billing.top_up import complete_top_ups

    ledger = bootstrap.ledger()
    result.checked["customers_for_top_ups"] = 0
    for customer_id in customer_ids(ctx.settings.catalog_table):
        result.checked["customers_for_top_ups"] += 1
        try:
            written = complete_top_ups(billing, ledger, customer_id, ctx.now)
        except Exception as exc:  # one customer's failure must not stop the others
            result.fail("top_up", exc, customer_id=customer_id)
            continue
        for invoice_id in written:
            result.found += 1
            result.repaired += 1
            result.repairs.append(
                {"kind": "top_up_written", "customer_id": customer_id, "invoice_id": invoice_id}
            )


def _send_sync(
    billing: Billing,
    invoice: Invoice,
    kind: str,
    result: CheckResult,
    details: dict[str, Any],
    **extra: Any,
) -> bool:
    from neruba.dal.queue import send_batch

    ids = _invoice_ids(invoice)
    if send_batch(billing.sync_queue_url, [("0", json.dumps({"invoice_id": invoice.id}))]):
        result.fail("send", "StripeSyncQueue refused the message", kind_of_work=kind, **ids)
        return False
    result.repaired += 1
    result.repairs.append({"kind": kind, **ids, **extra})
    return True


def _invoice_ids(invoice: Invoice) -> dict[str, Any]:
    from neruba.logic.billing.finalize import invoice_log_ids

    return invoice_log_ids(invoice)
