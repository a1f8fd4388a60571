"""Run every benchmark and write its results under benchmarks/results/ (``make bench``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

for key, value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "NERUBA_KEYS_TABLE": "test-KeysTable",
    "NERUBA_CATALOG_TABLE": "test-CatalogTable",
    "NERUBA_USAGE_TABLE": "test-UsageTable",
    "NERUBA_BILLING_TABLE": "test-BillingTable",
    "NERUBA_LEDGER_TABLE": "test-LedgerTable",
    "NERUBA_OPS_TABLE": "test-OpsTable",
    "NERUBA_INGEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-IngestQueue",
}.items():
    os.environ.setdefault(key, value)
os.environ.pop("AWS_ENDPOINT_URL", None)


def main() -> int:
    from benchmarks import ingest_e2e, ingest_writes

    result = ingest_writes.main()
    result["local_stack_end_to_end"] = ingest_e2e.main()
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
