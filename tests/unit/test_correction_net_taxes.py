"""The tax of a corrected line's net (``logic.billing.correction_credits``; docs/billing.md, "A window
settles the net of a line's differences"): the positive lines of a corrected line offset its negative
lines, the part left to credit gives back the line's net tax (shared half-up once), and what stays of each
negative line keeps its own tax less what the notes took, so nothing is lost or made up by rounding."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

REF = {"invoice_id": "in_0", "line_id": "usage:api_calls::0"}


def _line(n: int, amount: int, tax: int) -> dict[str, Any]:
    rates = [{"tax_rate_id": "txr_vat", "amount_minor": tax, "inclusive": False}]
    return {"line_id": f"adjustment:in_0:usage:api_calls::0:{n}", "amount_minor": amount,
            "references": REF, "tax": {"rates": rates}, "corrected_terms": True}  # fmt: skip


def _settled(
    lines: list[dict[str, Any]], credited: int
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(per negative line: offset, tax the notes gave back with ``credited`` of the net, tax left on it)."""
    from neruba.logic.billing.correction_credits import _negatives, _net_taxes, _offsets

    wanted, refs = _negatives(lines)
    offset = _offsets(lines, wanted, refs)
    for line_id, amount in offset.items():
        wanted[line_id] -= amount
    taxes = _net_taxes(lines, wanted, refs, offset)
    given: dict[str, int] = {}
    for line_id in wanted:  # the notes take the net in order, as much as ``credited`` allows
        take = min(wanted[line_id], credited)
        credited -= take
        if take:
            parts = taxes.of([("carrying", take, line_id)]) or ()
            given[line_id] = sum(t for _, t in parts)
            taxes.took(line_id, take)
        wanted[line_id] -= take
    left = {k: sum(taxes.left(k, wanted[k] + offset.get(k, 0)).values()) for k in wanted}
    return offset, given, left


def test_a_partly_offset_line_gives_back_its_net_tax() -> None:
    # +50 (tax 10) and -70 (tax -13): 20 to credit, and the 3 of tax 7 calls less 5 calls change
    lines = [_line(1, 50, 10), _line(2, -70, -13)]
    offset, given, left = _settled(lines, 20)
    minus = str(lines[1]["line_id"])
    assert offset == {minus: 50}
    assert given == {minus: 3}
    assert left == {minus: 10}  # the -50 left on the invoice carries -10: with the +50, no tax


def test_a_line_offset_whole_keeps_its_own_tax() -> None:
    # +30 (6), -30 (-6) and -20 (-4): the first negative offset whole, the second credited with its own tax
    lines = [_line(1, 30, 6), _line(2, -30, -6), _line(3, -20, -4)]
    offset, given, left = _settled(lines, 20)
    assert offset == {str(lines[1]["line_id"]): 30}
    assert given == {str(lines[2]["line_id"]): 4}
    assert left == {str(lines[1]["line_id"]): 6, str(lines[2]["line_id"]): 0}


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(st.tuples(st.integers(-60, 60).filter(bool), st.integers(0, 12)), min_size=1, max_size=5),
    credited=st.integers(0, 200),
)
def test_the_notes_and_the_lines_left_give_back_the_lines_tax_exactly(
    parts: list[tuple[int, int]], credited: int
) -> None:
    # each difference taxed in its direction (a negative line gives tax back)
    lines = [_line(n, amount, tax if amount > 0 else -tax) for n, (amount, tax) in enumerate(parts)]
    _offset, given, left = _settled(lines, credited)
    positive_tax = sum(tax for amount, tax in parts if amount > 0)
    negative_tax = sum(tax for amount, tax in parts if amount < 0)
    # what the notes gave back and what the negative lines still carry is every negative line's tax
    assert sum(given.values()) + sum(left.values()) == negative_tax
    net = sum(-amount for amount, _ in parts)
    if net > 0 and credited >= net:  # the whole net credited: the lines left add up to no tax
        assert sum(given.values()) == negative_tax - positive_tax
        assert sum(left.values()) == positive_tax
