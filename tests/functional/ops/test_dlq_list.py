"""``neruba dlq list``: one aligned row per dead-letter queue, and nothing on standard output when the
listing fails (the error line alone, no orphan header)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from botocore.exceptions import ClientError

from neruba_tools import dlq
from neruba_tools.stackinfo import StackInfo


def _stack(physical: dict[str, str]) -> StackInfo:
    stack = StackInfo("test", local=True)
    stack.__dict__["physical"] = physical  # the names a deployed stack would list
    return stack


def _args() -> argparse.Namespace:
    return argparse.Namespace(stack="test", template=None)


def test_rows_are_aligned_whatever_the_source_text(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dlq, "stack_for", lambda *_: _stack(aws))
    assert dlq._list(_args()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(_stack(aws).dead_letter_queues())
    # every column starts at the same place on every line (the header's)
    header = lines[0]
    for column in ("SOURCE", "DEPTH", "IN FLIGHT", "OLDEST"):
        start, end = header.index(column), header.index(column) + len(column)
        for line in lines[1:]:
            assert line[start - 1] == " " and line[start:end].strip(), (column, line)


def test_a_failed_listing_prints_no_header(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = {logical: url + "-gone" for logical, url in aws.items() if "/" in url}
    monkeypatch.setattr(dlq, "stack_for", lambda *_: _stack(missing))
    with pytest.raises(ClientError):
        dlq._list(_args())
    assert capsys.readouterr().out == ""
