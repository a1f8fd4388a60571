"""What the operator types: global options anywhere, durations, scopes and key ids in every copied form."""

from __future__ import annotations

from datetime import timedelta

import pytest

from neruba.security.apikeys import MalformedKeyError, UnknownScopeError, key_id_of, strict_scopes
from neruba_tools.cli import _duration, _hoist_global_options


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["keys", "list", "--endpoint-url", "http://x"], ["--endpoint-url", "http://x", "keys", "list"]),
        (["keys", "list", "--endpoint-url=http://x"], ["--endpoint-url=http://x", "keys", "list"]),
        (["sweep", "--json", "--debug"], ["--debug", "sweep", "--json"]),
        (["--endpoint-url", "http://x", "dlq", "list"], ["--endpoint-url", "http://x", "dlq", "list"]),
    ],
)
def test_global_options_are_taken_wherever_they_are_typed(argv: list[str], expected: list[str]) -> None:
    assert _hoist_global_options(argv) == expected


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("90", 90), ("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert _duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "-1h", "1w", "1.5h"])
def test_a_duration_that_is_not_one_is_refused(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        _duration(text)


def test_scopes_are_strict() -> None:
    assert strict_scopes(["read", "ingest,admin"]) == {"read", "ingest", "admin"}
    with pytest.raises(UnknownScopeError, match="write"):
        strict_scopes(["read", "write"])


@pytest.mark.parametrize(
    "text", ["4f9c2a1b7d3e", "nrb_4f9c2a1b7d3e_…", "nrb_4f9c2a1b7d3e_", "nrb_4f9c2a1b7d3e_" + "x" * 43]
)
def test_a_key_is_named_by_its_id_its_listed_prefix_or_itself(text: str) -> None:
    assert key_id_of(text) == "4f9c2a1b7d3e"


@pytest.mark.parametrize("text", ["", "nrb_", "4f9c2a1b7d3", "nrb_zzzzzzzzzzzz_…", "abc_4f9c2a1b7d3e_…"])
def test_anything_else_is_not_a_key(text: str) -> None:
    with pytest.raises(MalformedKeyError):
        key_id_of(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["invoices", "--base-url", "http://api", "--api-key", "k", "rerun", "in_1", "--reason", "checked"],
        ["invoices", "rerun", "in_1", "--reason", "checked", "--base-url", "http://api", "--api-key", "k"],
        ["credit-notes", "list", "in_1", "--base-url", "http://api", "--api-key", "k"],
    ],
    ids=["before-the-subcommand", "after-it", "another-group"],
)
def test_the_api_target_is_taken_before_or_after_a_corrections_subcommand(argv: list[str]) -> None:
    from neruba_tools.cli import build_parser

    args = build_parser().parse_args(argv)
    assert (args.base_url, args.api_key, args.stack) == ("http://api", "k", None)


def test_a_corrections_subcommand_without_the_target_leaves_it_to_the_environment() -> None:
    from neruba_tools.cli import build_parser

    args = build_parser().parse_args(["invoices", "rerun", "in_1", "--reason", "checked"])
    assert (args.base_url, args.api_key) == (None, None)


@pytest.mark.parametrize(
    ("argv", "dest"),
    [
        (["invoices", "rerun", "in_1", "--reason", "r", "--key", "K"], "idempotency_key"),
        (["invoices", "rerun", "in_1", "--reason", "r", "--idempotency-key", "K"], "idempotency_key"),
        (
            ["events", "void", "tx", "--customer", "c", "--reason", "r", "--ticket", "t", "--key", "K"],
            "idempotency_key",
        ),
        (["backfill", "commit", "bf_1", "--reason", "r", "--idempotency-key", "K"], "key"),
        (["backfill", "commit", "bf_1", "--reason", "r", "--key", "K"], "key"),
    ],
)
def test_every_write_command_takes_its_idempotency_key_under_either_name(argv: list[str], dest: str) -> None:
    from neruba_tools.cli import build_parser

    assert getattr(build_parser().parse_args(argv), dest) == "K"
