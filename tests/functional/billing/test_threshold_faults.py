"""Threshold invoices under faults (real pricing, credits and ledger on moto): two evaluations at once, a
process killed before or after the transaction, a redelivered check, and a threshold invoice racing
the period-end invoice never bill a crossing twice or leave it unbilled, and the books agree."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.logic.billing import threshold_invoices
from neruba.logic.billing import worker as billing_worker
from neruba.logic.billing.threshold_invoices import evaluate_customer
from neruba.logic.billing.worker import ensure_billing_state
from tests.functional.billing.conftest import START, World, assert_books_agree, invoice_postings
from tests.functional.billing.helpers import Killed, billing_state, day, schedule, work
from tests.functional.billing.test_threshold_invoices import by_kind, opened, thr  # noqa: F401

NOW = START + day(0, 3)


STATES = ["opened", "opening_due", "no_state"]


@pytest.fixture(params=STATES)
def state(request: Any) -> str:
    """Where billing of acme's subscription stands when its usage crosses the threshold: its opening
    billed, the opening still due (the state at window 0), or no billing state at all yet."""
    return str(request.param)


def _crossed(world: World, monkeypatch: Any, state: str = "opened") -> dict[str, Any]:
    """acme's open period holds 60 calls (600): over its threshold of 500, nothing invoiced early yet."""
    if state == "opened":
        sub = opened(world, monkeypatch)
    else:
        sub = world.subscribe("acme")
        if state == "opening_due":
            ensure_billing_state(world.ctx.billing, sub)
    world.usage("acme", START + day(0, 2), 60)
    return sub


def _one_threshold_invoice(world: World, amount: int = 600) -> dict[str, Any]:
    [early] = by_kind(world, "acme", "threshold")
    assert (early["status"], early["subtotal_minor"]) == ("finalized", amount)
    assert [p.idempotency_key for p in invoice_postings("acme")].count(f"invoice:{early['id']}") == 1
    assert_books_agree(world, "acme")
    return early


def test_two_evaluations_at_once_issue_one_invoice(thr: World, monkeypatch: Any, state: str) -> None:  # noqa: F811
    # GIVEN a crossing, and a second evaluation that commits while the first is about to
    _crossed(thr, monkeypatch, state)
    real_commit = threshold_invoices.commit
    inner: list[Any] = []

    def other_first(unit: Any) -> None:
        if not inner:
            monkeypatch.setattr(threshold_invoices, "commit", real_commit)
            inner.extend(evaluate_customer(thr.ctx, "acme", NOW))
        real_commit(unit)

    monkeypatch.setattr(threshold_invoices, "commit", other_first)

    # WHEN the first evaluation commits
    outer = evaluate_customer(thr.ctx, "acme", NOW)

    # THEN the other one issued the invoice and this one lost the race: one invoice, one posting
    assert [e.outcome for e in inner] == ["issued"]
    assert [e.outcome for e in outer] == ["raced"]
    _one_threshold_invoice(thr)


def test_killed_before_the_transaction_then_checked_again(thr: World, monkeypatch: Any, state: str) -> None:  # noqa: F811
    _crossed(thr, monkeypatch, state)
    real_commit = threshold_invoices.commit

    def dies(unit: Any) -> None:
        raise Killed

    monkeypatch.setattr(threshold_invoices, "commit", dies)
    with pytest.raises(Killed):
        evaluate_customer(thr.ctx, "acme", NOW)
    assert by_kind(thr, "acme", "threshold") == []  # nothing was written

    monkeypatch.setattr(threshold_invoices, "commit", real_commit)
    assert [e.outcome for e in evaluate_customer(thr.ctx, "acme", NOW)] == ["issued"]
    _one_threshold_invoice(thr)


@pytest.mark.parametrize("recovered_by", ["the next check", "the scheduler"])
def test_killed_after_the_transaction_before_finalizing(
    thr: World,  # noqa: F811
    monkeypatch: Any,
    recovered_by: str,
    state: str,
) -> None:
    # GIVEN an evaluation whose process dies right after its transaction (a draft due now is left)
    _crossed(thr, monkeypatch, state)
    real_issue = threshold_invoices.issue_now

    def dies(*args: Any) -> None:
        raise Killed

    monkeypatch.setattr(threshold_invoices, "issue_now", dies)
    with pytest.raises(Killed):
        evaluate_customer(thr.ctx, "acme", NOW)
    [draft] = by_kind(thr, "acme", "threshold")
    assert draft["status"] == "draft"
    monkeypatch.setattr(threshold_invoices, "issue_now", real_issue)

    # WHEN the customer is checked again (a redelivered check), or the scheduler runs
    if recovered_by == "the next check":
        assert [e.outcome for e in evaluate_customer(thr.ctx, "acme", NOW)] == ["below"]
    else:
        schedule(thr, NOW)

    # THEN the same invoice is finalized and numbered, and no second one is issued
    early = _one_threshold_invoice(thr)
    assert early["id"] == draft["id"] and early["number"]


def test_a_threshold_invoice_racing_the_period_end_is_deducted(
    thr: World,  # noqa: F811
    monkeypatch: Any,
    state: str,
) -> None:
    # GIVEN the period ended over the threshold, and a threshold evaluation (with a clock still in the
    # period) commits between the period-end worker's read of the state and its transaction
    sub = _crossed(thr, monkeypatch, state)
    real_commit = billing_worker.commit
    raced: list[Any] = []

    def threshold_first(unit: Any) -> None:
        if not raced:
            raced.extend(evaluate_customer(thr.ctx, "acme", START + day(0, 23)))
        real_commit(unit)

    monkeypatch.setattr(billing_worker, "commit", threshold_first)
    end = START + day(1, 1)
    schedule(thr, end)
    work(thr, end, monkeypatch)

    # THEN the period-end transaction was refused and retried: it deducts the threshold invoice
    assert [e.outcome for e in raced] == ["issued"]
    early = _one_threshold_invoice(thr)
    [usage] = by_kind(thr, "acme", "usage")
    assert [(line["kind"], line["amount_minor"]) for line in usage["lines"]] == [
        ("usage", 600),
        ("threshold_deduction", -600),
    ]
    assert usage["lines"][1]["references"]["threshold_invoices"] == [early["id"]]
    assert billing_state(thr, sub["id"]).next_seq == 2


def test_a_threshold_evaluation_after_the_period_end_issues_nothing(
    thr: World,  # noqa: F811
    monkeypatch: Any,
    state: str,
) -> None:
    # GIVEN an evaluation that read the open period, and the period-end invoice committing first
    _crossed(thr, monkeypatch, state)
    real_commit = threshold_invoices.commit
    end = START + day(1, 1)

    def period_end_first(unit: Any) -> None:
        schedule(thr, end)
        work(thr, end, monkeypatch)
        real_commit(unit)

    monkeypatch.setattr(threshold_invoices, "commit", period_end_first)

    # WHEN the evaluation commits
    found = evaluate_customer(thr.ctx, "acme", START + day(0, 23))

    # THEN it is refused: the period-end invoice bills the whole period, nothing is billed twice
    assert [e.outcome for e in found] == ["raced"]
    assert by_kind(thr, "acme", "threshold") == []
    [usage] = by_kind(thr, "acme", "usage")
    assert usage["subtotal_minor"] == 600
    assert_books_agree(thr, "acme")
