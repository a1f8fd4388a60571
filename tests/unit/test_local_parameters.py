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


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("BillingGraceSeconds=abc", ["BillingGraceSeconds", "whole number", "'abc'"]),
        ("BillingGraceSeconds=-5", ["BillingGraceSeconds", "at least 0", "'-5'"]),
        ("BillingGraceSeconds=1.5", ["BillingGraceSeconds", "whole number"]),
        ("BillingGraceSeconds=2592001", ["BillingGraceSeconds", "at most 2592000"]),
        ("Stage=bogus", ["Stage", "dev, prod", "'bogus'"]),
        ("AuthorizerCacheTtl=abc", ["AuthorizerCacheTtl", "whole number"]),
        ("LogRetentionDays=8", ["LogRetentionDays", "one of 7, 14"]),
        ("DocsEnabled=yes", ["DocsEnabled", "one of true, false"]),
    ],
)
def test_a_value_the_template_does_not_allow_is_one_line_before_anything_starts(
    given: str, words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run.main(["--template", str(ROOT / "template.yaml"), "--parameter", given, "--no-stripe"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err, (word, err)


def test_the_template_rules_cover_patterns_and_lengths() -> None:
    from neruba_tools.local.parameters import parameter_problem

    rule = {"Type": "String", "AllowedPattern": "[a-z]+", "MinLength": 2, "MaxLength": 4}
    assert parameter_problem("P", rule, "abc") is None
    assert "pattern" in (parameter_problem("P", rule, "ab1") or "")
    assert "at least 2 characters" in (parameter_problem("P", rule, "a") or "")
    assert "at most 4 characters" in (parameter_problem("P", rule, "abcde") or "")
    assert parameter_problem("P", {"Type": "Number", "MinValue": 0}, "12") is None


def test_every_number_parameter_of_the_template_is_a_count() -> None:
    # the local check takes a Number parameter as a whole number: true of every one the template declares
    from neruba_tools.local.intrinsics import load_template

    for name, definition in load_template(ROOT / "template.yaml")["Parameters"].items():
        if definition["Type"] == "Number":
            assert isinstance(definition["Default"], int), name
