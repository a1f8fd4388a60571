"""``make run ARGS="--no-seed"`` makes no API key: the banner says how to make the first one with the CLI
against this stack (and prints no ``API key:`` line a script would take for a key)."""

from __future__ import annotations

from types import SimpleNamespace

from neruba_tools.local.run import banner


def test_without_the_demo_the_banner_says_how_to_make_the_first_key() -> None:
    stack = SimpleNamespace(
        base_url="http://127.0.0.1:8080", moto_url="http://127.0.0.1:5055", schedules={}, state_dir=None,
        stripe_url=None, stripe_webhook_secret=None,
    )  # fmt: skip
    lines = banner(stack, None)
    assert not [line for line in lines if line.startswith("API key:")]
    hint = [line for line in lines if "neruba keys create" in line]
    assert hint and "--scope admin" in hint[0] and "--endpoint-url http://127.0.0.1:5055" in hint[0], lines
