"""Every setting of Neruba, read from environment variables in one place.

Example:
    >>> import os
    >>> from neruba.settings import get_settings
    >>> get_settings().stage  # doctest: +SKIP
    'local'

The variables are named ``NERUBA_<FIELD>`` (``NERUBA_USAGE_TABLE``, ...). template.yaml sets them for
every function; the local stack sets them from the same template. ``neruba config check`` lists every
missing or invalid one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIX = "NERUBA_"
Stage = Literal["local", "dev", "prod"]


class SettingsFields(BaseModel):
    """The settings themselves; ``Settings`` reads them from the environment."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stage: Stage = "local"
    keys_table: str = Field(min_length=3, description="DynamoDB table of API keys (hashed).")
    catalog_table: str = Field(min_length=3, description="Customers, meters, plans, subscriptions.")
    usage_table: str = Field(min_length=3, description="Raw events, hourly aggregates, ingest outcomes.")
    billing_table: str = Field(min_length=3, description="Billing runs, invoices, locks.")
    ledger_table: str = Field(min_length=3, description="Ledger postings, balances, credit grants.")
    ops_table: str = Field(min_length=3, description="Audit records, migrations, sweeps, Stripe events.")
    ingest_queue_url: str = Field(min_length=8, description="SQS queue that buffers accepted events.")
    billing_queue_url: str = Field(min_length=8, description="SQS queue of billing jobs (one per window).")
    stripe_events_queue_url: str = Field(min_length=8, description="SQS queue of stored Stripe events.")
    stripe_sync_queue_url: str = Field(min_length=8, description="SQS queue of invoices to push to Stripe.")
    webhook_delivery_queue_url: str | None = Field(
        default=None, description="SQS queue of outgoing webhook deliveries (one message per attempt)."
    )
    dlq_urls: str = Field(
        default="",
        description="The DLQs the sweep watches for dlq.message_parked: Name=url pairs, spaced.",
    )
    docs_enabled: bool = Field(default=False, description="Serve /docs and /openapi.json.")
    max_body_bytes: int = Field(default=262_144, ge=1_024, le=10_485_760)
    ingest_max_age_days: int = Field(default=35, ge=1, le=400)
    ingest_max_future_seconds: int = Field(default=300, ge=0, le=86_400)
    billing_grace_seconds: int = Field(default=3_600, ge=0, le=30 * 86_400)
    usage_shards: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Partitions per customer and meter for usage contributions (raise only, never lower).",
    )
    authorizer_cache_ttl_seconds: int = Field(default=60, ge=0, le=3_600)
    stripe_secret_name: str | None = Field(default=None, description="SSM parameter or secret name.")
    dead_letter_queues: str | None = Field(
        default=None, description="JSON: each DLQ's name to [dlq_url, source_name, source_url] (/admin/dlqs)."
    )
    alarm_prefix: str | None = Field(
        default=None,
        min_length=1,
        description="Name prefix of this stack's CloudWatch alarms (/admin/alarms).",
    )

    @property
    def docs_require_admin(self) -> bool:
        """Docs are open in local and dev; in prod they need an admin key when enabled at all."""
        return self.stage == "prod"


class Settings(SettingsFields):
    """Validated configuration of one Neruba function or command, read from ``NERUBA_*`` variables.

    Read with plain pydantic from the environment (no settings framework: it would cost every cold start
    about as much again as importing pydantic).
    """

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return cls.model_validate(_fields_of(os.environ if environ is None else environ))


def _fields_of(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        key[len(ENV_PREFIX) :].lower(): value for key, value in environ.items() if key.startswith(ENV_PREFIX)
    }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once (call ``get_settings.cache_clear()`` in tests)."""
    return Settings.from_environment()


def check_environment(environ: Mapping[str, str]) -> list[str]:
    """Return one readable line per missing or invalid setting; an empty list means all is well.

    Example:
        >>> check_environment({})[0]
        'NERUBA_KEYS_TABLE: missing (DynamoDB table of API keys (hashed).)'
    """
    try:
        SettingsFields.model_validate(_fields_of(environ))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = ENV_PREFIX + field.upper()
            if error["type"] == "missing":
                fields = SettingsFields.model_fields
                described = fields[field].description if field in fields else None
                problems.append(f"{name}: missing" + (f" ({described})" if described else ""))
            else:
                problems.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
        return problems
    return []
