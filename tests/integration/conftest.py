"""The local stack on the real template.yaml, on free ports, for the integration tests (`make run`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from neruba_tools.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def local_stack() -> Iterator[LocalStack]:
    """A started LocalStack (stack name ``neruba-it``, schedules fired only on demand, drafts finalized
    one second after their window, as ``make run ARGS="--parameter BillingGraceSeconds=1"`` does).

    Package-scoped: its pollers run handlers in this process, so the stack stops as soon as the
    integration tests are done instead of polling (and sharing module state) under later tests.
    """
    saved = dict(os.environ)
    stack = LocalStack(
        "template.yaml",
        ROOT,
        api_port=0,
        moto_port=0,
        stack_name="neruba-it",
        schedules=False,
        parameters={"BillingGraceSeconds": "1"},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
