"""The local stack on the real template.yaml, on free ports, for the integration tests (`make run`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from neruba_tools.local.stack import LocalStack
from tests.support.stack import started_local_stack


@pytest.fixture(scope="package")
def local_stack() -> Iterator[LocalStack]:
    """A started LocalStack (stack name ``neruba-it``, see ``started_local_stack``).

    Package-scoped: its pollers run handlers in this process, so the stack stops as soon as the
    integration tests are done instead of polling (and sharing module state) under later tests.
    """
    with started_local_stack("neruba-it") as stack:
        yield stack
