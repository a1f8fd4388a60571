"""The credit note rules on their own: what a line and an invoice still allow, rounding by quantity, the
whole invoice, and where the paid part goes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from neruba.domain.credit_notes import (
    CreditNoteRuleError,
    LineRequest,
    LineState,
    credit_lines,
    split_amount,
)

LINES = [LineState("a", 1000, Decimal(3)), LineState("b", 5, Decimal(2)), LineState("c", 700, None)]


def _code(call: object) -> str:
    with pytest.raises(CreditNoteRuleError) as refused:
        call()  # type: ignore[operator]
    return refused.value.code


def test_by_quantity_rounds_half_up_once() -> None:
    # 5 over 2 units: one unit is 2.5 -> 3; the last unit takes what is left (2)
    (first,) = credit_lines(LINES, [LineRequest("b", quantity=Decimal(1))], 10_000)
    assert first.amount_minor == 3
    after = [LineState("b", 5, Decimal(2), credited_minor=3, credited_quantity=Decimal(1))]
    (last,) = credit_lines(after, [LineRequest("b", quantity=Decimal(1))], 10_000)
    assert last.amount_minor == 2


def test_line_and_invoice_limits() -> None:
    assert _code(lambda: credit_lines(LINES, [LineRequest("a", amount_minor=1001)], 10_000)) == (
        "credit_note_exceeds_creditable"
    )
    assert _code(lambda: credit_lines(LINES, [LineRequest("a", quantity=Decimal(4))], 10_000)) == (
        "credit_note_exceeds_creditable"
    )
    assert _code(lambda: credit_lines(LINES, [LineRequest("a", amount_minor=600)], 500)) == (
        "credit_note_exceeds_creditable"
    )
    assert _code(lambda: credit_lines(LINES, [LineRequest("c", quantity=Decimal(1))], 10_000)) == (
        "line_has_no_quantity"
    )


def test_the_whole_invoice_takes_lines_in_order_up_to_what_is_left() -> None:
    taken = credit_lines(LINES, None, 1200)
    assert [(t.line_id, t.amount_minor, t.quantity) for t in taken] == [
        ("a", 1000, Decimal(3)),
        ("b", 5, Decimal(2)),
        ("c", 195, None),
    ]
    assert _code(lambda: credit_lines(LINES, None, 0)) == "credit_note_exceeds_creditable"


def test_the_paid_part_is_split_as_asked_or_all_credit() -> None:
    assert split_amount(800, remaining_due=300, refundable=1200).credit == 500
    split = split_amount(800, remaining_due=300, refundable=1200, refund=200, out_of_band=300)
    assert (split.pre_payment, split.refund, split.out_of_band, split.total) == (300, 200, 300, 800)
    assert _code(lambda: split_amount(800, remaining_due=300, refundable=1200, refund=100)) == (
        "credit_note_split_mismatch"
    )
    assert _code(lambda: split_amount(800, remaining_due=300, refundable=400)) == (
        "credit_note_exceeds_creditable"
    )


def test_a_taxed_line_credited_whole_within_less_than_it_holds_takes_the_largest_fitting_amount() -> None:
    from neruba.domain.taxes import TaxRate

    vat = TaxRate("txr_vat", Decimal("20"))
    lines = [LineState("a", 1000, Decimal(10), rates=(vat,), tax_minor=(200,))]
    # 601 creditable: 501 + 100.2 -> 100 fits (601), 502 + 100.4 -> 100 does not (602)
    (taken,) = credit_lines(lines, None, 601, "USD")
    assert (taken.amount_minor, taken.exclusive_minor, taken.total_minor, taken.quantity) == (
        501,
        100,
        601,
        None,
    )
    (whole,) = credit_lines(lines, None, 1200, "USD")
    assert (whole.amount_minor, whole.exclusive_minor, whole.quantity) == (1000, 200, Decimal(10))
    with pytest.raises(CreditNoteRuleError):
        credit_lines(lines, [LineRequest("a", amount_minor=1000)], 1199, "USD")


def _param(call: object) -> str | None:
    with pytest.raises(CreditNoteRuleError) as refused:
        call()  # type: ignore[operator]
    return refused.value.param


def test_a_split_that_does_not_add_up_names_a_field_that_was_sent() -> None:
    # 500 of 800 was paid: each part given alone must carry all 500; the error names the part sent
    for name in ("credit", "refund", "out_of_band"):
        parts = {name: 100}
        assert _param(lambda parts=parts: split_amount(800, remaining_due=300, refundable=1200, **parts)) == (
            f"{name}_amount_minor"
        )
    # several sent: the last one given is named (the others are taken as meant)
    both = {"credit": 100, "out_of_band": 100}
    assert _param(lambda: split_amount(800, remaining_due=300, refundable=1200, **both)) == (
        "out_of_band_amount_minor"
    )


def test_a_known_tax_is_given_back_as_is_within_what_the_line_has_left() -> None:
    from neruba.domain.taxes import TaxRate

    inclusive, exclusive = TaxRate("txr_in", Decimal(20), inclusive=True), TaxRate("txr_ex", Decimal(19))
    # the d1 case: 445 with 74 of inclusive tax; 34 taken back with the 5 collected for it (34/6 = 5.67 -> 6)
    line = LineState("a", 445, None, rates=(inclusive,), tax_minor=(74,))
    (recomputed,) = credit_lines([line], [LineRequest("a", amount_minor=34)], 10_000, "USD")
    (known,) = credit_lines([line], [LineRequest("a", 34, tax_minor=(("txr_in", 5),))], 10_000, "USD")
    assert (recomputed.inclusive_minor, known.inclusive_minor, known.total_minor) == (6, 5, 34)
    # exclusive: 9 with the 1 of tax collected for it (19% of 9 = 1.71 -> 2), capped by what is left
    line = LineState("b", 28, None, 20, rates=(exclusive,), tax_minor=(5,), credited_tax_minor=(4,))
    (known,) = credit_lines([line], [LineRequest("b", 7, tax_minor=(("txr_ex", 2),))], 10_000, "USD")
    assert (known.exclusive_minor, known.total_minor) == (1, 8)
    # the credit taking the last of the line takes exactly what is left of its tax
    (last,) = credit_lines([line], [LineRequest("b", 8, tax_minor=(("txr_ex", 0),))], 10_000, "USD")
    assert last.exclusive_minor == 1


def test_a_correction_gives_back_tax_alone_and_an_operator_never_credits_nothing() -> None:
    from neruba.domain.taxes import TaxRate
    from neruba.logic.stripe.credit_note_sync import credit_note_params

    # the exclusive tax of usage a grant paid (the grant gets the amount back): amount 0, its tax
    vat = TaxRate("txr_1", Decimal(19))
    line = LineState("a", 400, Decimal(4), rates=(vat,), tax_minor=(76,))
    (taken,) = credit_lines([line], [LineRequest("a", amount_minor=0, tax_minor=(("txr_1", 38),))], 76)
    assert (taken.amount_minor, taken.exclusive_minor, taken.total_minor) == (0, 38, 38)
    # never more than what is left of the line's tax, even when its amount is all credited
    done = LineState(
        "a", 400, Decimal(4), 400, Decimal(4), rates=(vat,), tax_minor=(76,), credited_tax_minor=(70,)
    )
    (rest,) = credit_lines([done], [LineRequest("a", amount_minor=0, tax_minor=(("txr_1", 38),))], 76)
    assert rest.exclusive_minor == 6
    # an amount of nothing without a tax to give back is refused, as before
    assert (
        _code(lambda: credit_lines([line], [LineRequest("a", amount_minor=0)], 76)) == "amount_not_positive"
    )
    # in Stripe: the Tax line alone
    note = {"id": "cn_1", "invoice_id": "in_1", "tax_minor": 38, "amount_minor": 38,
            "pre_payment_amount_minor": 38, "lines": [{"line_id": "a", "amount_minor": 0}]}  # fmt: skip
    assert [line["unit_amount"] for line in credit_note_params(note, "in_S")["lines"]] == [38]
