"""JSON responses that keep numbers exact (Decimal printed as written, never through float)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from neruba import jsonutil


def json_response(data: Any, status: int = 200) -> Response[str]:
    """A JSON response serialised by ``neruba.jsonutil`` (exact numbers, sorted keys)."""
    return Response(status_code=status, content_type="application/json", body=jsonutil.dumps(data))
