"""The ``Custom::Migrations`` resource: run the pending migrations on Create/Update and answer
CloudFormation at the request's ``ResponseURL`` (a presigned S3 URL; PUT, JSON body, no content type).

A failing migration answers ``FAILED`` with the migration's name and cause as the reason, which fails the
deploy (CloudFormation shows the reason in the stack events and rolls back). ``Delete`` answers SUCCESS
without touching data. A ``Version`` (the shared layer's version ARN, which changes with the code) whose
migrations already succeeded answers SUCCESS at once: that is what a rollback to the previous version
sends, and it must not fail again on the migration that failed the update.

Example:
    >>> response_body({"StackId": "s", "RequestId": "r", "LogicalResourceId": "M"}, "SUCCESS", "ok", "p", {})
    ... # doctest: +ELLIPSIS
    {'Status': 'SUCCESS', 'Reason': 'ok', 'PhysicalResourceId': 'p', ...}
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

PHYSICAL_ID = "neruba-migrations"
MAX_REASON = 900  # CloudFormation keeps the reason short; the full story is in the function's log


def response_body(
    event: dict[str, Any], status: str, reason: str, physical_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "Status": status,
        "Reason": reason[:MAX_REASON],
        "PhysicalResourceId": physical_id,
        "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"),
        "NoEcho": False,
        "Data": data,
    }


def send_response(url: str, body: dict[str, Any], attempts: int = 4) -> None:
    """PUT the answer to CloudFormation, retrying network errors (a lost answer hangs the deploy)."""
    data = json.dumps(body).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": ""})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                response.read()
            return
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(2**attempt)


def handle(
    event: dict[str, Any],
    log_stream: str,
    run: Callable[[], list[Any]],
    version_done: Callable[[str], bool],
    mark_version: Callable[[str], None],
) -> dict[str, Any]:
    """Decide the answer to one custom-resource request; returns the body sent to ResponseURL."""
    physical_id = str(event.get("PhysicalResourceId") or PHYSICAL_ID)
    version = str((event.get("ResourceProperties") or {}).get("Version") or "")
    status, reason, data = "SUCCESS", "", {}
    try:
        if event.get("RequestType") == "Delete":
            reason = "nothing to undo: data migrations are kept"
        elif version and version_done(version):
            reason = f"version {version} already migrated"
        else:
            outcomes = run()
            applied = [f"{o.number:04d}_{o.name}" for o in outcomes if o.status == "applied"]
            data = {"Applied": ",".join(applied) or "none", "Skipped": str(len(outcomes) - len(applied))}
            reason = f"applied {data['Applied']}; {data['Skipped']} already recorded"
            if version:
                mark_version(version)
    except Exception as exc:
        status = "FAILED"
        reason = f"{exc} (log stream {log_stream})"
    return response_body(event, status, reason, physical_id, data)
