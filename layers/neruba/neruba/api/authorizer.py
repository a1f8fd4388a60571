"""The API Gateway TOKEN authorizer: ``Authorization: Bearer KEY`` -> an IAM policy and the key's scopes.

A valid key gets an Allow policy for the whole API (so API Gateway can cache the answer for
``authorizer_cache_ttl_seconds`` per key) and a context with ``key_id`` and ``scopes``; each route then
checks its own scope and answers 403 itself. Anything else raises ``Unauthorized``, which API Gateway
turns into 401 with the error body of the UNAUTHORIZED gateway response in template.yaml. A revoked key
therefore stops working at most one cache TTL after revocation.
"""

from __future__ import annotations

from typing import Any

from neruba import bootstrap
from neruba.dal.keys import KeysRepository
from neruba.security.apikeys import bearer_token


class UnauthorizedError(Exception):
    """Raised with the exact message ``Unauthorized``, which API Gateway maps to a 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def _api_wide_arn(method_arn: str) -> str:
    # arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE/METHOD/PATH -> .../API_ID/STAGE/*
    head, _, rest = method_arn.partition("/")
    stage = rest.split("/", 1)[0] if rest else "*"
    return f"{head}/{stage}/*"


def authorize(event: dict[str, Any], repository: KeysRepository | None = None) -> dict[str, Any]:
    """Turn a TOKEN authorizer event into a policy response, or raise UnauthorizedError."""
    token = bearer_token(event.get("authorizationToken"))
    if token is None:
        raise UnauthorizedError
    repository = repository or bootstrap.keys()
    key = repository.authenticate(token)
    if key is None:
        raise UnauthorizedError
    return {
        "principalId": f"key:{key.key_id}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": _api_wide_arn(event["methodArn"]),
                }
            ],
        },
        "context": {"key_id": key.key_id, "scopes": " ".join(sorted(key.scopes))},
    }
