"""Property: any sequence of add backfills (events on billed days and on a draft's day, transaction ids
repeated within and across backfills, some sent live too, each commit possibly killed at one of its
steps and sent again) leaves each day billed exactly what its surviving events price at, once the next
invoice carries the corrections, and the ledger agreeing with the invoices."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import PRICE, live_events, usage_totals
from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import Killed, day, schedule, work
from tests.support.deep import size

COUNTER = itertools.count()
DAYS = 3  # days 0 and 1 finalized, day 2 a draft when the backfills commit

event = st.tuples(st.integers(0, DAYS - 1), st.integers(0, 23), st.integers(0, 11))  # day, hour, id
backfill = st.tuples(
    st.lists(event, min_size=1, max_size=8),
    st.sampled_from([None, "count_events", "correct_invoices", "finish"]),  # where its commit is killed
)


def _customer(world: World, n: int) -> str:
    from neruba.models.catalog import Customer

    name = f"prop{n}"
    world.plans.create_customer(Customer(external_id=name, name=name, currency="USD"))
    return name


def _commit(world: World, backfill_id: str, kill: str | None, monkeypatch: Any) -> None:
    from neruba.logic.billing import backfill_commit
    from neruba.logic.billing.backfill_commit import commit_backfill
    from neruba.models.backfills import BackfillAction

    body = BackfillAction(reason="property")
    if kill is not None:
        with monkeypatch.context() as patch:

            def dying(*args: Any, **kwargs: Any) -> Any:
                raise Killed

            patch.setattr(backfill_commit, kill, dying)
            with pytest.raises(Killed):
                commit_backfill(world.ctx, backfill_id, body, "key:p", f"k1-{backfill_id}")
    done = commit_backfill(world.ctx, backfill_id, body, "key:p", f"k2-{backfill_id}")
    assert done["status"] == "committed"


@pytest.mark.scaled
@settings(
    max_examples=size(3, 20), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    live=st.lists(st.integers(0, 5), min_size=DAYS, max_size=DAYS),
    backfills=st.lists(backfill, min_size=1, max_size=3),
    sent_live=st.lists(st.integers(0, 11), max_size=2),
)
def test_any_add_backfills_bill_each_day_its_surviving_events(
    world: World, monkeypatch: Any, live: list[int], backfills: list[Any], sent_live: list[int]
) -> None:
    from neruba.logic.billing.backfills import hold_events, open_backfill
    from neruba.models.backfills import BackfillCreate

    n = next(COUNTER)
    customer = _customer(world, n)
    world.subscribe(customer)
    for d, calls in enumerate(live):
        world.usage(customer, START + day(d, 0), calls)  # hour 0: no event below lands there
    for d in range(DAYS):
        at = START + day(d + 1, 3)
        schedule(world, at, customer_id=customer)
        work(world, at, monkeypatch)
    # days 0 and 1 finalized; day 2 billed as a draft
    counted: dict[str, int] = {}  # transaction id -> the day it counts on (the first one stored wins)
    if sent_live:  # some ids were sent live first (counted on day 0 at 06:00)
        ids = sorted({f"t{i}" for i in sent_live})
        live_events(world, ids, START + day(0, 6), f"live-{n}", customer)
        counted.update({tx: 0 for tx in ids})
    for k, (items, kill) in enumerate(backfills):
        body = BackfillCreate(
            customer_ids=[customer],
            meter_codes=["api_calls"],
            start=START,
            end=START + day(DAYS),
            reason="property",
        )
        opened = open_backfill(world.ctx, body, "key:p", f"p{n}-{k}")
        sent = [
            {
                "transaction_id": f"t{i}",
                "customer_id": customer,
                "code": "api_calls",
                "timestamp": (START + day(d, max(h, 1))).isoformat(),
                "properties": {},
            }
            for d, h, i in items
        ]
        result = hold_events(world.ctx, opened["id"], sent)
        for item, status in zip(sent, result["events"], strict=True):
            if status["status"] == "held":
                counted.setdefault(item["transaction_id"], int(item["timestamp"][8:10]) - 1)
        _commit(world, opened["id"], kill, monkeypatch)
    # the next window carries the corrections of the finalized days
    at = START + day(DAYS + 1, 3)
    schedule(world, at, customer_id=customer)
    work(world, at, monkeypatch)

    totals = usage_totals(world, customer)
    for d in range(DAYS):
        events = sum(1 for on in counted.values() if on == d)
        assert totals.get(ts(START + day(d)), 0) == (live[d] + events) * PRICE, (d, live, counted)
    assert_books_agree(world, customer)
