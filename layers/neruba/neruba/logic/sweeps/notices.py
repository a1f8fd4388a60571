"""The ``notices`` sweep check: webhook events that come from the passing of time, not from a write.

1. **Trials ending.** ``subscription.trial_will_end`` for each active subscription whose ``trial_end``
   is in ``(now, now + TRIAL_NOTICE]``, once per subscription and trial end: the event is committed with
   a mark keyed by both (``logic.webhooks.outbox.emit_once``), so every later sweep, or two at once,
   writes no second one. A trial whose end is moved later gets a notice for its new end.
2. **Messages parked in a DLQ.** ``dlq.message_parked`` when a dead-letter queue's depth has risen since
   the last check. SQS moves a message to its DLQ by itself (the redrive policy after the last receive),
   so there is no write of ours to attach the event to: the check reads each DLQ's approximate depth
   (``NERUBA_DLQ_URLS``) and commits the event together with the new depth it saw, conditional on the
   depth it read before, so one rise is reported once. A redrive lowering the depth is stored without an
   event. Arrivals and redrives between two sweeps that cancel out go unnoticed; the DLQ alarms still
   fire on any depth.

Neither counts as found or repaired (those raise the sweep's alarms); ``details`` says what was sent.
Cost: one subscriptions query per customer (the by-kind index) and one GetQueueAttributes per DLQ.
"""

from __future__ import annotations

from datetime import timedelta

from neruba.logic.sweeps.runner import CheckResult, SweepContext
from neruba.timefmt import iso, parse_ts

TRIAL_NOTICE = timedelta(days=3)


def notices_check(ctx: SweepContext) -> CheckResult:
    result = CheckResult("notices", details={"trial_will_end": [], "dlq_message_parked": []})
    _trials(ctx, result)
    _dlqs(ctx, result)
    return result


def _trials(ctx: SweepContext, result: CheckResult) -> None:
    from neruba import bootstrap
    from neruba.dal.sweep_repairs import customer_ids
    from neruba.logic.webhooks.outbox import emit_once

    plans = bootstrap.plans()
    result.checked["subscriptions"] = 0
    for customer_id in customer_ids(ctx.settings.catalog_table):
        try:
            subscriptions = plans.customer_subscriptions(customer_id)
        except Exception as exc:  # one customer's failure must not stop the others
            result.fail("subscriptions", exc, customer_id=customer_id)
            continue
        for sub in subscriptions:
            result.checked["subscriptions"] += 1
            trial_end = sub.trial_end
            if sub.status != "active" or not trial_end:
                continue
            if not ctx.now < parse_ts(trial_end) <= ctx.now + TRIAL_NOTICE:
                continue
            key = f"{sub.id}#{trial_end}"
            try:
                if emit_once("subscription.trial_will_end", customer_id, sub.document, ctx.now, key):
                    result.details["trial_will_end"].append(sub.id)
            except Exception as exc:  # the next sweep tries again (the mark was not written)
                result.fail("trial_will_end", exc, customer_id=customer_id, subscription_id=sub.id)


def dlq_urls(text: str) -> dict[str, str]:
    """``{queue name: url}`` from ``NERUBA_DLQ_URLS`` (``Name=url`` pairs separated by spaces)."""
    pairs = [part.partition("=") for part in text.split()]
    return {name: url for name, _, url in pairs if name and url}


def _dlqs(ctx: SweepContext, result: CheckResult) -> None:
    from neruba import bootstrap
    from neruba.dal.webhooks import queue_depth
    from neruba.logic.webhooks.outbox import event_action

    repo = bootstrap.webhooks().repo
    for name, url in sorted(dlq_urls(ctx.settings.dlq_urls).items()):
        try:
            depth = queue_depth(url)
            previous = repo.dlq_depth(name)
            if previous == depth:
                continue
            arrived = depth - (previous or 0)
            event = None
            if arrived > 0:
                data = {"queue": name, "depth": depth, "previous_depth": previous or 0, "arrived": arrived,
                        "checked_at": iso(ctx.now)}  # fmt: skip
                event = event_action("dlq.message_parked", None, data, ctx.now)
            # stored with the event, conditional on the depth read: a concurrent check reports a rise once
            if repo.save_dlq_depth(name, previous, depth, event) and event is not None:
                result.details["dlq_message_parked"].append({"queue": name, "arrived": arrived})
        except Exception as exc:  # one queue's failure must not stop the others
            result.fail("dlq", exc, queue=name)
