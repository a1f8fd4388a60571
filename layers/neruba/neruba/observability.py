"""The shared Powertools logger and metrics (JSON logs, EMF metrics).

``POWERTOOLS_SERVICE_NAME`` and ``POWERTOOLS_METRICS_NAMESPACE`` from template.yaml name them; the
local stack and the tests set ``POWERTOOLS_METRICS_DISABLED`` to keep EMF blobs off the console.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics

# The AWS SDK's DEBUG logs print whole requests and responses (an SSM GetParameter answer carries the
# decrypted Stripe secrets), and its INFO lines ("Found credentials in environment variables") are noise
# in every function's log: keep it at WARNING even when an operator turns the root logger to DEBUG.
for _sdk_logger in ("botocore", "boto3", "urllib3"):
    logging.getLogger(_sdk_logger).setLevel(logging.WARNING)

logger = Logger(service="neruba")
metrics = Metrics(namespace="Neruba")
