"""A stack name that has no tables at a local endpoint is an error naming the stack, for every command
(``config check`` included), as an unknown stack is on AWS; the local stack's own name still works."""

from __future__ import annotations

from typing import Any

import pytest

from neruba_tools import stackinfo
from neruba_tools.cli import main
from neruba_tools.stackinfo import StackError, StackInfo


def test_a_local_stack_without_tables_is_a_stack_error(aws: dict[str, str]) -> None:
    assert StackInfo("test", local=True).resource("KeysTable") == aws["KeysTable"]
    with pytest.raises(StackError, match="wrongname"):
        StackInfo("wrongname", local=True).resource("KeysTable")


@pytest.mark.parametrize("command", [["config", "check"], ["keys", "list"], ["migrate", "--list"]])
def test_every_command_refuses_a_wrong_local_stack_name(
    aws: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    monkeypatch.setattr(stackinfo, "is_local_endpoint", lambda url: True)  # moto in process stands for it
    monkeypatch.delenv("NERUBA_OPS_TABLE")
    assert main([*command, "--stack", "wrongname"]) == 2
    captured = capsys.readouterr()
    assert "Configuration OK" not in captured.out
    err = captured.err.strip()
    assert "\n" not in err and "wrongname" in err and "neruba-local" in err, err
