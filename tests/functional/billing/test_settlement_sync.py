"""The credit notes a window's settlement or a draft's revision issues reach Stripe sync right after the
commit (docs/billing.md, "Every committed document reaches Stripe": the writer sends the message right
after its commit), not only when the scheduler finds the marker older than ``SCHEDULER_LAG``. A process
stopped before the send leaves the marker to the scheduler, as for every other writer. Real pricing
(1.00 per API call, daily windows)."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import pytest

from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import Killed, day, queued, schedule
from tests.functional.billing.test_event_void_billing import _bill, _events, _void
from tests.functional.billing.test_negative_final_invoice import _credit_notes
from tests.functional.billing.test_negative_revised_draft import _draft_at_100
from tests.functional.billing.test_negative_window_invoice import _day0_billed, _usage


def _sent_notes(real: World) -> list[str]:
    return [str(m["credit_note_id"]) for m in queued(real.sync_queue) if "credit_note_id" in m]


def _owed(real: World, at: Any) -> list[str]:
    from neruba.dal.billing import DUE_SHARDS

    return [i for s in range(DUE_SHARDS) for i in real.ctx.billing.credit_notes.sync_pending(s, at)]


def _window_below_zero(real: World, monkeypatch: Any) -> dict[str, Any]:
    first, _sub = _day0_billed(real, monkeypatch)
    for n, tx in enumerate("abc"):
        assert _void(tx, START + day(2, 4), f"v{n}")["correction"] == "completed"
    _events("f", at=START + day(1, 5))
    _events("g", at=START + day(2, 2))
    return first


def test_the_notes_a_window_settlement_issues_are_sent_right_after_its_commit(
    real: World, monkeypatch: Any
) -> None:
    first = _window_below_zero(real, monkeypatch)
    # WHEN day 2's window is billed below zero (its -300 settled by a note on day 0's invoice)
    _bill(real, START + day(3, 1), monkeypatch)
    # THEN the note's sync message is on StripeSyncQueue before any scheduler run, its marker gone
    (note,) = _credit_notes(real, first["id"])
    assert _sent_notes(real) == [note["id"]]
    assert _owed(real, START + day(30)) == []


def test_a_window_stopped_before_the_send_leaves_its_note_to_the_scheduler(
    real: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.billing import sync_due

    first = _window_below_zero(real, monkeypatch)

    stopped: list[Any] = []

    def killed(*args: Any, **kwargs: Any) -> bool:
        stopped.append(args[1])
        raise Killed

    # WHEN the window's process stops right after its transaction, before the send (the worker's
    # batch records the message as failed; its redelivery finds the window billed)
    with monkeypatch.context() as patch:
        patch.setattr(sync_due, "send", killed)
        with contextlib.suppress(Killed):
            _bill(real, START + day(3, 1), monkeypatch)
    assert len(stopped) == 1
    (note,) = _credit_notes(real, first["id"])
    assert _sent_notes(real) == []
    assert _owed(real, START + day(30)) == [note["id"]]
    # THEN the scheduler sends it once the lag has passed, and once only
    schedule(real, START + day(3, 1) + timedelta(minutes=10))
    schedule(real, START + day(3, 1) + timedelta(minutes=20))
    assert _sent_notes(real) == [note["id"]]
    assert _owed(real, START + day(30)) == []


def test_the_notes_a_finalize_revision_issues_are_sent_right_after_its_commit(
    real: World, monkeypatch: Any
) -> None:
    first, _sub = _draft_at_100(real, monkeypatch)
    assert _sent_notes(real) == []
    # WHEN the draft is finalized, revised below zero (its -300 settled by a note)
    schedule(real, START + day(3, 3))
    # THEN the note is sent with the revision's commit, not an hour later
    (note,) = _credit_notes(real, first["id"])
    assert _sent_notes(real) == [note["id"]]
    assert _owed(real, START + day(30)) == []


def test_the_notes_an_operators_draft_rerun_issues_are_sent_right_after_its_commit(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.models.billing import RerunRequest

    first, _sub = _draft_at_100(real, monkeypatch)
    draft_id = _usage(real, 2)["id"]
    rerun_invoice(real.ctx, draft_id, RerunRequest(reason="voids"), "key:ops", "rr-1", now=START + day(3, 2))
    (note,) = _credit_notes(real, first["id"])
    assert _sent_notes(real) == [note["id"]]
    assert _owed(real, START + day(30)) == []
