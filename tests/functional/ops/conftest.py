"""Ops tests reuse the ingest fixtures (send events through the API, run the worker)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.functional.ingest.conftest import process, send, worker

__all__ = ["process", "send", "worker"]


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines (INFO and up) the Powertools logger writes during the test (its stream, swapped for a
    buffer)."""
    from neruba.observability import logger

    level = logger.log_level
    logger.setLevel("INFO")
    buffer = io.StringIO()
    handler = logger.registered_handler
    old = handler.setStream(buffer)  # type: ignore[attr-defined]

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]

    yield lines
    handler.setStream(old)  # type: ignore[attr-defined]
    logger.setLevel(level)
