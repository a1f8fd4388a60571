"""Hypothesis profiles of the oracle, chosen with NERUBA_ORACLE_PROFILE (``bounded`` by default).

- ``bounded``: the normal test suite; derandomized (the same sequences on every run, stable in CI), about
  two minutes on a busy two-core machine.
- ``soak``: ``make soak``; random sequences for NERUBA_ORACLE_MINUTES (default 30) minutes, failing
  examples saved in the example database (.hypothesis/oracle, kept out of git) and replayed first on the
  next run of either profile with the database (see docs/testing.md).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

DATABASE = os.environ.get("NERUBA_ORACLE_DB", ".hypothesis/oracle")
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "bounded",
    max_examples=int(os.environ.get("NERUBA_ORACLE_EXAMPLES", "16")),
    stateful_step_count=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=SLOW,
    phases=[Phase.explicit, Phase.generate]
    + ([] if os.environ.get("NERUBA_ORACLE_NO_SHRINK") else [Phase.shrink]),
    print_blob=True,
)
settings.register_profile(
    "soak",
    max_examples=10**9,  # bounded by time: see SOAK_SECONDS
    stateful_step_count=60,
    derandomize=False,
    database=DirectoryBasedExampleDatabase(DATABASE),
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    + ([] if os.environ.get("NERUBA_ORACLE_NO_SHRINK") else [Phase.shrink]),
    deadline=None,
    suppress_health_check=SLOW,
    print_blob=True,
)
settings.register_profile(
    "replay",  # only the saved failing examples, from the database
    max_examples=1,
    stateful_step_count=60,
    database=DirectoryBasedExampleDatabase(DATABASE),
    deadline=None,
    suppress_health_check=SLOW,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # the saved ones, then one new
    print_blob=True,
)

PROFILE = os.environ.get("NERUBA_ORACLE_PROFILE", "bounded")
SOAK_SECONDS = float(os.environ.get("NERUBA_ORACLE_MINUTES", "30")) * 60
