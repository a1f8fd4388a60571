"""Run every benchmark and write its results under benchmarks/results/ (``make bench``)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tests.conftest import TEST_ENVIRONMENT  # the same fake credentials and table names as the tests

for key, value in {**TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR"}.items():
    os.environ.setdefault(key, value)
os.environ.pop("AWS_ENDPOINT_URL", None)


def _step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main() -> int:
    from benchmarks import cold_start, ingest_e2e, ingest_writes

    _step("cold imports of every handler (fresh interpreters)")
    cold = cold_start.main()
    (Path(__file__).parent / "results" / "cold_start.json").write_text(json.dumps(cold, indent=2) + "\n")

    _step("ingest write units and requests per event against the baseline")
    result = ingest_writes.main()
    _step("ingest end to end through the local stack")
    result["local_stack_end_to_end"] = ingest_e2e.main()
    _step("done; results in benchmarks/results/")
    out = Path(__file__).parent / "results" / "ingest_writes.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(
        json.dumps(
            {
                "neruba": result["neruba"],
                "baseline": result["baseline_powertools_idempotent"],
                "ratios": result["ratios"],
                "workload": result["workload"],
                "local_stack_end_to_end": result["local_stack_end_to_end"],
            },
            indent=2,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
