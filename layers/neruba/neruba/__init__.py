"""Neruba: a usage-billing engine that runs as AWS Lambda functions.

This package is the shared code of every function (shipped as the SAM layer):

- ``neruba.domain``: plain Python money, pricing and billing rules (no AWS).
- ``neruba.dal``: small repository modules over DynamoDB and SQS.
- ``neruba.api``: the HTTP resolver, routes, scopes and the one error shape.
- ``neruba.security``: API key format and hashing.
"""

from __future__ import annotations

__version__ = "0.1.0"
