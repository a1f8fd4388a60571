"""The local stack on free ports for the whole session (the same code `make run` starts)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from neruba_tools.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    saved = dict(os.environ)
    stack = LocalStack(
        "template.yaml", ROOT, api_port=0, moto_port=0, schedules=False, stack_name="neruba-it"
    )
    stack.start()
    yield stack
    stack.stop()
    os.environ.clear()
    os.environ.update(saved)
    from neruba.dal.clients import reset_clients
    from neruba.settings import get_settings

    reset_clients()
    get_settings.cache_clear()
