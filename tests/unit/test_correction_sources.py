"""How a correction line's money is shared among the backfills whose events it carries
(logic/billing/correction_sources.py)."""

from __future__ import annotations

from typing import Any

from neruba.dal.backfills import Backfill
from neruba.logic.billing.correction_sources import Attribution, _share


def _backfill(backfill_id: str) -> Backfill:
    doc = {"id": backfill_id, "reason": f"why {backfill_id}", "ticket": None, "customer_ids": ["acme"]}
    return Backfill(backfill_id, "committed", 1, doc)


def _attribution(parts: list[tuple[str, int]]) -> Attribution:
    found = Attribution.__new__(Attribution)
    found.deltas, found.own, found.levels, found.absorbed = [], None, set(), {}
    found.parts = [(_backfill(b), {"l1": amount}) for b, amount in parts]
    return found


def _delta(amount: int, gross: int) -> dict[str, Any]:
    return {"amount_minor": amount, "gross_minor": gross, "references": {"line_id": "l1"}, "source": {}}


def test_a_share_rounds_half_away_from_zero() -> None:
    assert [_share(90, 1, 3), _share(-90, 1, 3), _share(10, 1, 4), _share(-10, 1, 4)] == [30, -30, 3, -3]
    assert _share(10, 5, 0) == 0


def test_backfills_accounting_for_the_whole_line_share_all_its_money() -> None:
    # 100 before a 10% discount: 90, split 1:2 -> 30 and 60; 10 split 1:1:1 leaves no penny over
    delta = _delta(90, 100)
    _attribution([("a", 33), ("b", 67)]).name_lines([delta])
    assert [n["amount_minor"] for n in delta["source"]["backfills"]] == [30, 60]
    assert "other_minor" not in delta["source"] and delta["source"]["backfill"]["backfill_id"] == "a"
    delta = _delta(10, 30)
    _attribution([("a", 10), ("b", 10), ("c", 10)]).name_lines([delta])
    assert sum(n["amount_minor"] for n in delta["source"]["backfills"]) == 10


def test_what_no_backfill_accounts_for_is_other() -> None:
    delta = _delta(10, 10)
    _attribution([("a", 20)]).name_lines([delta])
    assert (delta["source"]["backfills"][0]["amount_minor"], delta["source"]["other_minor"]) == (20, -10)
    plain = _delta(10, 10)
    _attribution([]).name_lines([plain])
    assert plain["source"] == {}
