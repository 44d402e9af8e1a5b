"""Every user mistake is one line on stderr and exit code 2: no usage block, no traceback, no
pydantic wording, whether click, typer, pydantic or tbhub itself finds it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eventfiles import write_scalar_file

MISTAKES = {
    "a bad --sort choice": (["runs", "--sort", "loss", "{root}"], "--sort"),
    "a bad compare --sort": (["compare", "--sort", "loss", "--tag", "loss", "{root}"], "--sort: 'loss' is not a sort"),
    "an unknown option": (["runs", "--bogus"], "No such option: --bogus"),
    "a missing argument": (["restore"], "Missing argument 'ARCHIVE'"),
    "a bad --older-than": (["runs", "--older-than", "soon", "{root}"], "--older-than: 'soon' is not a duration"),
    "a bad --select": (["clean", "--select", "zz", "--dry-run", "{root}"], "--select: 'zz' is not an index"),
    "a number that is not one": (["history", "--limit", "many"], "'--limit'"),
    "an unknown command": (["bogus"], "No such command 'bogus'"),
    "an unknown sub-command": (["users", "bogus"], "No such command 'bogus'"),
    "a bad --target": (["compare", "--tag", "loss", "--target", "loss", "{root}"], "--target: 'loss' is not a target"),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_a_mistake_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    args, words = MISTAKES[case]
    root = tmp_path / "logs"
    write_scalar_file(root / "ds" / "run", range(3))
    argv = [a.replace("{root}", str(root)) for a in args]
    result = subprocess.run([sys.executable, "-m", "tbhub", *argv], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TBHUB_HOME": str(tmp_path / "home")}, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and words in lines[0], lines[0]
    assert "Value error" not in lines[0] and "Usage:" not in result.stderr and "Traceback" not in result.stderr
    if argv[0] != "clean":  # clean shows its table before it reads --select
        assert result.stdout == ""


def test_a_click_error_points_at_the_commands_help(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "tbhub", "users", "add"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "TBHUB_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr == "error: Missing argument 'NAME' (see tbhub users add --help)\n"
