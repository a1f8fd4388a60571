"""The oracle as a test: the bounded profile in the normal suite, the soak with ``make soak``."""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.oracle.machine import STATS, Oracle
from tests.oracle.profiles import PROFILE, SOAK_SECONDS


class _Timed(Oracle):
    """The soak stops starting new examples once its time is up."""

    deadline_at = 0.0

    def __init__(self) -> None:
        if self.deadline_at and time.monotonic() > self.deadline_at:
            pytest.skip("soak time is up")  # never reached: see the loop below
        super().__init__()


@pytest.mark.usefixtures("oracle_aws")
def test_oracle() -> None:
    STATS.clear()
    started = time.monotonic()
    if PROFILE == "soak":
        rounds = 0
        while time.monotonic() - started < SOAK_SECONDS:
            run_state_machine_as_test(Oracle, settings=settings(settings.get_profile("soak"), max_examples=25))
            rounds += 1
            _report(started, rounds)
    else:
        run_state_machine_as_test(Oracle, settings=settings.get_profile(PROFILE))
        _report(started, 1)


def _report(started: float, rounds: int) -> None:
    figures = {"profile": PROFILE, "seconds": round(time.monotonic() - started), "rounds": rounds, **STATS}
    path = os.environ.get("NERUBA_ORACLE_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump(figures, out, indent=1, sort_keys=True)
    print("oracle figures:", json.dumps(figures, sort_keys=True))
