"""Built size of every Lambda function and of the shared layer, after ``sam build`` (no container).

Runs ``.venv-tools/bin/sam build --template template.yaml --build-dir .aws-sam/build`` (which pip-installs
the layer's and any function's ``requirements.txt`` for the target architecture), then records for each
build folder the number of files, the bytes on disk (sum of file sizes) and the bytes once zipped (what
Lambda's 50 MB direct-upload limit counts), plus the heaviest top-level packages. Lambda's other limit,
250 MB unzipped for a function and all its layers together, is checked per function.

    .venv/bin/python -m benchmarks.package_size     # writes benchmarks/results/package_size.json
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / ".aws-sam" / "build"
OUT = ROOT / "benchmarks" / "results" / "package_size.json"
SAM = ROOT / ".venv-tools" / "bin" / "sam"
UNZIPPED_LIMIT = 250 * 1024 * 1024
LAYER = "SharedLayer"


def build() -> float:
    """Run ``sam build``; returns the seconds it took."""
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    started = time.perf_counter()
    subprocess.run(
        [str(SAM), "build", "--template", "template.yaml", "--build-dir", str(BUILD_DIR)],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=1_800,
    )
    return time.perf_counter() - started


def measure(folder: Path) -> dict[str, Any]:
    """Files, bytes on disk and zipped bytes of one build folder, and its five heaviest top-level entries.

    Example:
        >>> measure(Path("benchmarks"))["files"] > 0
        True
    """
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    tops: dict[str, int] = {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            relative = path.relative_to(folder)
            archive.write(path, relative.as_posix())
            top = _top_level(relative)
            tops[top] = tops.get(top, 0) + path.stat().st_size
    size = sum(p.stat().st_size for p in files)
    heaviest = sorted(tops.items(), key=lambda item: -item[1])[:5]
    return {
        "files": len(files),
        "bytes": size,
        "zipped_bytes": len(buffer.getvalue()),
        "heaviest": {name: n for name, n in heaviest},
    }


def _top_level(relative: Path) -> str:
    parts = relative.parts
    if parts[0] == "python" and len(parts) > 1:  # a layer: python/<package>/...
        parts = parts[1:]
    name = parts[0]
    return name.split("-")[0] if name.endswith((".dist-info", ".egg-info")) else name


def main() -> dict[str, Any]:
    seconds = build()
    layer = measure(BUILD_DIR / LAYER)
    functions = {}
    for folder in sorted(p for p in BUILD_DIR.iterdir() if p.is_dir() and p.name != LAYER):
        row = measure(folder)
        row["with_layer_bytes"] = row["bytes"] + layer["bytes"]
        row["within_unzipped_limit"] = row["with_layer_bytes"] <= UNZIPPED_LIMIT
        row["ships_stripe"] = (folder / "stripe").is_dir()
        functions[folder.name] = row
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "sam build --template template.yaml --build-dir .aws-sam/build (no container)",
        "build_seconds": round(seconds, 1),
        "unzipped_limit_bytes": UNZIPPED_LIMIT,
        "layer": layer,
        "functions": functions,
    }


if __name__ == "__main__":
    result = main()
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({name: row["bytes"] for name, row in result["functions"].items()}, indent=2))
    print(f"layer: {result['layer']['bytes']} bytes; wrote {OUT.relative_to(ROOT)}")
    sys.exit(0)
