"""The Stripe API key and webhook signing secrets, read from SSM through Powertools Parameters, cached.

The parameter named by the ``stripe_secret_name`` setting (a SecureString) holds JSON::

    {"api_key": "sk_live_...", "webhook_secrets": ["whsec_new", "whsec_old"]}

Several webhook secrets are accepted at once so a secret can be rotated without downtime: add the new one
first, roll the endpoint secret in Stripe, then drop the old one. Values are cached for ``MAX_AGE``
seconds per warm Lambda; nothing here ever logs them.

Example:
    >>> StripeConfig.from_value({"api_key": "sk_test_x", "webhook_secrets": ["whsec_a"]}).webhook_secrets
    ('whsec_a',)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from neruba.settings import get_settings

MAX_AGE = 300


class StripeConfigError(RuntimeError):
    """The Stripe parameter is not configured or not in the expected shape."""


@dataclass(frozen=True, slots=True)
class StripeConfig:
    """The Stripe credentials of this deployment (``repr`` hides them)."""

    api_key: str = field(repr=False)
    webhook_secrets: tuple[str, ...] = field(repr=False)

    @property
    def mode(self) -> str | None:
        """``live`` or ``test`` for a secret or restricted key of that mode, None without a key."""
        for prefix in ("sk_", "rk_"):
            for mode in ("live", "test"):
                if self.api_key.startswith(f"{prefix}{mode}_"):
                    return mode
        return None

    @classmethod
    def from_value(cls, value: Any) -> StripeConfig:
        """Validate the parameter value (JSON text or an already parsed mapping)."""
        if isinstance(value, bytes | str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise StripeConfigError("the Stripe parameter is not JSON") from exc
        if not isinstance(value, dict):
            raise StripeConfigError("the Stripe parameter is not a JSON object")
        secrets = value.get("webhook_secrets") or []
        if isinstance(secrets, str):
            secrets = [secrets]
        if not isinstance(secrets, list) or not all(isinstance(s, str) and s for s in secrets):
            raise StripeConfigError("webhook_secrets must be a list of strings")
        api_key = value.get("api_key") or ""
        if not isinstance(api_key, str):
            raise StripeConfigError("api_key must be a string")
        return cls(api_key=api_key, webhook_secrets=tuple(secrets))


def load_config(*, force: bool = False) -> StripeConfig:
    """Read (or reuse the cached) Stripe parameter.

    Raises StripeConfigError when the setting is missing or the value is malformed.
    """
    from aws_lambda_powertools.utilities import parameters

    name = get_settings().stripe_secret_name
    if not name:
        raise StripeConfigError("NERUBA_STRIPE_SECRET_NAME is not set")
    try:
        value = parameters.get_parameter(name, decrypt=True, max_age=MAX_AGE, force_fetch=force)
    except parameters.exceptions.GetParameterError as exc:
        raise StripeConfigError("the Stripe parameter cannot be read") from exc
    return StripeConfig.from_value(value)


def configured_mode() -> str | None:
    """The mode (``live``/``test``) of the configured API key; None when no key is configured."""
    try:
        return load_config().mode
    except StripeConfigError:
        return None


def clear_cache() -> None:
    """Forget cached parameter values (tests, and after a rotation when waiting is not an option)."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
