"""Cold import of every Lambda handler, each in a fresh interpreter, against two baselines measured in the
same run: ``import boto3`` alone, and a bare Powertools ``APIGatewayRestResolver(enable_validation=True)``
app with one pydantic route.

What is timed is the handler module's import (everything a cold start runs before the first invocation),
not the interpreter's own start-up. Each figure is the median of ``ROUNDS`` fresh interpreters. The same
probe also records which heavy packages the handler pulled in (``stripe``, ``boto3``, ``pydantic``), so the
report shows that only the Stripe functions import ``stripe``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 7

_PROBE = """
import json, sys, time
start = time.perf_counter()
{body}
elapsed = time.perf_counter() - start
names = ("stripe", "boto3", "botocore", "pydantic", "aws_lambda_powertools")
heavy = sorted(m for m in names if m in sys.modules)
print(json.dumps({{"seconds": elapsed, "modules": heavy}}))
"""

_HANDLER = """
import importlib.util
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
"""

_BOTO3 = "import boto3"

_BARE_POWERTOOLS = """
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pydantic import BaseModel

class Thing(BaseModel):
    name: str

app = APIGatewayRestResolver(enable_validation=True)

@app.post("/things")
def create(thing: Thing) -> dict:
    return {"name": thing.name}
"""

# What an SQS worker cannot do without under the project's fixed packages, with no project code at all,
# in cumulative steps: botocore's session and config (the clients), boto3's DynamoDB value serializer,
# Powertools' Logger and Metrics, its batch utility, and one pydantic model (the queue message).
_FLOOR_STEPS = (
    ("botocore_clients", "import botocore.session\nfrom botocore.config import Config\n"),
    ("dynamodb_serializer", "from boto3.dynamodb.types import TypeSerializer\n"),
    (
        "powertools_logger_metrics",
        "from aws_lambda_powertools import Logger, Metrics\n"
        'logger = Logger(service="floor")\nmetrics = Metrics(namespace="floor")\n',
    ),
    (
        "powertools_batch",
        "from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType\n"
        "processor = BatchProcessor(event_type=EventType.SQS)\n",
    ),
    ("pydantic_message_model", "from pydantic import BaseModel\nclass Job(BaseModel):\n    id: str\n"),
)
_WORKER_FLOOR = "".join(code for _name, code in _FLOOR_STEPS)


def _environment() -> dict[str, str]:
    from tests.conftest import TEST_ENVIRONMENT

    env = {**os.environ, **TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR", "PYTHONDONTWRITEBYTECODE": "0"}
    env["NERUBA_DOCS_ENABLED"] = "false"  # the template's default (docs are opt-in per stage)
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def run_python(code: str, env: dict[str, str]) -> Any:
    """Run ``code`` in a fresh interpreter at the repository root; the JSON of its last line of output."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _probe(body: str, env: dict[str, str]) -> dict[str, Any]:
    runs = []
    modules: list[str] = []
    for _ in range(ROUNDS):
        answer = run_python(_PROBE.format(body=body), env)
        runs.append(answer["seconds"])
        modules = answer["modules"]
    return {"median_ms": round(statistics.median(runs) * 1000, 1), "modules": modules}


def handlers() -> dict[str, tuple[Path, str]]:
    """Logical id -> (handler file, kind) for every function in template.yaml."""
    from neruba_tools.local.intrinsics import load_template

    template = load_template(ROOT / "template.yaml")
    found: dict[str, tuple[Path, str]] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        module = props["Handler"].rsplit(".", 1)[0]
        events = [e["Type"] for e in (props.get("Events") or {}).values()]
        kind = "api" if "Api" in events else "worker" if "SQS" in events or "Schedule" in events else "other"
        found[name] = (ROOT / props["CodeUri"] / f"{module}.py", kind)
    return found


def main() -> dict[str, Any]:
    env = _environment()
    # a first, untimed import of everything warms the file-system cache and writes bytecode
    for path, _kind in handlers().values():
        subprocess.run(
            [sys.executable, "-c", _HANDLER.format(path=str(path))], env=env, cwd=ROOT, check=False
        )
    boto3 = _probe(_BOTO3, env)
    bare = _probe(_BARE_POWERTOOLS, env)
    steps = {}
    for n, (step, _code) in enumerate(_FLOOR_STEPS, start=1):
        measured = _probe("".join(code for _name, code in _FLOOR_STEPS[:n]), env)
        steps[step] = {"median_ms": measured["median_ms"], "ratio_to_import_boto3": 0.0}
        steps[step]["ratio_to_import_boto3"] = round(measured["median_ms"] / boto3["median_ms"], 2)
    floor = _probe(_WORKER_FLOOR, env)
    rows = {}
    for name, (path, kind) in sorted(handlers().items()):
        measured = _probe(_HANDLER.format(path=str(path)), env)
        baseline = bare if kind == "api" else boto3
        limit = 1.0 if kind == "api" else 1.3
        ratio = measured["median_ms"] / baseline["median_ms"]
        rows[name] = {
            **measured,
            "kind": kind,
            "baseline": "bare_powertools_app" if kind == "api" else "import_boto3",
            "ratio": round(ratio, 2),
            "target": limit,
            "meets_target": ratio <= limit,
        }
        if kind != "api":
            rows[name]["ratio_to_worker_floor"] = round(measured["median_ms"] / floor["median_ms"], 2)
    return {
        "benchmark": "cold import per handler",
        "machine": f"{platform.machine()} {platform.system()} Python {platform.python_version()}, "
        f"{os.cpu_count()} cores",
        "rounds": ROUNDS,
        "baselines": {
            "import_boto3": boto3,
            "bare_powertools_app": bare,
            "worker_floor": {
                **floor,
                "ratio_to_import_boto3": round(floor["median_ms"] / boto3["median_ms"], 2),
                "cumulative_steps": steps,
            },
        },
        "handlers": rows,
    }


if __name__ == "__main__":
    result = main()
    print(json.dumps(result, indent=2))
