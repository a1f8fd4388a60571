"""A text that must be given (a name, a reason, a ticket where required, a coupon's or a tax rate's name)
is refused when it is spaces only: it passes a minimum length and says nothing in an audit record or on
an invoice. Optional texts keep taking what they took; stored text reads back as
written."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from neruba.models import fields

REQUIRED = [
    fields.Name,
    fields.Reason,
    fields.AuditedReason,
    fields.RequiredTicket,
    fields.CouponName,
    fields.TaxName,
]


@pytest.mark.parametrize("kind", REQUIRED, ids=lambda t: str(t)[:60])
@pytest.mark.parametrize("blank", ["   ", "\u00a0\u3000 ", "\u2003" * 4])
def test_a_required_text_of_spaces_only_is_refused(kind: Any, blank: str) -> None:
    with pytest.raises(ValidationError, match="must not be blank"):
        TypeAdapter(kind).validate_python(blank)


@pytest.mark.parametrize("kind", REQUIRED, ids=lambda t: str(t)[:60])
def test_a_required_text_with_spaces_around_words_is_kept_as_written(kind: Any) -> None:
    assert TypeAdapter(kind).validate_python("  SUP 12  ") == "  SUP 12  "


def test_a_blank_stored_text_still_reads_back() -> None:
    assert TypeAdapter(fields.Name).validate_python("  ", context=fields.STORED) == "  "


def test_an_optional_text_may_still_be_empty() -> None:
    assert TypeAdapter(fields.TicketText).validate_python("") == ""
    assert TypeAdapter(fields.Description).validate_python("") == ""
