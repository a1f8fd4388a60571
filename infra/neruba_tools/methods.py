"""The methods each API path serves, read from template.yaml, for the function that answers 405.

Every API path has an ``ANY`` event routed to ``MethodNotAllowedFunction`` (docs/api.md); that function
reads the methods per path from ``functions/method_not_allowed/allowed.json``, which this module writes
(``neruba allowed-methods > functions/method_not_allowed/allowed.json``) and tests/infra compares with the
template. Paths whose ``ANY`` event goes to another function (the console) answer 405 themselves.

Example:
    >>> doc = {"Resources": {"F": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {
    ...     "A": {"Type": "Api", "Properties": {"Path": "/v1/x", "Method": "get"}},
    ...     "B": {"Type": "Api", "Properties": {"Path": "/v1/x", "Method": "POST"}}}}}}}
    >>> allowed_methods(doc)
    {'/v1/x': ['GET', 'POST']}
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neruba_tools.local.template import Template

FUNCTION = "MethodNotAllowedFunction"
ALLOWED_FILE = Path("functions/method_not_allowed/allowed.json")


def allowed_methods(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per API path, the methods its events declare (``ANY`` left out), over every function."""
    served: dict[str, set[str]] = {}
    for route in Template(document).api_routes():
        methods = served.setdefault(route.path, set())
        if route.method != "ANY":
            methods.add(route.method)
    return {path: sorted(methods) for path, methods in sorted(served.items())}


def any_routes(document: Mapping[str, Any]) -> dict[str, str]:
    """Per API path, the function its ``ANY`` event reaches (paths without one are left out)."""
    return {r.path: r.function for r in Template(document).api_routes() if r.method == "ANY"}


def refused_paths(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """What ``allowed.json`` holds: the paths whose ``ANY`` reaches the 405 function, and their methods."""
    routed = any_routes(document)
    return {p: m for p, m in allowed_methods(document).items() if routed.get(p, FUNCTION) == FUNCTION}


def allowed_text(document: Mapping[str, Any]) -> str:
    """``allowed.json`` as committed."""
    return json.dumps(refused_paths(document), indent=2, sort_keys=True) + "\n"


def _print(args: Any) -> int:
    from neruba_tools.local.intrinsics import load_template

    sys.stdout.write(allowed_text(load_template(args.template)))
    return 0


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "allowed-methods", help="print functions/method_not_allowed/allowed.json, read from the template"
    )
    parser.add_argument(
        "--template", default="template.yaml", help="the SAM template (default: template.yaml)"
    )
    parser.set_defaults(func=_print)
