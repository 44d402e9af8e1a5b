"""What the ``tbhub serve`` process loads: only its own command, never the CLI's libraries in the hub,
and the TensorBoards before the hub's own database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import typer
from clirun import run_cli
from serving import free_port, serve

from eventfiles import write_scalar_file
from tbhub.interfaces.cli.main import COMMANDS, build_app

OTHER_COMMAND_MODULES = {f"tbhub.interfaces.cli.{m}" for m, _ in COMMANDS.values()} - {"tbhub.interfaces.cli.serve"}


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code`` (not those marked absent)."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_serve_loads_no_other_command() -> None:
    modules = loaded_after(
        "from tbhub.interfaces.cli.main import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass"
    )
    assert "tbhub.interfaces.cli.serve" in modules
    assert modules & OTHER_COMMAND_MODULES == set()


def test_the_whole_command_has_every_sub_command(capsys: pytest.CaptureFixture[str]) -> None:
    group = typer.main.get_command(build_app())
    assert set(group.commands) == set(COMMANDS)  # type: ignore[attr-defined]
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and all(name in out for name in COMMANDS)
    for name in COMMANDS:
        code, out, err = run_cli(capsys, name, "--help")
        assert code == 0, (name, err)
        assert f"Usage: tbhub {name}" in out


def test_an_unknown_command_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "bogus")
    assert code == 2 and "No such command 'bogus'" in err


def test_root_options_before_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("tbhub ")


def test_the_hub_does_not_load_the_cli_libraries() -> None:
    modules = loaded_after(
        "import uvicorn\nfrom tbhub.app.hub import Hub\nfrom tbhub.interfaces.web.app import create_app\n"
        "from tbhub.app.alerts import AlertEngine"
    )
    assert "fastapi" in modules and "sqlalchemy" in modules
    unwanted = {"typer", "rich", "pygments", "httpx._main"}
    assert {m for m in modules if m.split(".")[0] in unwanted or m == "httpx._main"} == set()
    assert {m for m in modules if m.startswith("tbhub.interfaces.cli")} == set()
    # Event files are parsed in worker processes (tbhub.app.workers): protobuf stays out of the hub.
    assert {m for m in modules if m.startswith(("google.protobuf", "tbhub.adapters.scalar_decoder"))} == set()


def test_httpx_still_works_without_its_command_line_client() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import tbhub, httpx; print(httpx.Client, callable(httpx.main))"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0 and "httpx.Client" in out.stdout and "True" in out.stdout


@pytest.mark.slow
def test_a_state_database_failure_after_the_tensorboards_started_leaves_nothing(tmp_path: Path) -> None:
    """``serve`` starts the TensorBoards before it opens the state database; when the database then
    fails, the error is one line and the TensorBoards are stopped."""
    root = tmp_path / "logs"
    write_scalar_file(root / "ds" / "run", range(5))
    closed = free_port()  # nothing listens there
    config = tmp_path / "tbhub.toml"
    config.write_text(
        f'[server]\nport = {free_port()}\n[state]\ndir = "{tmp_path / "state"}"\n'
        f'database = "postgresql+psycopg://tbhub@127.0.0.1:{closed}/tbhub?connect_timeout=3"\n'
        f'[endpoints.lora]\nlogdir = "{root}"\nport = {free_port()}\n'
    )
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tbhub", "serve", "--config", str(config), "--log-level", "info"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr  # StateError: the environment, not a usage mistake
    assert "launched TensorBoard" in result.stderr  # it had started
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "state database" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
    left = [p for p in psutil.process_iter(["cmdline"]) if str(root) in " ".join(p.info["cmdline"] or [])]
    assert left == []


@pytest.mark.slow
def test_the_hub_runs_on_uvicorns_c_parser_and_event_loop(tmp_path: Path) -> None:
    """``serve`` leaves uvicorn's choice on auto: with httptools and uvloop installed (dependencies),
    the running hub has their extension modules mapped, not just the pure-Python h11 and asyncio."""
    root = tmp_path / "logs"
    write_scalar_file(root / "ds" / "run", range(5))
    with serve(tmp_path / "srv", {"lora": root}) as server:
        assert server.get("/").status_code == 200  # a request went through the parser
        maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    assert "/uvloop/loop." in maps
    assert "/httptools/parser/parser." in maps
