"""The local stack on the real template.yaml, on free ports, for the whole session (what `make run` runs)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from neruba_tools.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """A started LocalStack (stack name ``neruba-it``, schedules fired only on demand)."""
    saved = dict(os.environ)
    stack = LocalStack(
        "template.yaml", ROOT, api_port=0, moto_port=0, stack_name="neruba-it", schedules=False
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
