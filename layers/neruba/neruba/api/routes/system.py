"""Liveness and readiness (no API key): ``GET /health`` and ``GET /ready``."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from neruba import __version__
from neruba.api.params import answer, errors_only
from neruba.errors import ServiceUnavailableError
from neruba.models.views import Health, Ready
from neruba.settings import check_environment, get_settings

router = APIGatewayRouter()


@router.get("/health", summary="Liveness", tags=["system"], responses={200: answer(Health, "Running")})
def health() -> dict[str, str]:
    """Answers 200 whenever the function runs; checks nothing else."""
    return {"status": "ok", "version": __version__}


@router.get(
    "/ready",
    summary="Readiness",
    tags=["system"],
    responses={
        200: answer(Ready, "Every dependency reachable"),
        **errors_only(
            {
                500: "Something went wrong on our side (internal_error)",
                503: "A check failed (not_ready; details name each failing check)",
            }
        ),
    },
)
def ready() -> dict[str, Any]:
    """Answers 200 when the configuration is valid and every table and queue is reachable, else 503.

    Without a key the answer names each check and whether it passed; with an admin key it also says which
    physical table or queue each check looked at and why it failed (nothing an anonymous caller needs).
    """
    from neruba.api.resolver import caller_key_scopes

    headers = router.current_event.headers
    sends_key = bool(headers.get("Authorization") or headers.get("authorization"))
    scopes = caller_key_scopes(headers) if sends_key else None
    detailed = scopes is not None and "admin" in scopes
    problems = check_environment(os.environ)
    if problems:
        details = [
            {"param": p.split(":", 1)[0], "code": "invalid_setting", "message": p if detailed else "invalid"}
            for p in problems
        ]
        raise ServiceUnavailableError("The configuration is invalid.", details=details)
    from neruba.dal.readiness import check_dependencies

    checks = check_dependencies(get_settings())
    failing = [c for c in checks if not c.ok]
    if failing:
        details = [
            {"param": c.name, "code": "unreachable", "message": c.detail if detailed else "not reachable"}
            for c in failing
        ]
        raise ServiceUnavailableError("A dependency is not reachable.", details=details)
    shown = [{"name": c.name, "ok": c.ok, **({"detail": c.detail} if detailed else {})} for c in checks]
    return {"status": "ready", "checks": shown}
