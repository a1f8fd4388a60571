"""The local stack as the integration tests use it (the fixture of tests/integration and tests/client)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neruba_tools.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]

# How long a test waits for one answer of the local stack. Generous on purpose: on a 2-core CI machine the
# stack's handlers share the test process with its pollers while the other pytest worker takes the second
# core, and an authorizer was seen answering after 10.7 s. The tests check answers, not latency (that is
# the benchmarks' job), so a slow answer must never fail them.
HTTP_TIMEOUT_S = 60


@contextmanager
def started_local_stack(stack_name: str) -> Iterator[LocalStack]:
    """A started LocalStack on free ports (schedules fired only on demand, drafts finalized one second
    after their window, as ``make run ARGS="--parameter BillingGraceSeconds=1"`` does); stopped, and the
    environment it set restored, on exit."""
    saved = dict(os.environ)
    stack = LocalStack(
        "template.yaml",
        ROOT,
        api_port=0,
        moto_port=0,
        stack_name=stack_name,
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
