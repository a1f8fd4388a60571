"""What the template checks share: the template as written and as the SAM transform expands it (once)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("NERUBA_TOOLS_VENV", ROOT / ".venv-tools"))


def _tool(name: str) -> str:
    path = TOOLS / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools` (make test does it) to create the tools virtualenv")
    return str(path)


@pytest.fixture(scope="session")
def source() -> dict[str, Any]:
    from neruba_tools.local.intrinsics import load_template

    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="session")
def transformed() -> dict[str, Any]:
    result = subprocess.run(
        [_tool("python"), str(ROOT / "infra" / "sam_transform.py"), str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}
