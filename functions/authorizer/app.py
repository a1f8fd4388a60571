"""API Gateway TOKEN authorizer: hashed API key -> Allow policy with the key's scopes, else 401."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba.api.authorizer import authorize
from neruba.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize(event)
