"""Settings come from NERUBA_* variables and every problem is reported by name."""

from __future__ import annotations

from neruba.settings import check_environment

COMPLETE = {
    "NERUBA_KEYS_TABLE": "k-table",
    "NERUBA_CATALOG_TABLE": "c-table",
    "NERUBA_USAGE_TABLE": "u-table",
    "NERUBA_BILLING_TABLE": "b-table",
    "NERUBA_LEDGER_TABLE": "l-table",
    "NERUBA_OPS_TABLE": "o-table",
    "NERUBA_INGEST_QUEUE_URL": "https://sqs.example/q",
    "NERUBA_BILLING_QUEUE_URL": "https://sqs.example/b",
    "NERUBA_STRIPE_EVENTS_QUEUE_URL": "https://sqs.example/s",
    "NERUBA_STRIPE_SYNC_QUEUE_URL": "https://sqs.example/y",
}


def test_complete_environment_has_no_problems() -> None:
    assert check_environment(COMPLETE) == []


def test_every_missing_and_invalid_setting_is_named() -> None:
    # GIVEN an environment missing two tables, with a bad stage and a non-number limit
    env = {k: v for k, v in COMPLETE.items() if k not in ("NERUBA_USAGE_TABLE", "NERUBA_OPS_TABLE")}
    env.update({"NERUBA_STAGE": "staging", "NERUBA_INGEST_MAX_AGE_DAYS": "many"})
    # WHEN checked
    problems = check_environment(env)
    # THEN each problem names its variable
    names = sorted(p.split(":")[0] for p in problems)
    assert names == ["NERUBA_INGEST_MAX_AGE_DAYS", "NERUBA_OPS_TABLE", "NERUBA_STAGE", "NERUBA_USAGE_TABLE"]
    assert any("missing" in p for p in problems if p.startswith("NERUBA_OPS_TABLE"))
