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

SOAK_ROUND = 5  # examples per round; the soak starts rounds until its time is up


@pytest.mark.usefixtures("oracle_aws")
def test_oracle() -> None:
    STATS.clear()
    started = time.monotonic()
    if PROFILE != "soak":
        run_state_machine_as_test(Oracle, settings=settings.get_profile(PROFILE))
        _report(started, 1, [])
        return
    rounds, failures = 0, []
    while time.monotonic() - started < SOAK_SECONDS:
        try:
            run_state_machine_as_test(
                Oracle, settings=settings(settings.get_profile("soak"), max_examples=SOAK_ROUND)
            )
        except Exception as exc:  # saved in the example database; the soak goes on with new sequences
            failures.append(str(exc).splitlines()[0][:500])
        rounds += 1
        _report(started, rounds, failures)
    assert not failures, f"{len(failures)} failing rounds (replay: docs/testing.md): {failures}"


def _report(started: float, rounds: int, failures: list[str]) -> None:
    figures = {
        "profile": PROFILE,
        "seconds": round(time.monotonic() - started),
        "rounds": rounds,
        "failures": failures,
        **STATS,
    }
    path = os.environ.get("NERUBA_ORACLE_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump(figures, out, indent=1, sort_keys=True)
    print("oracle figures:", json.dumps(figures, sort_keys=True))  # noqa: T201 - the soak's figures
