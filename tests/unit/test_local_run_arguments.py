"""``neruba local run`` (``make run ARGS=...``) refuses a state directory that cannot be one and a negative
snapshot period with one usage line (exit 2), before anything starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neruba_tools.local.run import build_parser


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--snapshot-seconds", "-1"], ["--snapshot-seconds", ">= 0"]),
        (["--snapshot-seconds", "nan"], ["--snapshot-seconds"]),
        (["--state-dir", "FILE"], ["--state-dir", "not a directory"]),
        (["--state-dir", "FILE/below"], ["--state-dir", "not a directory"]),
    ],
)
def test_bad_state_arguments_are_one_usage_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    args = [arg.replace("FILE", str(a_file)) for arg in args]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(args)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2
    for word in words:
        assert word in last, last


def test_good_state_arguments_pass(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--state-dir", str(tmp_path / "new"), "--snapshot-seconds", "0"])
    assert args.state_dir == str(tmp_path / "new") and args.snapshot_seconds == 0


def test_a_state_dir_that_cannot_be_made_is_one_error(tmp_path: Path) -> None:
    from neruba_tools.local.state import StateDirError, claim

    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    with pytest.raises(StateDirError, match="cannot keep the state in"):
        claim(a_file / "state")


def test_a_claimed_state_dir_is_refused_until_released(tmp_path: Path) -> None:
    from neruba_tools.local.state import StateDirInUseError, claim

    first = claim(tmp_path)
    with pytest.raises(StateDirInUseError, match=f"pid {os.getpid()}"):
        claim(tmp_path)
    first.close()
    claim(tmp_path).close()
