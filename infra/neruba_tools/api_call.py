"""One call of the API from a ``neruba`` command: the request, its Idempotency-Key, the printed answer.

Every command that calls a route through HTTP (``events``, ``credit-notes``, ``invoices``,
``one-off-charges``, ``coupons``, ``discounts``, ``tax-rates`` and the other correction groups) goes
through ``run``: the target and key come from ``api_target``; a write sends an ``Idempotency-Key``
(``--idempotency-key``, else one derived from the request, so the same command run again is a retry),
printed on stderr before the call. The answer is printed as JSON on stdout (exit 0); a refusal is
printed on stderr in one shape (``refusal``), exit 1; exit 2 when the call could not be made.
``neruba backfill`` calls the Python client and prints its errors with the same ``refusal``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from neruba_tools import api_target

# (method, path, body, headers) -> (status, parsed answer)
Transport = Callable[[str, str, Any, dict[str, str]], tuple[int, Any]]
# the command's request: (method, path, body, query)
Build = Callable[[argparse.Namespace], tuple[str, str, Any, dict[str, str]]]


def http_transport(base_url: str, api_key: str, timeout: float = 30.0) -> Transport:
    """A transport over HTTPS (or http to a local stack) with the key as a bearer token. Bodies are
    written by ``neruba.jsonutil`` (decimals as exact JSON numbers, a float refused)."""
    from neruba import jsonutil

    def send(method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        data = jsonutil.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(base_url.rstrip("/") + path, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {api_key}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only)
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    return send


def default_key(method: str, path: str, body: Any, fresh: bool = False) -> str:
    """The same request, the same key: running a command again is a retry. ``fresh``: a new key each time,
    for a command whose repetition is safe and may find something new (a rerun bills only differences
    not recorded yet: run again later, it bills the usage counted since, never twice)."""
    if fresh:
        import uuid

        return "cli-" + uuid.uuid4().hex
    seed = json.dumps({"m": method, "p": path, "b": body}, sort_keys=True, default=str)
    return "cli-" + hashlib.sha256(seed.encode()).hexdigest()[:40]


def refusal(
    status: int,
    code: str | None,
    message: str | None,
    details: Sequence[Any],
    err: Any,
    param: str | None = None,
) -> None:
    """A refusal, the same shape for every command: ``refused: HTTP 409 code: message`` (and ``(param:
    name)`` when the error names the field), then the error's details (which field or invoice, and why)
    as JSON."""
    head = f"refused: HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    print(head + (f" (param: {param})" if param else ""), file=err)
    if details:
        print(json.dumps(list(details), indent=2, sort_keys=True, default=str), file=err)


def execute(args: argparse.Namespace, send: Transport, err: Any = None) -> int:
    """Build the request of ``args`` (``args.build``), send it, print the answer; returns the exit code."""
    err = err or sys.stderr
    method, path, body, query = args.build(args)
    if query:
        path += "?" + urlencode(query)
    headers: dict[str, str] = {}
    if method != "GET":
        key = args.idempotency_key or default_key(method, path, body, getattr(args, "fresh_key", False))
        headers["Idempotency-Key"] = key
        print(f"Idempotency-Key: {key}", file=err)
    try:
        status, answer = send(method, path, body, headers)
    except (urllib.error.URLError, OSError) as error:
        print(f"error: {method} {path} could not connect: {error}", file=err)
        return 2
    if 200 <= status < 300:
        print(json.dumps(answer, indent=2, sort_keys=False))
        return 0
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        details = error.get("details") if isinstance(error.get("details"), list) else []
        refusal(status, error.get("code"), error.get("message"), details, err, error.get("param"))
    else:  # not the API's error object (a gateway's answer): shown as it came
        refusal(status, None, None, [], err)
        print(answer if isinstance(answer, str) else json.dumps(answer, indent=2), file=err)
    return 1


def run(args: argparse.Namespace) -> int:
    """``execute`` against the command's target (``api_target``) with its key."""
    base_url, api_key = api_target.base_url(args), api_target.api_key(args)
    if not api_key:
        print("error: give --api-key (or NERUBA_API_KEY), an admin key", file=sys.stderr)
        return 2
    return execute(args, http_transport(base_url, api_key))
