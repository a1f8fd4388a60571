"""The shared Powertools logger and metrics (JSON logs, EMF metrics).

``POWERTOOLS_SERVICE_NAME`` and ``POWERTOOLS_METRICS_NAMESPACE`` from template.yaml name them; the
local stack and the tests set ``POWERTOOLS_METRICS_DISABLED`` to keep EMF blobs off the console.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="neruba")
metrics = Metrics(namespace="Neruba")
