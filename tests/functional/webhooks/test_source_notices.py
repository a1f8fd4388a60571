"""The sweep's notices check: subscription.trial_will_end once per subscription trial, and
dlq.message_parked once per rise of a dead-letter queue's depth (a crash at the commit writes neither the
mark nor the event; a second sweep writes nothing again)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from neruba import bootstrap
from neruba.logic.sweeps.notices import notices_check
from neruba.logic.sweeps.runner import SweepContext
from neruba.settings import get_settings
from tests.functional.catalog.test_catalog_api import PLAN
from tests.functional.webhooks.sources import crash_with_outbox, outbox
from tests.support.aws import queue_url


def _sweep(now: datetime, dlqs: str = "", failures: int = 0) -> dict[str, Any]:
    settings = get_settings().model_copy(update={"dlq_urls": dlqs})
    ctx = SweepContext(now - timedelta(hours=1), now, now, settings, bootstrap.billing)
    result = notices_check(ctx)
    assert len(result.failures) == failures and (result.found, result.repaired) == (0, 0)
    return result.details


def test_trial_notices_are_sent_once_per_trial(catalog: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import PlanCreate, SubscriptionCreate

    plans = bootstrap.plans()
    create_plan(plans, PlanCreate.model_validate(PLAN))
    now = datetime(2026, 3, 10, tzinfo=UTC)
    trial = SubscriptionCreate(
        customer_id="acme", plan_code="pro", start_at=now, trial_end=now + timedelta(days=5)
    )
    sub = create_subscription(plans, trial, "trial", now=now)
    late = SubscriptionCreate(
        customer_id="globex", plan_code="pro", start_at=now, trial_end=now + timedelta(days=30)
    )
    create_subscription(plans, late, "late", now=now)
    # four days before the end: nothing yet
    assert _sweep(now + timedelta(days=1))["trial_will_end"] == []
    # within three days: a crash at the commit writes no mark and no event; then once, whatever reruns
    with crash_with_outbox(monkeypatch) as crashes:
        _sweep(now + timedelta(days=2, hours=1), failures=1)
    assert crashes == [1] and outbox("subscription.trial_will_end") == []
    assert _sweep(now + timedelta(days=2, hours=2))["trial_will_end"] == [sub["id"]]
    assert _sweep(now + timedelta(days=2, hours=3))["trial_will_end"] == []
    assert _sweep(now + timedelta(days=4))["trial_will_end"] == []
    (event,) = outbox("subscription.trial_will_end")
    assert (event["customer_id"], event["data"]["id"], event["data"]["trial_end"]) == (
        "acme", sub["id"], sub["trial_end"],
    )  # fmt: skip


def test_a_rise_of_a_dlq_depth_is_reported_once(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs = boto3.client("sqs")
    dlq = queue_url("BillingDLQ")
    dlqs = f"BillingDLQ={dlq} IngestDLQ={queue_url('IngestDLQ')}"
    now = datetime.now(UTC)
    assert _sweep(now, dlqs)["dlq_message_parked"] == []
    for n in range(2):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"job {n}")
    with crash_with_outbox(monkeypatch) as crashes:
        _sweep(now, dlqs, failures=1)
    assert crashes == [1] and outbox("dlq.message_parked") == []
    assert _sweep(now, dlqs)["dlq_message_parked"] == [{"queue": "BillingDLQ", "arrived": 2}]
    assert _sweep(now, dlqs)["dlq_message_parked"] == []  # the same depth: nothing new
    sqs.send_message(QueueUrl=dlq, MessageBody="job 3")
    assert _sweep(now, dlqs)["dlq_message_parked"] == [{"queue": "BillingDLQ", "arrived": 1}]
    events = outbox("dlq.message_parked")
    assert [(e["customer_id"], e["data"]["depth"], e["data"]["previous_depth"]) for e in events] == [
        ("_global", 2, 0),
        ("_global", 3, 2),
    ]
