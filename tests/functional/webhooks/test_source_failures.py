"""billing_run.failed is written with the run's failure count when a billing job's last receive fails:
one event per given-up message, none for the earlier receives, none twice for the same receive, and a
crash at the commit writes neither the count nor the event."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.logic.billing.failures import job_failed
from neruba.models.billing import BillingJob
from tests.functional.billing.conftest import START, World, world  # noqa: F401 - the billing fixture
from tests.functional.billing.helpers import day, schedule, worker
from tests.functional.webhooks.sources import Crash, crash_with_outbox, outbox
from tests.support.queues import receive_batch, run_batch


def test_a_given_up_billing_job_is_reported_once_with_its_run(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from functions.billing_worker import app

    world.subscribe("acme")
    now = START + day(1, 1)
    run = schedule(world, now)

    def broken(*_: Any) -> Any:
        raise RuntimeError("rating exploded")

    monkeypatch.setattr(app, "process_job", broken)
    handler = worker(world, now, monkeypatch)
    for _receive in range(app.MAX_RECEIVES):
        messages = receive_batch(world.billing_queue, 10)
        assert messages and run_batch(handler, world.billing_queue, messages)
    events = outbox("billing_run.failed")
    assert len(events) == len(messages) >= 1  # one per job, at its last receive only
    assert events[0]["data"]["error"] == "RuntimeError: rating exploded"
    run_id = events[0]["data"]["run_id"]
    assert run_id and run_id == run.id and events[0]["customer_id"] == "acme"
    assert world.ctx.billing.run(run_id).failed == len(messages)  # type: ignore[union-attr]

    # the same receive recorded again (a handler killed after the commit): nothing new
    job = BillingJob.model_validate_json(messages[0]["Body"])
    attempt = f"{messages[0]['MessageId']}#{app.MAX_RECEIVES}"
    assert job_failed(world.ctx, job, RuntimeError("again"), now, attempt) is False
    # a crash at the commit of a new failure writes neither the count nor the event
    with crash_with_outbox(monkeypatch), pytest.raises(Crash):
        job_failed(world.ctx, job, RuntimeError("later"), now, "m2#5")
    assert len(outbox("billing_run.failed")) == len(messages)
    assert world.ctx.billing.run(run_id).failed == len(messages)  # type: ignore[union-attr]
