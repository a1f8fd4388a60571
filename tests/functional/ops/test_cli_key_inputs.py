"""``neruba keys`` refuses input that would do something else than what the operator meant: a whole key
whose secret part is not the stored key's names no key (it is not revoked or rotated), and a key name is
one line of printable text, so ``keys list`` stays one row per key."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.dal.keys import KeysRepository
from neruba.settings import get_settings
from neruba_tools.cli import main


def _created(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["keys", "create", "--scope", "read", *args]) == 0
    out = capsys.readouterr().out
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("API key: "))


def _mistyped(plaintext: str) -> str:
    return plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")


@pytest.mark.parametrize("action", [["revoke"], ["rotate", "--overlap", "0"]])
def test_a_whole_key_with_a_wrong_secret_names_no_key(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str], action: list[str]
) -> None:
    plaintext = _created(capsys)
    repo = KeysRepository(get_settings().keys_table)
    # WHEN the operator passes a whole key whose secret part differs from the stored key's
    code = main(["keys", action[0], _mistyped(plaintext), *action[1:]])
    # THEN it is a one-line usage error and the key keeps working, with no new key made
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "not" in err, err
    assert repo.authenticate(plaintext) is not None
    assert len(repo.list()) == 1
    # AND the key itself, its id and its listed prefix still name it
    assert main(["keys", action[0], plaintext, *action[1:]]) == 0
    assert repo.authenticate(plaintext) is None


@pytest.mark.parametrize("name", ["a\nb", "red\x1b[31m", "tab\there", "x" * 101, ""])
def test_a_key_name_is_one_line_of_printable_text(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str], name: str
) -> None:
    if name == "":
        _created(capsys, "--name", name)  # no name is allowed (the default)
        return
    with pytest.raises(SystemExit) as exit_:
        main(["keys", "create", "--scope", "read", "--name", name])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and "--name" in err and "printable" in err, err
    assert KeysRepository(get_settings().keys_table).list() == []
