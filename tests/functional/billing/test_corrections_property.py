"""Property: any sequence of corrections (live ingests, voids, amends, add and replace backfills and their
commits, backfills holding stored ids again with other content (a replace supersedes the stored event, a
voided one is counted as new content), reverts (some 200 days later, far past the void horizon; of
replaces too), invoice reruns and credit notes; commits and reverts possibly killed at a step and sent
again)
leaves the ledger balanced, every invoice owing its total less its credit notes, and each day billed (its
usage lines plus the adjustments carried to later invoices, less what the credit notes settling its negative
adjustments took back when they took a later window invoice below zero: ``backfill_support.given_back``)
exactly what its surviving events price at."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from neruba.errors import NerubaError
from neruba.timefmt import ts
from tests.functional.billing.backfill_support import PRICE, live_events, usage_totals
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import Killed, day, schedule, work
from tests.support.deep import size

COUNTER = itertools.count()
DAYS = 3  # days 0 and 1 finalized, day 2 a draft while the corrections run
NOW = START + day(DAYS, 5)  # voids and reverts: within the void horizon of every event
LATER = START + day(200)  # an old revert: its events far past the void horizon

OPERATION = st.one_of(
    st.tuples(st.just("void"), st.integers(0, 50)),
    st.tuples(st.just("amend"), st.integers(0, 50), st.integers(0, DAYS - 1)),
    st.tuples(
        st.just("backfill"),
        st.lists(st.tuples(st.integers(0, DAYS - 1), st.integers(0, 9)), min_size=1, max_size=4),
        st.sampled_from([None, "count_events", "correct_invoices"]),
    ),
    st.tuples(
        st.just("replace"),
        st.integers(0, DAYS - 1),
        st.lists(st.integers(0, 9), max_size=3),
        st.sampled_from([None, "count_events", "correct_invoices"]),
    ),
    st.tuples(
        st.just("revert"),
        st.integers(0, 5),
        st.sampled_from([None, "restore_replaced", "void_events", "correct_invoices"]),
        st.booleans(),  # 200 days later
    ),
    st.tuples(st.just("rerun"), st.integers(0, DAYS - 1)),
    st.tuples(st.just("credit"), st.integers(0, 1), st.integers(1, 15)),
)


class Model:
    """What should survive: transaction id -> the day it counts on; the backfills, what they counted,
    what they replaced (id -> day) and the days of their range; the amends (copy -> the event amended);
    the corrected copies backfills counted under stored ids (copy -> backfill), what each superseded
    (id -> day); the ids whose event is at hour 6 (a backfill's time)."""

    def __init__(self) -> None:
        self.surviving: dict[str, int] = {}
        # (id, counted, replaced (None: an add backfill), days of its range), in commit order
        self.backfills: list[tuple[str, list[str], dict[str, int] | None, set[int]]] = []
        self.reverted: set[str] = set()
        self.amended_from: dict[str, str] = {}
        self.copied_by: dict[str, str] = {}
        self.superseded_by: dict[str, dict[str, int]] = {}
        self.at6: set[str] = set()

    def lineage(self, counted: list[str], owner: str | None = None) -> set[str]:
        """The events counted and the copies an amend made of them, copy after copy (not a copy another
        backfill than ``owner`` counted under a voided event's id)."""
        found = set(counted)
        while True:
            more = {
                copy
                for copy, tx in self.amended_from.items()
                if tx in found and self.copied_by.get(copy, owner) == owner
            } - found
            if not more:
                return found
            found |= more

    def line(self, tx: str) -> tuple[str | None, str]:
        """The surviving event of ``tx``'s line (None: all voided) and its last event."""
        last = tx
        while True:
            if last in self.surviving:
                return last, last
            nxt = [c for c, t in self.amended_from.items() if t == last]
            if not nxt:
                return None, last
            last = nxt[-1]  # the latest copy (an event restored and corrected again has several)

    def superseded(self, n: int) -> bool:
        """A later replace backfill, not reverted, over the range of backfill ``n`` or one of its events;
        or another backfill standing that voided one of its events, or corrected one it would give back."""
        backfill_id, counted, replaced, days = self.backfills[n]
        mine = self.lineage(counted, backfill_id)
        restoring = set(replaced or {}) | set(self.superseded_by.get(backfill_id, {}))
        for other, _, theirs, on in self.backfills[n + 1 :]:
            if other in self.reverted:
                continue
            if theirs is not None and (on & days or mine & set(theirs)):
                return True
        for other, gone in self.superseded_by.items():
            if other != backfill_id and other not in self.reverted and mine & set(gone):
                return True
        return any(
            self.amended_from.get(c) in restoring and b != backfill_id and b not in self.reverted
            for c, b in self.copied_by.items()
        )


def _killed(monkeypatch: Any, module: Any, step: str | None, run: Any) -> Any:
    if step is not None:
        with monkeypatch.context() as patch:

            def dying(*args: Any, **kwargs: Any) -> Any:
                raise Killed

            patch.setattr(module, step, dying)
            with pytest.raises(Killed):
                run("first")
    return run("again")


def _invoice_of(world: World, customer: str, d: int) -> list[Any]:
    """The usage invoices of day ``d`` (not void)."""
    found, _ = world.ctx.invoices.list(customer, None, 100, None)
    return [
        i for i in found if i.kind == "usage" and i.status != "void" and i.period_start == ts(START + day(d))
    ]


def _apply(world: World, model: Model, customer: str, op: tuple[Any, ...], j: int, monkeypatch: Any) -> None:
    from neruba.dal.backfills import HeldEvent
    from neruba.logic.billing import backfill_commit, backfill_replace, backfill_revert
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.logic.billing.backfill_ids import copy_transaction_id
    from neruba.logic.billing.backfills import hold_events, open_backfill
    from neruba.logic.billing.credit_notes import create_credit_note
    from neruba.logic.ingest.voids import VoidRequest, void_event
    from neruba.models.backfills import BackfillAction, BackfillCreate
    from neruba.models.billing import CreditNoteCreate, RerunRequest

    n = f"{customer}-{j}"
    kind = op[0]
    if kind in ("void", "amend") and model.surviving:
        tx = sorted(model.surviving)[op[1] % len(model.surviving)]
        if kind == "void":
            void_event(VoidRequest(customer, tx, "property", "P-1"), "key:p", f"v{n}", now=NOW)
            del model.surviving[tx]
        else:
            request = VoidRequest(
                customer, tx, "property", "P-1", timestamp=START + day(op[2], 4), amend=True
            )
            try:
                answer = void_event(request, "key:p", f"a{n}", now=NOW)
            except NerubaError as exc:  # the copy would be the event itself: nothing changes
                if exc.code != "amend_changes_nothing":
                    raise
                return
            del model.surviving[tx]
            model.surviving[str(answer["amended_by"]["transaction_id"])] = op[2]
            model.amended_from[str(answer["amended_by"]["transaction_id"])] = tx
    elif kind in ("backfill", "replace"):
        replace = kind == "replace"
        body = BackfillCreate(
            customer_ids=[customer],
            meter_codes=["api_calls"],
            start=START + day(op[1]) if replace else START,
            end=START + day(op[1] + 1) if replace else START + day(DAYS),
            mode="replace" if replace else "add",
            reason="prop",
        )
        opened = open_backfill(world.ctx, body, "key:p", f"o{n}")
        held = [(op[1], i) for i in op[2]] if replace else op[1]
        sent = [
            {
                "transaction_id": f"b{i}",
                "customer_id": customer,
                "code": "api_calls",
                "timestamp": (START + day(d, 6)).isoformat(),
                "properties": {},
            }
            for d, i in held
        ]
        # each held id (its first copy) against its line: new, standing, superseded (a replace) or, for a
        # voided line, counted as its new content; the copies are the backfill's
        plan: list[tuple[str, int, str | None, str | None]] = []  # (id, day, end standing, last voided)
        seen: set[str] = set()
        stored = world.ctx.usage.get_events((customer, e["transaction_id"]) for e in sent)
        for e in sent:
            tx, on = e["transaction_id"], int(e["timestamp"][8:10]) - 1
            if tx in seen:
                continue
            seen.add(tx)
            if (customer, tx) not in stored:
                plan.append((tx, on, None, None))
                continue
            end, last = model.line(tx)
            plan.append((tx, on, end, None if end is not None else last))
        # a replace voids the surviving events of its day, but for the ends of the lines it holds
        ends = {end for _, _, end, _ in plan if end is not None}
        ids = {e["transaction_id"] for e in sent}
        replaced = {
            tx: on
            for tx, on in model.surviving.items()
            if replace and on == op[1] and tx not in ids and tx not in ends
        }
        hold_events(world.ctx, opened["id"], sent)
        action = BackfillAction(reason="prop")
        done = _killed(
            monkeypatch,
            backfill_commit,
            op[3] if replace else op[2],
            lambda k: backfill_commit.commit_backfill(world.ctx, opened["id"], action, "key:p", f"c{n}{k}"),
        )
        assert done["status"] == "committed"
        assert done["committed"]["events_replaced"] == len(replaced), (done, replaced)
        for tx in replaced:
            del model.surviving[tx]
        counted: list[str] = []
        superseded: dict[str, int] = {}
        for tx, on, end, last in plan:
            copy = copy_transaction_id(opened["id"], HeldEvent(customer, tx, "", {}))
            if end is None and last is None:  # never stored: counted under its id
                counted.append(tx)
                model.surviving[tx] = on
                model.at6.add(tx)
            elif end is not None and end in model.at6 and model.surviving[end] == on:
                continue  # the same content: it stands
            elif end is not None and not replace:
                continue  # an add keeps the stored event
            else:  # superseded (its end voided) or a voided line: the held content as a corrected copy
                if end is not None:
                    superseded[end] = model.surviving.pop(end)
                model.amended_from[copy] = end or str(last)
                model.copied_by[copy] = opened["id"]
                counted.append(copy)
                model.surviving[copy] = on
                model.at6.add(copy)
        assert done["committed"]["events_superseded"] == len(superseded), (done, superseded)
        model.superseded_by[opened["id"]] = superseded
        days = {op[1]} if replace else set(range(DAYS))
        model.backfills.append((opened["id"], counted, replaced if replace else None, days))
    elif kind == "revert" and model.backfills:
        index = op[1] % len(model.backfills)
        backfill_id, counted, replaced, _ = model.backfills[index]
        action = BackfillAction(reason="prop revert")
        if backfill_id not in model.reverted and model.superseded(index):  # refused, nothing written
            with pytest.raises(NerubaError) as refused:
                backfill_revert.revert_backfill(world.ctx, backfill_id, action, "key:p", f"r{n}", None, NOW)
            assert refused.value.code == "backfill_superseded"
            return
        step = op[2] if backfill_id not in model.reverted else None
        if step == "restore_replaced" and not (replaced or model.superseded_by.get(backfill_id)):
            step = None  # nothing to give back
        done = _killed(
            monkeypatch,
            backfill_replace if step == "restore_replaced" else backfill_revert,
            step,
            lambda k: backfill_revert.revert_backfill(
                world.ctx, backfill_id, action, "key:p", f"r{n}{k}", None, LATER if op[3] else NOW
            ),
        )
        assert done["status"] == "reverted"
        if backfill_id not in model.reverted:
            model.surviving.update(replaced or {})  # given back first, then the backfill's own voided
            model.surviving.update(model.superseded_by.get(backfill_id, {}))
            for tx in model.lineage(counted, backfill_id):
                model.surviving.pop(tx, None)  # with an operator's amended copies (a voided one is out)
            model.reverted.add(backfill_id)
    elif kind == "rerun":
        for invoice in _invoice_of(world, customer, op[1]):
            rerun_invoice(world.ctx, invoice.id, RerunRequest(reason="prop rerun"), "key:p", f"rr{n}")
    elif kind == "credit":
        for invoice in _invoice_of(world, customer, op[1]):
            line = next(
                (x for x in invoice.document["lines"] if x["kind"] == "usage" and x["amount_minor"] > 0), None
            )
            if line is None or invoice.status != "finalized":
                continue
            body = CreditNoteCreate.model_validate(
                {"lines": [{"line_id": line["line_id"], "amount_minor": op[2]}], "reason": "goodwill"}
            )
            try:
                create_credit_note(world.ctx, invoice.id, body, "key:p", f"cn{n}")
            except NerubaError as exc:  # more than the line has left to credit: refused, nothing written
                if exc.code != "credit_note_exceeds_creditable":
                    raise


@pytest.mark.scaled
@settings(
    max_examples=size(3, 30),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: a failure prints its operations
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(live=st.lists(st.integers(0, 3), min_size=DAYS, max_size=DAYS), ops=st.lists(OPERATION, max_size=6))
# a replace reverted 200 days later, killed after its restores; another replaced by a later one over it
@example(
    live=[2, 1, 3],
    ops=[
        ("replace", 0, [1, 2], "count_events"),
        ("void", 3),
        ("revert", 0, "restore_replaced", True),
        ("rerun", 0),
    ],
)
@example(
    live=[1, 2, 0],
    ops=[
        ("replace", 1, [4], None),
        ("amend", 0, 1),
        ("replace", 1, [5, 6], "correct_invoices"),
        ("revert", 1, "void_events", True),
        ("revert", 0, "correct_invoices", False),
        ("credit", 1, 5),
    ],
)
# reverted out of order (refused), then in order; an add backfill's event amended, then it reverted
@example(
    live=[2, 1, 0],
    ops=[
        ("replace", 0, [1, 2], None),
        ("replace", 0, [3], None),
        ("revert", 0, None, True),
        ("revert", 1, "restore_replaced", True),
        ("revert", 0, None, False),
    ],
)
@example(
    live=[1, 0, 1],
    ops=[
        ("backfill", [(0, 1), (1, 2)], None),
        ("amend", 0, 2),
        ("revert", 0, "void_events", False),
    ],
)
# a replace holding an add backfill's id with other content (another day): it supersedes it; reverted
# out of order (refused), then newest first, the replace's revert killed after its restores
@example(
    live=[1, 1, 0],
    ops=[
        ("backfill", [(0, 1)], None),
        ("replace", 1, [1], "count_events"),
        ("revert", 0, None, False),
        ("revert", 1, "restore_replaced", True),
        ("revert", 0, "void_events", False),
    ],
)
# a backfill's event reverted (voided), then the same id held again: counted as its new content; and a
# replace holding it once more with the same content (it stands)
@example(
    live=[0, 1, 1],
    ops=[
        ("backfill", [(1, 3)], None),
        ("revert", 0, None, False),
        ("backfill", [(2, 3)], "correct_invoices"),
        ("replace", 2, [3], None),
        ("revert", 2, "void_events", True),
    ],
)
# an operator's credit note takes most of day 0's line, then a void takes day 3's window below zero: the
# settling note takes what the line has left, the rest was taken back by the operator's note already
@example(live=[2, 0, 0], ops=[("credit", 0, 15), ("void", 0)])
def test_any_corrections_keep_the_books_and_each_day_billed_its_surviving_events(
    world: World, monkeypatch: Any, live: list[int], ops: list[tuple[Any, ...]]
) -> None:
    from neruba.logic.sweeps.receivable import invoice_owed, receivable_by_invoice
    from neruba.models.catalog import Customer
    from tests.functional.billing.conftest import ledger

    customer = f"corr{next(COUNTER)}"
    world.plans.create_customer(Customer(external_id=customer, name=customer, currency="USD"))
    world.subscribe(customer)
    model = Model()
    for d, calls in enumerate(live):
        ids = [f"l{d}-{i}" for i in range(calls)]
        if ids:
            live_events(world, ids, START + day(d, 2), f"live-{customer}-{d}", customer)
            model.surviving.update({tx: d for tx in ids})
    for d in range(DAYS):
        at = START + day(d + 1, 3)
        schedule(world, at, customer_id=customer)
        work(world, at, monkeypatch)

    for j, op in enumerate(ops):
        _apply(world, model, customer, op, j, monkeypatch)

    at = START + day(DAYS + 1, 3)  # the next window carries (or settles) the finalized days' corrections
    schedule(world, at, customer_id=customer)
    work(world, at, monkeypatch)

    totals = usage_totals(world, customer)
    for d in range(DAYS):
        expected = sum(1 for on in model.surviving.values() if on == d) * PRICE
        assert totals.get(ts(START + day(d)), 0) == expected, (d, ops, model.surviving)
    repo = ledger()
    assert repo.reconcile(customer) == []
    postings, _ = repo.postings(customer, 1000)
    owed, _ = receivable_by_invoice(postings)
    for invoice in world.ctx.invoices.of_customer(customer):
        assert owed.get(invoice.id, 0) == invoice_owed(invoice), invoice.id
        assert int(invoice.document.get("credited_minor") or 0) <= max(invoice.total_minor, 0)
