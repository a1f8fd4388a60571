"""The one rule giving back what grants paid of a corrected line (docs/billing.md, "Usage a credit grant
paid, corrected"): money first, then the grants in reverse of their application order, never more than
each paid less what it got back, never more than the line still bills."""

from __future__ import annotations

from typing import Any

from neruba.dal.invoices import invoice_record
from neruba.dal.ledger import RestoredGrant
from neruba.logic.billing.grant_restores import split


def _invoice(applications: list[dict[str, Any]]) -> Any:
    return invoice_record({"id": "in_x", "lines": [], "applications": applications})


APPS = [
    {"grant_id": "g1", "line_id": "l", "amount_minor": 300},
    {"grant_id": "g2", "line_id": "l", "amount_minor": 100},
]


def test_money_first_then_the_grants_in_reverse_of_their_application_order() -> None:
    budget = {("in_x", "l"): 500}  # 400 grants, 100 money
    parts = split({"a": 350}, {"a": ("in_x", "l")}, budget, {"in_x": _invoice(APPS)}, {})
    assert parts == [("a", "g2", 100), ("a", "g1", 150)]
    assert budget == {("in_x", "l"): 250}


def test_two_lines_of_one_corrected_line_share_its_money_part_once() -> None:
    budget = {("in_x", "l"): 500}
    refs = {"a": ("in_x", "l"), "b": ("in_x", "l")}
    parts = split({"a": 100, "b": 100}, refs, budget, {"in_x": _invoice(APPS)}, {})
    assert parts == [("b", "g2", 100)]  # a: the 100 of money; b: the grant applied last


def test_never_more_than_a_grant_paid_less_what_it_got_back() -> None:
    held = {
        "in_x": {
            "g2": RestoredGrant("g2", 100, {"l": 100}, []),
            "g1": RestoredGrant("g1", 250, {"l": 250}, []),
        }
    }
    budget = {("in_x", "l"): 50}  # what the line still bills: 400 less the 350 given back
    parts = split({"a": 400}, {"a": ("in_x", "l")}, budget, {"in_x": _invoice(APPS)}, held)
    assert parts == [("a", "g1", 50)]


def test_a_line_no_grant_paid_is_left_to_money() -> None:
    budget = {("in_x", "m"): 400}
    assert split({"a": 100}, {"a": ("in_x", "m")}, budget, {"in_x": _invoice(APPS)}, {}) == []


def test_at_most_max_invoices_corrected_invoices_in_one_write() -> None:
    from neruba.logic.billing.grant_restores import MAX_INVOICES

    count = MAX_INVOICES + 2
    invoices = {
        f"in_{n}": invoice_record(
            {
                "id": f"in_{n}",
                "lines": [],
                "applications": [{"grant_id": "g", "line_id": "l", "amount_minor": 10}],
            }
        )
        for n in range(count)
    }
    refs = {f"a{n}": (f"in_{n}", "l") for n in range(count)}
    budget = {ref: 10 for ref in refs.values()}
    parts = split({k: 10 for k in refs}, refs, budget, invoices, {})
    assert [p[0] for p in parts] == [f"a{n}" for n in range(MAX_INVOICES)]
