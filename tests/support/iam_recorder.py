"""Records, while tests run, the permissions each Lambda function's AWS calls need (docs/deploy.md,
"IAM check").

Every botocore client (ours in ``neruba.dal.clients``, Powertools' boto3 ones) makes its calls through
``BaseClient._make_api_call``; ``install`` wraps it. A call is attributed to the function whose code under
functions/<name>/ is on the calling thread's stack, however the handler was invoked (a test calling
``lambda_handler``, an API helper, the local stack's dispatcher); calls made by test code itself (setup,
assertions) have no such frame and are not recorded.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import botocore

from neruba_tools.iam_calls import needed

FUNCTIONS = str(Path(__file__).resolve().parents[2] / "functions") + os.sep
_seen: dict[tuple[str, str, str, str], str] = {}  # (function, operation, action, resource) -> first test
BOTOCORE = str(Path(botocore.__file__).resolve().parent) + os.sep
TESTS = str(Path(__file__).resolve().parents[1]) + os.sep
_kinds: dict[str, str] = {}  # code file -> _kind()
_lock = threading.Lock()
# The Stripe parameter is named by a setting a test may change; recorded as the template names it
SECRET_PARAMETER = "${StripeSecretName}"


def install() -> None:
    """Wrap botocore's one entry point for API calls (once per process)."""
    from botocore.client import BaseClient

    real = BaseClient._make_api_call
    if getattr(real, "_records_iam", False):
        return

    def recording(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        function = _calling_function()
        if function is not None:
            _record(function, self.meta.service_model.service_name, operation_name, api_params)
        return real(self, operation_name, api_params)

    recording._records_iam = True  # type: ignore[attr-defined]
    BaseClient._make_api_call = recording  # type: ignore[method-assign]


def _calling_function() -> str | None:
    """The function folder of the innermost handler frame on the stack; None when there is none, or when
    test code between it and the call made the call (a hook a test installed to act as another writer
    while the handler runs). A test frame that a client method called (a wrapper of ``_make_api_call``
    that serializes or fails requests) is part of the call, not an actor."""
    frame = sys._getframe(2)
    while frame is not None:
        kind = _kind(frame.f_code.co_filename)
        if kind == "test" and (frame.f_back is None or _kind(frame.f_back.f_code.co_filename) != "botocore"):
            return None
        if kind not in ("other", "app", "test", "botocore"):
            return kind
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _kind(filename: str) -> str:
    """``test``, ``botocore``, ``other``, or the function folder of a handler's code."""
    kind = _kinds.get(filename)
    if kind is None:
        if filename.startswith(FUNCTIONS):
            kind = filename[len(FUNCTIONS) :].split(os.sep, 1)[0]
        elif filename.startswith(BOTOCORE):
            kind = "botocore"
        else:
            kind = "test" if filename.startswith(TESTS) else "other"
        _kinds[filename] = kind
    return kind


def _record(function: str, service: str, operation: str, params: dict[str, Any]) -> None:
    try:
        permissions = needed(service, operation, params)
    except (KeyError, TypeError, AttributeError):  # a malformed request: botocore rejects it anyway
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]
    secret = os.environ.get("NERUBA_STRIPE_SECRET_NAME")
    with _lock:
        for action, resource in permissions:
            if secret and resource.endswith(f":parameter{secret}"):  # a test may name its own parameter
                resource = resource[: -len(secret)] + SECRET_PARAMETER
            _seen.setdefault((function, operation, action, resource), test)


def recorded() -> list[list[str]]:
    """What this process recorded: [function, operation, action, resource, first test] rows."""
    with _lock:
        return [[*key, test] for key, test in sorted(_seen.items())]
