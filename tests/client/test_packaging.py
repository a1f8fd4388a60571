"""The client stands alone: it imports only the standard library, httpx, pydantic and itself, and
installs with pip from its own folder."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "python" / "neruba_client"
ALLOWED = {"httpx", "pydantic", "neruba_client"}


def test_the_client_imports_only_httpx_pydantic_and_the_standard_library() -> None:
    outside: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED and top not in sys.stdlib_module_names and top != "__future__":
                    outside.setdefault(path.name, set()).add(top)
    assert outside == {}
    assert (PACKAGE / "py.typed").exists()
