"""Drafts finalize after the grace period with gapless numbers; late events within the grace revise the draft.

Late events after finalization (an adjustment on the next invoice, charged once):
``test_real_billing.test_late_events_after_finalization_become_an_adjustment_posted_once``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3

from tests.functional.billing.conftest import START, World, assert_books_agree, invoice_postings
from tests.functional.billing.helpers import day, schedule, work
from tests.support.aws import receive_all


def test_drafts_finalize_after_grace_numbered_without_gaps_and_sent_to_stripe_sync(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN two customers billed for day 0 (four drafts)
    world.subscribe("acme")
    world.subscribe("globex")
    world.usage("acme", START + day(0, 1), 3)
    now = START + day(1, 1)
    schedule(world, now)
    work(world, now, monkeypatch)
    drafts = world.invoices("acme") + world.invoices("globex")
    assert {i["status"] for i in drafts} == {"draft"}

    # WHEN the scheduler runs before, then after the grace period (one hour)
    early = schedule(world, now + timedelta(minutes=30))
    late = schedule(world, now + day(0, 2))

    # THEN only the later run finalized them, numbered 1..4 in one sequence
    assert (early.finalized, late.finalized) == (0, 4)
    finalized = world.invoices("acme") + world.invoices("globex")
    assert sorted(i["number"] for i in finalized) == [f"INV-{n:06d}" for n in range(1, 5)]
    assert {i["status"] for i in finalized} == {"finalized"}
    # AND each was sent once to Stripe sync, and a later run sends nothing again
    sent = [json.loads(m["Body"]) for m in receive_all(boto3.client("sqs"), world.sync_queue)]
    assert sorted(m["invoice_id"] for m in sent) == sorted(i["id"] for i in finalized)
    schedule(world, now + day(0, 3))
    assert receive_all(boto3.client("sqs"), world.sync_queue) == []


def test_late_events_within_grace_revise_the_draft(world: World, monkeypatch: Any) -> None:
    # GIVEN a draft for day 0 with 3 calls
    world.subscribe("acme")
    world.usage("acme", START + day(0, 1), 3)
    now = START + day(1, 1)
    schedule(world, now)
    work(world, now, monkeypatch)

    # WHEN 2 more calls of day 0 arrive before the grace ends, then the scheduler finalizes
    world.usage("acme", START + day(0, 1), 5)
    schedule(world, now + day(0, 2))

    # THEN the finalized invoice counts them, and the ledger got the difference as a revision posting
    usage = next(i for i in world.invoices("acme") if i["kind"] == "usage")
    assert (usage["status"], usage["subtotal_minor"], usage["rev"]) == ("finalized", 50, 1)
    assert usage["lines"][0]["quantity"] == 5
    keys = sorted(p.idempotency_key for p in invoice_postings("acme") if p.source_id == usage["id"])
    assert keys == [f"invoice:{usage['id']}", f"invoice:{usage['id']}:rev1"]
    assert_books_agree(world, "acme")
