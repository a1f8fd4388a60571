"""Reverting a backfill a later ``mode: replace`` backfill stands over: refused (409
``backfill_superseded`` naming the later one) before anything is written, as its restores would count
the range twice and its voids would leave the later revert giving back its events; in reverse order
(the later one first) everything comes back exactly. An event of the backfill amended by an operator
after the commit goes with the revert (its corrected copy voided too)."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import PRICE, act, calls, events, open_backfill, read, scope
from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import Killed, day
from tests.functional.billing.test_backfill_replace import (  # the world and its replace
    _day_totals,
    _rated,
    _status,
    stored,  # noqa: F401 (a fixture)
)
from tests.functional.billing.test_backfill_replace_revert import (
    ORIGINAL,
    _revert,
    replaced,  # noqa: F401 (a fixture)
)


def _later_replace(world: World, key: str = "bf-later") -> str:
    """A second replace of day 0 (2 calls, q0-*), committed after the first."""
    status, bf = open_backfill(scope(mode="replace", end=(START + day(1)).isoformat()), key=key)
    assert status == 201, bf
    assert events(bf["id"], calls("q0", START + day(0, 8), 2))[1]["rejected"] == 0
    assert act(bf["id"], "commit", key=f"c-{key}")[1]["status"] == "committed"
    assert _rated(world, 0) == 2 * PRICE
    return str(bf["id"])


def _state(world: World) -> tuple[list[str], int]:
    ids = [f"s0-{i}" for i in range(3)] + [f"r0-{i}" for i in range(5)] + [f"q0-{i}" for i in range(2)]
    return [_status(world, tx) for tx in ids], _rated(world, 0)


def _refused(backfill_id: str, later: str) -> None:
    status, answer = _revert(backfill_id, key="r-refused")
    assert status == 409, answer
    assert answer["error"]["code"] == "backfill_superseded"
    assert answer["error"]["details"] == [{"backfill_id": later}]
    assert later in answer["error"]["message"]
    assert read(f"/admin/backfills/{backfill_id}", backfill_id=backfill_id)[1]["status"] == "committed"


def test_a_replace_under_a_later_replace_is_not_reverted_first(
    world: World,
    replaced: str,  # noqa: F811 (the imported fixture)
    monkeypatch: Any,
) -> None:
    later = _later_replace(world)
    before = _state(world)

    _refused(replaced, later)

    assert _state(world) == before  # nothing restored, nothing voided


def test_in_reverse_order_everything_comes_back_exactly(
    world: World,
    replaced: str,  # noqa: F811 (the imported fixture)
    monkeypatch: Any,
) -> None:
    later = _later_replace(world)

    assert _revert(later, key="r-later")[1]["status"] == "reverted"
    assert _rated(world, 0) == 5 * PRICE  # the first replace's events back
    assert _revert(replaced)[1]["status"] == "reverted"

    assert _state(world) == (["accepted"] * 3 + ["voided"] * 7, 3 * PRICE)
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_an_add_backfill_under_a_later_replace_is_not_reverted_first(
    world: World,
    stored: None,  # noqa: F811 (the imported fixture)
    monkeypatch: Any,
) -> None:
    status, added = open_backfill(scope(end=(START + day(1)).isoformat()), key="bf-add")
    assert status == 201
    events(added["id"], calls("r0", START + day(0, 6), 5))
    assert act(added["id"], "commit", key="c-add")[1]["status"] == "committed"
    assert _rated(world, 0) == 8 * PRICE
    later = _later_replace(world)  # voids the 3 live calls and the 5 added

    _refused(added["id"], later)
    assert _rated(world, 0) == 2 * PRICE

    assert _revert(later, key="r-later")[1]["status"] == "reverted"
    assert _revert(added["id"], key="r-add")[1]["status"] == "reverted"
    assert _state(world) == (["accepted"] * 3 + ["voided"] * 7, 3 * PRICE)
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_an_earlier_replace_or_a_reverted_later_one_does_not_stand_in_the_way(
    world: World,
    replaced: str,  # noqa: F811 (the imported fixture)
    monkeypatch: Any,
) -> None:
    later = _later_replace(world)
    assert _revert(later, key="r-later")[1]["status"] == "reverted"
    # the later one reverted: the first may go; and the first reverted, the later one stays reverted
    assert _revert(replaced)[1]["status"] == "reverted"
    assert _day_totals(world, monkeypatch) == ORIGINAL


def test_two_reverts_at_once_the_earlier_waits_for_the_later(
    world: World,
    replaced: str,  # noqa: F811 (the imported fixture)
    monkeypatch: Any,
) -> None:
    from neruba.logic.billing import backfill_revert

    later = _later_replace(world)
    # GIVEN the later one's revert stopped mid-way (reverting, its invoices not corrected yet)
    with monkeypatch.context() as patch:

        def pause(*args: Any, **kwargs: Any) -> Any:
            raise Killed

        patch.setattr(backfill_revert, "correct_invoices", pause)
        with pytest.raises(Killed):
            _revert(later, key="r-later")
    assert read(f"/admin/backfills/{later}", backfill_id=later)[1]["status"] == "reverting"
    # WHEN the earlier one's revert comes meanwhile: refused until the later one is reverted
    status, answer = _revert(replaced, key="r-early")
    assert (status, answer["error"]["code"]) == (409, "backfill_superseded")
    # THEN the later finishes, and the earlier goes
    assert _revert(later, key="r-later-2")[1]["status"] == "reverted"
    assert _revert(replaced, key="r-early-2")[1]["status"] == "reverted"
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_an_event_amended_after_the_replace_goes_with_its_revert(
    world: World,
    replaced: str,  # noqa: F811 (the imported fixture)
    monkeypatch: Any,
) -> None:
    from neruba.logic.ingest.voids import VoidRequest, void_event

    # GIVEN an operator amended one of the replace's events (moved to day 1) and voided another
    now = START + day(3, 4)
    request = VoidRequest("acme", "r0-1", "wrong hour", "OPS-9", timestamp=START + day(1, 7), amend=True)
    copy = void_event(request, "key:op", "amend-1", now=now)["amended_by"]["transaction_id"]
    void_event(VoidRequest("acme", "r0-2", "duplicate", "OPS-9"), "key:op", "void-1", now=now)
    assert (_rated(world, 0), _rated(world, 1)) == (3 * PRICE, 5 * PRICE)

    done = _revert(replaced)[1]

    assert done["status"] == "reverted"
    assert _status(world, copy) == "voided"  # the corrected copy of the replace's event: its usage too
    assert (_rated(world, 0), _rated(world, 1)) == (3 * PRICE, 4 * PRICE)
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def test_a_copy_replaced_by_a_later_backfill_stands_in_the_way(
    world: World,
    replaced: str,  # noqa: F811 (the imported fixture)
    monkeypatch: Any,
) -> None:
    from neruba.logic.ingest.voids import VoidRequest, void_event

    # GIVEN one of the replace's events amended into day 1, then day 1 replaced by a later backfill
    request = VoidRequest("acme", "r0-1", "wrong hour", "OPS-9", timestamp=START + day(1, 7), amend=True)
    void_event(request, "key:op", "amend-1", now=START + day(3, 4))
    body = scope(mode="replace", start=(START + day(1)).isoformat(), end=(START + day(2)).isoformat())
    status, later = open_backfill(body, key="bf-day1")
    assert status == 201
    events(later["id"], calls("q1", START + day(1, 8), 1))
    assert act(later["id"], "commit", key="c-day1")[1]["status"] == "committed"

    _refused(replaced, later["id"])
    assert ts(START) in _day_totals(world, monkeypatch)


def _open_later() -> str:
    status, bf = open_backfill(scope(mode="replace", end=(START + day(1)).isoformat()), key="bf-later")
    assert status == 201
    events(bf["id"], calls("q0", START + day(0, 8), 2))
    return str(bf["id"])


def _stopped_revert(backfill_id: str, monkeypatch: Any) -> None:
    """A revert of ``backfill_id`` moved to ``reverting`` and stopped before its restores."""
    from neruba.logic.billing import backfill_replace

    with monkeypatch.context() as patch:

        def dying(*args: Any, **kwargs: Any) -> Any:
            raise Killed

        patch.setattr(backfill_replace, "restore_replaced", dying)
        with pytest.raises(Killed):
            _revert(backfill_id, key="r-stopped")


def test_a_replace_commit_waits_for_a_revert_over_its_range(
    world: World,
    replaced: str,  # noqa: F811 (the imported fixture)
    monkeypatch: Any,
) -> None:
    later = _open_later()
    _stopped_revert(replaced, monkeypatch)

    status, answer = act(later, "commit", key="c-later")

    assert (status, answer["error"]["code"]) == (409, "backfill_range_busy")
    assert answer["error"]["details"] == [{"backfill_id": replaced}]
    assert read(f"/admin/backfills/{later}", backfill_id=later)[1]["status"] == "open"
    assert _revert(replaced, key="r-2")[1]["status"] == "reverted"
    assert act(later, "commit", key="c-later-2")[1]["status"] == "committed"
    assert _rated(world, 0) == 2 * PRICE


def test_a_revert_starting_while_a_replace_commit_reads_makes_the_commit_try_again(
    world: World,
    replaced: str,  # noqa: F811 (the imported fixture)
    monkeypatch: Any,
) -> None:
    from neruba.logic.billing import backfill_replace

    later = _open_later()
    check = backfill_replace.check

    # GIVEN the commit read the range (nothing reverting) and a revert over it starts before it moves
    def revert_meanwhile(*args: Any, **kwargs: Any) -> None:
        check(*args, **kwargs)
        monkeypatch.setattr(backfill_replace, "check", check)
        _stopped_revert(replaced, monkeypatch)

    monkeypatch.setattr(backfill_replace, "check", revert_meanwhile)
    status, answer = act(later, "commit", key="c-later")

    # THEN the commit does not start on its stale read
    assert (status, answer["error"]["code"]) == (409, "backfill_conflict")
    assert read(f"/admin/backfills/{later}", backfill_id=later)[1]["status"] == "open"
    assert _revert(replaced, key="r-2")[1]["status"] == "reverted"
    assert _day_totals(world, monkeypatch) == ORIGINAL
