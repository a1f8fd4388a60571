"""Faults the tests inject into the real code paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def poison_ingest(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """A bug in the ingest worker: every event whose properties carry ``poison`` fails, every time.

    Returns the fix (the original code deployed again).
    """
    from neruba.logic.ingest import worker as ingest_worker

    original = ingest_worker.meter_value

    def buggy(aggregation: str, field: str | None, properties: dict[str, Any], **options: Any) -> Any:
        if properties.get("poison"):
            raise RuntimeError("bug")
        return original(aggregation, field, properties, **options)

    monkeypatch.setattr(ingest_worker, "meter_value", buggy)
    return lambda: monkeypatch.setattr(ingest_worker, "meter_value", original)
