"""The AWS SDK's loggers stay at WARNING: no request dumps (secrets) at DEBUG, no INFO noise per call."""

from __future__ import annotations

import logging


def test_the_sdk_loggers_are_held_at_warning_whatever_the_root_level() -> None:
    import neruba.observability  # noqa: F401  (sets the levels on import)

    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.DEBUG)
    try:
        for name in ("botocore", "boto3", "urllib3"):
            sdk = logging.getLogger(name)
            assert sdk.getEffectiveLevel() == logging.WARNING, name
            assert not sdk.isEnabledFor(logging.INFO), name
            assert sdk.isEnabledFor(logging.WARNING), name
    finally:
        root.setLevel(before)
