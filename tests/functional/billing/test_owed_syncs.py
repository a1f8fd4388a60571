"""Every committed document reaches Stripe once, whatever stops between its transaction and its sync
message (docs/billing.md, "Every committed document reaches Stripe"): the transaction marks the document
owed, and the scheduler or the billing sweep sends what a stopped process left, however long ago; two
sweeps at once send it once, and Stripe gets one object.

Faults are injected by killing the process at its first queue send after the commit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import START, World
from tests.functional.billing.credit_note_support import issue
from tests.functional.billing.helpers import Killed, day, queued, schedule
from tests.functional.billing.test_real_correction import BILLED_CALLS, api, ended, fake, rerun, sync_all

__all__ = ["api", "fake"]  # fixtures, used by name


def _killed(*args: Any, **kwargs: Any) -> list[str]:
    raise Killed


def _sweep(ctx: Any, at: datetime) -> dict[str, Any]:
    from neruba import bootstrap
    from neruba.logic.sweeps.runner import run_sweep

    report = run_sweep(bootstrap.ops(), ["billing"], at - timedelta(hours=1), at, trigger="test", actor="t",
                       billing=lambda: ctx, now=at)  # fmt: skip
    (check,) = report["checks"]
    return dict(check)


def _owed_repairs(check: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["kind"], r.get("credit_note_id") or r["invoice_id"]) for r in check["repairs"]
            if r["kind"] in ("credit_note_sync_sent", "void_sync_sent")]  # fmt: skip


def test_a_correction_stopped_before_its_credit_note_was_sent_reaches_stripe_once(
    real: World, api: Any, fake: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal import queue
    from neruba.logic.billing import sync_due

    # GIVEN the final window of an ended subscription in Stripe, later recounted 2 calls lower
    final = ended(real, monkeypatch)
    sync_all()
    real.usage("acme", START + day(0, 4), BILLED_CALLS - 2)
    # WHEN the rerun settles it by a credit note and stops right after its transaction
    with monkeypatch.context() as patch:
        patch.setattr(queue, "send_batch", _killed)
        with pytest.raises(Killed):
            rerun(api, final["id"], "rr-neg")
    stored = real.ctx.invoices.get(final["id"])
    assert stored is not None
    (note_id,) = [str(n["id"]) for n in stored.document["credit_notes"]]
    assert [m for m in queued(real.sync_queue) if "credit_note_id" in m] == []

    # AND two sweeps run at once three days later: the second read the owed documents before the first
    # sent them
    later = datetime.now(UTC) + timedelta(days=3)
    seen = sync_due.owed(real.ctx, later)
    first = _sweep(real.ctx, later)
    with monkeypatch.context() as patch:
        patch.setattr(sync_due, "owed", lambda ctx, before: seen)
        second = _sweep(real.ctx, later)
    sync_all()

    # THEN the credit note was sent once, and Stripe has one credit note for it
    assert _owed_repairs(first) == [("credit_note_sync_sent", note_id)]
    assert _owed_repairs(second) == []
    assert {"kind": "credit_note_sync", "credit_note_id": note_id} in second["details"]["in_flight"]
    made = [n for n in fake.credit_notes.values() if n["metadata"]["neruba_credit_note_id"] == note_id]
    assert len(made) == 1
    note = real.ctx.billing.credit_notes.get(note_id)
    assert note is not None and note["stripe"]["credit_note_id"] == made[0]["id"]
    # AND a second worker that read the note before the first stored its Stripe id makes none either (the
    # call carries the note's own Stripe idempotency key)
    real.ctx.billing.credit_notes.set_stripe(note_id, {})
    assert sync_due.send_credit_note(real.ctx, note_id)
    sync_all()
    assert [n["id"] for n in fake.credit_notes.values()] == [made[0]["id"]]
    # AND nothing is owed any more: a later sweep sends nothing
    assert sync_due.owed(real.ctx, later + timedelta(days=1)) == []
    assert _owed_repairs(_sweep(real.ctx, later + timedelta(days=1))) == []


def test_an_operator_credit_note_stopped_before_its_send_is_sent_by_the_scheduler(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal import queue
    from neruba.logic.billing import credit_notes
    from neruba.models.billing import CreditNoteCreate

    inv = issue(world, [("a", 1000, "1")])
    with monkeypatch.context() as patch:
        patch.setattr(queue, "send_batch", _killed)
        with pytest.raises(Killed):
            credit_notes.create_credit_note(
                world.ctx, inv, CreditNoteCreate(reason="overbilled"), "key:t", "k1"
            )
    stored = world.ctx.invoices.get(inv)
    assert stored is not None
    (note_id,) = [str(n["id"]) for n in stored.document["credit_notes"]]

    # the scheduler leaves a note just written to its writer, then sends what is left, once
    now = datetime.now(UTC)
    schedule(world, now)
    assert [m for m in queued(world.sync_queue) if "credit_note_id" in m] == []
    schedule(world, now + timedelta(minutes=10))
    schedule(world, now + timedelta(minutes=20))
    assert [m["credit_note_id"] for m in queued(world.sync_queue) if "credit_note_id" in m] == [note_id]


def test_a_void_stopped_before_its_stripe_message_is_sent_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal import queue
    from neruba.logic.billing.void import void_invoice
    from neruba.models.billing import InvoiceVoid

    # GIVEN a void whose process stops at its first send after the transaction
    old = issue(world, [("a", 1000, "1")])
    with monkeypatch.context() as patch:
        patch.setattr(queue, "send_batch", _killed)
        with pytest.raises(Killed):
            void_invoice(world.ctx, old, InvoiceVoid(reason="wrong address"), "key:t", "v1")
    assert [m for m in queued(world.sync_queue) if "void_invoice_id" in m] == []

    # WHEN the scheduler runs after the writer's lag, then the sweep
    later = datetime.now(UTC) + timedelta(minutes=10)
    schedule(world, later)
    swept = _sweep(world.ctx, later + timedelta(hours=1))

    # THEN the void is sent once, and the replacement's invoice sync is sent too
    messages = queued(world.sync_queue)
    assert [m["void_invoice_id"] for m in messages if "void_invoice_id" in m] == [old]
    voided = world.ctx.invoices.get(old)
    assert voided is not None and voided.document["replaced_by"]
    assert voided.document["replaced_by"] in [m.get("invoice_id") for m in messages]
    assert _owed_repairs(swept) == []


def test_a_void_whose_message_was_lost_is_sent_by_the_sweep_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal import queue
    from neruba.logic.billing.void import void_invoice
    from neruba.models.billing import InvoiceVoid

    old = issue(world, [("a", 1000, "1")])
    real_send = queue.send_batch

    def refuse_voids(url: str, entries: list[tuple[str, str]]) -> list[str]:
        if any("void_invoice_id" in body for _, body in entries):
            return [entry_id for entry_id, _ in entries]  # the queue refuses it
        return real_send(url, entries)

    monkeypatch.setattr(queue, "send_batch", refuse_voids)
    void_invoice(world.ctx, old, InvoiceVoid(reason="wrong address"), "key:t", "v1")
    monkeypatch.setattr(queue, "send_batch", real_send)

    later = datetime.now(UTC) + timedelta(days=2)
    first, second = _sweep(world.ctx, later), _sweep(world.ctx, later + timedelta(minutes=5))
    assert _owed_repairs(first) == [("void_sync_sent", old)]
    assert _owed_repairs(second) == []
    assert [m["void_invoice_id"] for m in queued(world.sync_queue) if "void_invoice_id" in m] == [old]


def test_the_migration_marks_documents_written_before_the_mark_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from neruba.dal import queue
    from neruba.logic.billing import sync_due
    from neruba.logic.billing.credit_notes import create_credit_note
    from neruba.logic.billing.void import void_invoice
    from neruba.migrations import MigrationContext
    from neruba.migrations.m0006_owed_stripe_syncs import apply
    from neruba.models.billing import CreditNoteCreate, InvoiceVoid
    from neruba.settings import get_settings

    # GIVEN a credit note and a void whose messages were lost, written before the mark (no mark stored),
    # and a credit note already in Stripe
    credited, voided, synced = (issue(world, [("a", 1000, "1")], name=f"inv-{n}") for n in range(3))

    def lost(url: str, entries: list[tuple[str, str]]) -> list[str]:
        return [entry_id for entry_id, _ in entries]

    monkeypatch.setattr(queue, "send_batch", lost)
    note = create_credit_note(world.ctx, credited, CreditNoteCreate(reason="overbilled"), "key:t", "c1")
    other = create_credit_note(world.ctx, synced, CreditNoteCreate(reason="overbilled"), "key:t", "c2")
    void_invoice(world.ctx, voided, InvoiceVoid(reason="wrong address"), "key:t", "v1")
    world.ctx.billing.credit_notes.set_stripe(
        str(other["id"]), {"credit_note_id": "cn_S", "status": "synced"}
    )
    table = get_settings().billing_table
    for pk in (f"CN#{note['id']}", f"CN#{other['id']}", f"INV#{voided}"):
        boto3.client("dynamodb").update_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "#"}},
                                             UpdateExpression="REMOVE due_shard, due_at")  # fmt: skip
    later = datetime.now(UTC) + timedelta(hours=1)
    assert sync_due.owed(world.ctx, later) == []
    # WHEN the migration runs, twice
    ctx = MigrationContext(settings=get_settings(), now=later)
    assert apply(ctx) == {"credit_notes": 1, "voids": 1}
    assert apply(ctx) == {"credit_notes": 0, "voids": 0}
    # THEN the unsent credit note and void are owed; the one in Stripe is not
    assert sorted((o.kind, o.document_id) for o in sync_due.owed(world.ctx, later)) == sorted(
        [("credit_note", str(note["id"])), ("void", voided)]
    )


@pytest.mark.parametrize("stop", ["before_finalizing", "before_sending"])
def test_a_one_off_invoiced_at_once_whose_request_stopped_is_finalized_and_sent_once(
    world: World, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    from neruba.dal import queue
    from neruba.logic.billing import finalize
    from neruba.logic.billing.one_off import create_charge
    from neruba.models.billing import OneOffChargeCreate

    fee = {"description": "Setup fee", "amount_minor": 25000, "currency": "USD", "reason": "onboarding",
           "mode": "invoice_now"}  # fmt: skip
    body = OneOffChargeCreate.model_validate(fee)
    with monkeypatch.context() as patch:
        if stop == "before_finalizing":
            patch.setattr(finalize, "finalize_invoice", _killed)
        else:
            patch.setattr(queue, "send_batch", _killed)
        with pytest.raises(Killed):
            create_charge(world.ctx, "acme", body, "key:t", "o-1")
    assert [m for m in queued(world.sync_queue) if "invoice_id" in m] == []

    # the scheduler finalizes it (if it was left a draft) and sends it, once
    later = datetime.now(UTC) + timedelta(minutes=10)
    schedule(world, later)
    schedule(world, later + timedelta(minutes=10))
    [invoice] = world.invoices("acme")
    assert (invoice["kind"], invoice["status"]) == ("one_off", "finalized")
    assert [m["invoice_id"] for m in queued(world.sync_queue) if "invoice_id" in m] == [invoice["id"]]


def test_a_corrections_sweep_stopped_after_its_transaction_leaves_the_credit_note_owed(
    real: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba import bootstrap
    from neruba.dal import queue
    from neruba.logic.sweeps.runner import run_sweep

    # GIVEN the final window of an ended subscription, recounted 2 calls lower
    final = ended(real, monkeypatch)
    real.usage("acme", START + day(0, 4), BILLED_CALLS - 2)
    at = START + day(2)
    # WHEN the corrections sweep credits it and stops at its first send after the transaction
    with monkeypatch.context() as patch:
        patch.setattr(queue, "send_batch", _killed)
        with pytest.raises(Killed):
            run_sweep(bootstrap.ops(), ["corrections"], at - timedelta(hours=2), at, trigger="cli", actor="t",
                      billing=lambda: real.ctx, now=at)  # fmt: skip
    stored = real.ctx.invoices.get(final["id"])
    assert stored is not None
    (note_id,) = [str(n["id"]) for n in stored.document["credit_notes"]]
    # THEN the next corrections sweep has nothing left to bill, and the billing check sends the note, once
    again = run_sweep(bootstrap.ops(), ["corrections"], at, at + timedelta(hours=1), trigger="cli", actor="t",
                      billing=lambda: real.ctx, now=at + timedelta(hours=1))  # fmt: skip
    assert again["checks"][0]["repairs"] == []
    later = at + timedelta(days=3)
    first, second = _sweep(real.ctx, later), _sweep(real.ctx, later + timedelta(hours=1))
    assert _owed_repairs(first) == [("credit_note_sync_sent", note_id)]
    assert _owed_repairs(second) == []
    assert [m["credit_note_id"] for m in queued(real.sync_queue) if "credit_note_id" in m] == [note_id]
