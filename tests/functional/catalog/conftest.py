"""Fixtures of the catalog tests: the admin and read API handlers called with proxy events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.api import api_event, call

Api = Callable[..., tuple[int, Any]]


@pytest.fixture
def admin(aws: dict[str, str]) -> Api:
    from functions.admin_api.app import lambda_handler

    def _admin(
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        scopes: str = "admin",
    ) -> tuple[int, Any]:
        status, parsed, _ = call(
            lambda_handler,
            api_event(method, path, body=body, path_parameters=params, headers=headers, scopes=scopes),
        )
        return status, parsed

    return _admin


@pytest.fixture
def reader(aws: dict[str, str]) -> Api:
    from functions.read_api.app import lambda_handler

    def _read(
        path: str, query: dict[str, str] | None = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        status, parsed, _ = call(
            lambda_handler, api_event("GET", path, query=query, path_parameters=params, scopes="read")
        )
        return status, parsed

    return _read
