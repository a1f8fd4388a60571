"""``make run ARGS="--parameter NAME=VALUE"``: template parameters reach the local stack's functions, as
``sam deploy --parameter-overrides`` makes them reach the deployed ones; a misspelt name is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from neruba_tools.local import run
from neruba_tools.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]


def test_a_parameter_reaches_every_functions_environment() -> None:
    stack = LocalStack("template.yaml", ROOT, parameters={"BillingGraceSeconds": "60"})
    for logical_id in ("BillingSchedulerFunction", "SweeperFunction"):
        assert stack.template.function_environment(logical_id)["NERUBA_BILLING_GRACE_SECONDS"] == "60"
    default = LocalStack("template.yaml", ROOT)
    assert default.template.function_environment("BillingSchedulerFunction")[
        "NERUBA_BILLING_GRACE_SECONDS"
    ] == ("3600")


def test_an_unknown_parameter_is_refused_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    code = run.main(["--template", str(ROOT / "template.yaml"), "--parameter", "BillingGrace=60"])
    assert code == 2
    assert "declares no parameter BillingGrace" in capsys.readouterr().err


def test_a_parameter_needs_a_name_and_a_value() -> None:
    with pytest.raises(SystemExit):
        run.build_parser().parse_args(["--parameter", "BillingGraceSeconds"])
