"""Every command's ``--help``: human metavars, whole summaries, and an Examples section whose command
lines parse, and (where they can run here) run, against a real config in the working folder."""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from clirun import run_cli

from eventfiles import write_scalar_file
from tbhub.interfaces.cli.formatting import examples_of, summary_of
from tbhub.interfaces.cli.main import COMMANDS, build_app
from tbhub.interfaces.cli.reference import commands

#: A Python type where a metavar belongs: ``<str>``, ``<list[str]>``, ``<int>``.
RAW_TYPE = re.compile(r"<(str|int|float|bool|path|list\[)")
ALL = [(name, command) for name, command, _ in commands()]


def example_argv(example: str) -> tuple[list[str], str | None]:
    """An example's arguments after ``tbhub``, and what an ``echo "$X" |`` before it sends to stdin."""
    stdin = None
    if "|" in example and example.startswith("echo"):
        feed, _, example = example.partition("|")
        stdin = "a-long-password\n" if "PASSWORD" in feed else feed
    words = shlex.split(example)
    if ">" in words:  # a redirection is the shell's
        words = words[: words.index(">")]
    assert words[0] == "tbhub", example
    return words[1:], stdin


@pytest.mark.parametrize(("name", "command"), ALL, ids=[name for name, _ in ALL])
def test_help_has_human_metavars_and_examples(capsys: pytest.CaptureFixture[str], name: str, command: Any) -> None:
    code, out, err = run_cli(capsys, *name.split()[1:], "--help")
    assert code == 0, err
    usage = out.splitlines()[0]
    assert usage.startswith(f"Usage: {name} ") and "{" not in usage and "<" not in usage, usage
    assert not RAW_TYPE.search(out) and "list[" not in out, out
    assert "\nExamples:\n" in out, f"{name} --help has no Examples section"
    examples = examples_of(command)
    assert examples, name
    for example in examples:
        assert f"\n  {example}\n" in out, f"{example!r} is rewrapped in {name} --help"
        argv, _ = example_argv(example)
        assert argv[: len(name.split()) - 1] == name.split()[1:], f"{example!r} is not an example of {name}"


def test_the_command_list_shows_whole_summaries(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    flat = " ".join(out.split())
    root = typer.main.get_command(build_app())
    for name in COMMANDS:
        summary = summary_of(root.commands[name])  # type: ignore[attr-defined]
        assert f"{name} {summary}" in flat, summary
    assert "..." not in out.split("Commands:")[1].replace("Bearer ...", "")


def test_trainer_is_a_hidden_alias_of_endpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "clean", "--help")
    assert code == 0 and "-e, --endpoint NAME" in out and "--trainer" not in out
    write_scalar_file(tmp_path / "logs" / "ds" / "run", range(3))
    code, out, err = run_cli(capsys, "clean", "--logdir", f"lora={tmp_path / 'logs'}", "--trainer", "lora",
                             "--select", "all", "--dry-run", "--active-minutes", "0")
    assert code == 0, err
    assert "lora/ds/run" in out and "dry run: nothing was touched" in out


def _parse(argv: list[str]) -> None:
    """Let click parse ``tbhub ARGV`` down to its command, as running it would (types, callbacks)."""
    command: Any = typer.main.get_command(build_app())
    ctx = command.make_context("tbhub", list(argv))
    while hasattr(command, "commands"):
        name, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        ctx = command.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize(("name", "command"), ALL, ids=[name for name, _ in ALL])
def test_every_example_parses(name: str, command: Any) -> None:
    for example in examples_of(command):
        _parse(example_argv(example)[0])


#: Examples that cannot run here (a regular expression matching them), and where they are tested instead.
NOT_RUN = {
    r"tbhub demo": "long-running (tests/test_demo.py)",
    r"tbhub serve ": "long-running (tests/interfaces/test_serve.py)",
    r"tbhub clean --config tbhub.toml$": "asks on a terminal (tests/interfaces/test_clean.py)",
    r"tbhub retention apply --config tbhub.toml$": "asks on a terminal (tests/interfaces/test_retention_cli.py)",
    r"tbhub users (add|password) alice": "asks for a password on a terminal",
    r"tbhub notify test": "needs a receiver (tests/interfaces/test_notify_cli.py)",
    r".*s3://": "needs object storage (tests/interfaces/test_s3_manage.py)",
}


def _runnable(example: str) -> bool:
    return not any(re.match(pattern, example) for pattern in NOT_RUN)


def _localised(argv: list[str], tmp: Path) -> list[str]:
    """Paths of the examples (/data/tb, /archive/tb) moved into the test's folder."""
    out = []
    for arg in argv:
        arg = arg.replace("/data/tb", str(tmp / "logs" / "lora")).replace("/archive/tb", str(tmp / "archive"))
        if arg.endswith(".tar.zst"):  # archives are named by when they were written
            run = Path(arg).name.split("--")[0]
            (arg,) = [str(p) for p in Path(arg).parent.glob(f"{run}--*.tar.zst")]
        out.append(arg)
    return out


def test_every_runnable_example_runs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    """The examples in the order ``tbhub --help`` lists their commands (clean archives r32, restore puts
    it back, pin pins it ...), each exiting 0 against ./tbhub.toml in the working folder."""
    logs = tmp_path / "logs"
    tags = ("train/loss", "eval/loss", "eval/accuracy")
    for relpath, days in {"lora/alpaca/r32": 40, "lora/alpaca/r16": 0.1, "router/base/r1": 2}.items():
        write_scalar_file(logs / relpath, range(30), tags)
        t = time.time() - days * 86400
        for p in [*(logs / relpath).rglob("*"), logs / relpath]:
            os.utime(p, (t, t))
    Path("tbhub.toml").write_text(
        f'[endpoints.lora]\nlogdir = "{logs / "lora"}"\n[endpoints.router]\nlogdir = "{logs / "router"}"\n'
    )
    for user in ("alice", "bob", "carol"):
        monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-password\n"))
        assert run_cli(capsys, "users", "add", user, "--password-stdin")[0] == 0
    ran = 0
    for _, command in ALL:
        for example in examples_of(command):
            if not _runnable(example):
                continue
            argv, stdin = example_argv(example)
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
            code, out, err = run_cli(capsys, *_localised(argv, tmp_path))
            assert code == 0, f"{example}\n{out}\n{err}"
            ran += 1
    assert ran >= 60
    assert (logs / "lora" / "alpaca" / "r32").is_dir()  # archived by clean, back by restore


def test_shell_completion_script_and_answers(tmp_path: Path) -> None:
    env = {**os.environ, "TBHUB_HOME": str(tmp_path)}
    script = subprocess.run([sys.executable, "-m", "tbhub", "--show-completion", "bash"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == 0 and "_TBHUB_COMPLETE=complete_bash" in script.stdout
    assert "complete -o default -F _tbhub_completion tbhub" in script.stdout, script.stdout
    # What `tbhub --help` tells bash users to put in ~/.bashrc prints the same script.
    sourced = subprocess.run([sys.executable, "-m", "tbhub"], env=env | {"_TBHUB_COMPLETE": "source_bash"},
                             capture_output=True, text=True, timeout=60)
    assert sourced.returncode == 0 and sourced.stdout.strip() == script.stdout.strip()
    answer = subprocess.run(
        [sys.executable, "-m", "tbhub"], capture_output=True, text=True, timeout=60,
        env=env | {"_TBHUB_COMPLETE": "complete_bash", "COMP_WORDS": "tbhub ru", "COMP_CWORD": "1"},
    )
    assert answer.returncode == 0 and answer.stdout.split() == ["runs"], answer
    answer = subprocess.run(
        [sys.executable, "-m", "tbhub"], capture_output=True, text=True, timeout=60,
        env=env | {"_TBHUB_COMPLETE": "complete_bash", "COMP_WORDS": "tbhub runs --so", "COMP_CWORD": "2"},
    )
    assert answer.stdout.split() == ["--sort"], answer
