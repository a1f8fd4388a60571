"""Free text refuses the invisible characters that reorder or hide what a reader sees (bidirectional
embeddings, overrides, isolates and marks, the byte-order mark), on every free-text type, and over HTTP a
customer name holding a right-to-left override is refused with 422 (docs/limits.md, "Free text")."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from neruba.models import fields

TYPES = [
    fields.PlainText,
    fields.Name,
    fields.Description,
    fields.LineDescription,
    fields.Reason,
    fields.AuditedReason,
    fields.TicketText,
]
HIDDEN = [
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
    "\ufeff",
]


@pytest.mark.parametrize("kind", TYPES, ids=lambda t: str(t)[:40])
def test_every_free_text_type_refuses_bidi_and_invisible_format_characters(kind: Any) -> None:
    adapter = TypeAdapter(kind)
    for ch in HIDDEN:
        with pytest.raises(ValidationError, match="control characters"):
            adapter.validate_python(f"abc{ch}fdp.exe")
    # the joiners written scripts and emoji need stay accepted
    assert adapter.validate_python("abc \u200d\u200c é ✓") == "abc \u200d\u200c é ✓"


def test_a_stored_text_with_such_a_character_still_reads_back() -> None:
    adapter = TypeAdapter(fields.Name)
    assert adapter.validate_python("a\u202eb", context=fields.STORED) == "a\u202eb"
