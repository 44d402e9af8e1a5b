"""The README documents every command, every hub route and every ``--json`` shape as they are.

The shapes come from the README's "JSON output" table (command, object, fields) and are checked
against what each command prints on a small real tree: the set of keys of every object at that place
equals the documented set, so neither side can drift. A command given ``--json`` that the table does
not name, a command without a README section, or a route the README never mentions fails too.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from eventfiles import corrupt_header, write_scalar_file
from tbhub.adapters.db.store import open_state
from tbhub.interfaces.cli.main import COMMANDS, build_app, main

README = (Path(__file__).parent.parent / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n### {title}\n")
    end = README.find("\n## ", start)
    nxt = README.find("\n### ", start + 1)
    return README[start: min(e for e in (end, nxt) if e != -1)]


def _shape_rows() -> list[tuple[str, str, frozenset[str]]]:
    """(command, object, fields) for every row of the README's JSON output table."""
    rows = []
    for line in _section("JSON output").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`tbhub"):
            continue
        command, place = (re.fullmatch(r"`([^`]*)`", c) for c in cells[:2])
        assert command and place, f"README JSON output row not as `command` | `object` | fields: {line}"
        rows.append((command.group(1), place.group(1), frozenset(re.findall(r"`([^`]+)`", cells[2]))))
    return rows


SHAPES = _shape_rows()


def _invocations(tree: Tree) -> dict[str, list[str]]:
    """How the test runs each command the table names (its --json and --config are added)."""
    r1, arch = "lora/alpaca/r1", str(tree.archives)
    return {
        "tbhub runs": ["runs"],
        "tbhub runs --status": ["runs", "--status"],
        "tbhub compare": ["compare", "--tag", "loss", "--target", "loss<0.5"],
        "tbhub usage": ["usage"],
        "tbhub trends": ["trends", "--metric", "loss", "--target", "loss<0.5"],
        "tbhub note RUN TEXT": ["note", r1, "a first note"],
        "tbhub note RUN": ["note", r1],
        "tbhub pins": ["pins"],
        "tbhub bookmarks list": ["bookmarks", "list"],
        "tbhub users list": ["users", "list"],
        "tbhub tokens list": ["tokens", "list"],
        "tbhub notify list": ["notify", "list"],
        "tbhub retention plan": ["retention", "plan"],
        "tbhub clean": ["clean", "--match", "alpaca/*", "--select", "all", "--yes", "--archive-to", arch],
        "tbhub archives list": ["archives", "list", arch],
        "tbhub history": ["history"],
        "tbhub restore": ["restore", "ARCHIVE"],  # the archive clean wrote, found when it is there
        "tbhub retention apply": ["retention", "apply", "--yes"],
        "tbhub alerts": ["alerts"],
    }


class Tree:
    def __init__(self, base: Path) -> None:
        self.root, self.archives, self.config = base / "logs", base / "archives", base / "tbhub.toml"
        month_ago = time.time() - 30 * 86400
        for i, relpath in enumerate(("alpaca/r1", "alpaca/r2", "chat/r3")):
            path = write_scalar_file(self.root / relpath, range(50), ("loss", "lr"))
            if relpath == "chat/r3":
                corrupt_header(path, record=20)
            os.utime(path, (month_ago + i * 3600, month_ago + i * 3600))
        self.config.write_text(
            f'[state]\ndir = "{base / "state"}"\n'
            f'[endpoints.lora]\nlogdir = "{self.root}"\n'
            "[retention.lora]\nkeep_last = 1\nkeep_days = 7\n"
            "[cost]\nstorage_per_gb_month = 0.023\n"
            '[[notify]]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
        )


def _run(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
                code = 0
            except SystemExit as exit_:
                code = int(exit_.code or 0)
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """What every command in the table printed with --json, run in this order on one tree."""
    base = tmp_path_factory.mktemp("shapes")
    tree = Tree(base)
    cfg = ["--config", str(tree.config)]

    def setup(*argv: str, stdin: str = "") -> None:
        code, _, err = _run([*argv, *cfg], stdin)
        assert code == 0, (argv, err)

    setup("db", "upgrade")
    setup("pin", "lora/alpaca/r2")
    setup("tag", "lora/alpaca/r1", "baseline")
    setup("bookmarks", "add", "losses", "--endpoint", "lora", "--tags", "loss")
    setup("users", "add", "ada", "--role", "editor", "--password-stdin", stdin="correct horse\n")
    setup("users", "grant", "ada", "lora", "admin")
    setup("tokens", "create", "ci", "-e", "lora")
    state = open_state(f"sqlite:///{base / 'state' / 'tbhub.db'}")
    alert = state.insert_alert(key="lora/alpaca/r1:diverged", endpoint="lora", dataset="alpaca", run="r1",
                               status="diverged", at=time.time(), message="loss is NaN at step 40",
                               details=json.dumps({"tag": "loss", "step": 40}), url=None)
    assert alert is not None
    state.record_delivery(alert, "webhook-0", 1, "retry", error="connection refused", next_at=time.time() + 60)
    state.dispose()
    printed: dict[str, Any] = {}
    for command, argv in _invocations(tree).items():
        if argv == ["restore", "ARCHIVE"]:
            archive = next(str(p) for p in tree.archives.rglob("*") if p.name.endswith((".tar.zst", ".tar.gz")))
            argv = ["restore", archive]
        code, out, err = _run([*argv, *cfg, "--json"])
        assert code == 0, (command, err)
        printed[command] = json.loads(out)
    yield printed


def _objects(value: Any, place: str) -> list[Any]:
    """The values at ``place``: ``.`` the whole output, ``[]`` each element, ``.key`` a key, ``.*`` each value."""
    found = [value]
    for step in re.findall(r"\[\]|\.\*|\.[A-Za-z_]+", "" if place == "." else place):
        if step == "[]":
            found = [x for v in found for x in v]
        elif step == ".*":
            found = [x for v in found for x in v.values()]
        else:
            found = [v[step[1:]] for v in found]
    return found


def test_the_table_has_rows() -> None:
    assert len(SHAPES) >= 20, SHAPES


@pytest.mark.parametrize(("command", "place", "fields"), SHAPES, ids=[f"{c} {p}" for c, p, _ in SHAPES])
def test_documented_fields_are_the_printed_ones(
    outputs: dict[str, Any], command: str, place: str, fields: frozenset[str]
) -> None:
    assert command in outputs, f"the README documents {command!r}, which this test does not run"
    objects = _objects(outputs[command], place)
    assert objects, f"{command} printed nothing at {place}: the test tree must produce one"
    for obj in objects:
        assert set(obj) == fields, (
            f"{command} --json at {place}: undocumented {sorted(set(obj) - fields)}, "
            f"documented but absent {sorted(fields - set(obj))}"
        )


def test_every_command_that_prints_json_is_in_the_table(tmp_path: Path) -> None:
    documented = {c.split()[1] if c.split()[1] not in GROUPS else " ".join(c.split()[1:3]) for c, _, _ in SHAPES}
    with_json = set()
    root: Any = typer.main.get_command(build_app())  # typer's own click: a group has .commands
    for name, command in root.commands.items():
        subs = command.commands.items() if hasattr(command, "commands") else [(None, command)]
        for sub, leaf in subs:
            if any("--json" in p.opts for p in leaf.params):
                with_json.add(name if sub is None else f"{name} {sub}")
    assert with_json == documented


GROUPS = {name for name, (_, attr) in COMMANDS.items() if attr.endswith("_app")}


def test_every_command_has_a_readme_section() -> None:
    headings = " ".join(re.findall(r"^### (.*)$", README, flags=re.M))
    for name in COMMANDS:
        assert f"`tbhub {name}" in headings, f"no README section names tbhub {name}"


def test_runs_paragraph_names_the_status_fields() -> None:
    """The tbhub runs section promises "exactly these fields": they are the table's, --status's included."""
    prose = re.sub(r"```.*?```", "", _section("`tbhub runs`"), flags=re.S)
    named = {w for span in re.findall(r"`([^`]+)`", prose) for w in re.findall(r"\w+", span)}
    status_fields = {f for c, p, fs in SHAPES if c == "tbhub runs --status" and p == "[]" for f in fs}
    assert status_fields, "the JSON output table has no tbhub runs --status row"
    assert not status_fields - named, f"the tbhub runs section does not name {sorted(status_fields - named)}"


def _normal(path: str) -> str:
    """A route or a documented path with its parameters as ``*``: ``/runs/{endpoint}/{relpath:path}``
    and ``/runs/ENDPOINT/DATASET/RUN`` both read ``/runs/*``."""
    path = re.sub(r"\{[^}]+\}|\b[A-Z][A-Z_]*\b|\.\.\.", "*", path.split("?")[0])
    while "*/*" in path:
        path = path.replace("*/*", "*")
    return path.rstrip("/") or "/"


def test_every_route_is_in_the_readme(tmp_path: Path) -> None:
    from tbhub.app.hub import Hub
    from tbhub.app.services import Services
    from tbhub.config import Config, EndpointConfig, StateConfig
    from tbhub.interfaces.web.app import create_app

    config = Config(state=StateConfig(dir=tmp_path / "state"), endpoints={"lora": EndpointConfig(logdir=str(tmp_path))})
    hub = Hub(Services(config), None)
    try:
        routes = {_normal(r.path) for r in create_app(hub).router.routes if r.path != "/static"}
    finally:
        hub.close()
    documented = {_normal(p) for p in re.findall(r"`((?:GET |POST |PUT |PATCH |DELETE )?/[^`\s]*)`", README)}
    documented = {_normal(p.split(" ", 1)[-1]) for p in documented}
    missing = sorted(routes - documented)
    assert not missing, f"routes the README never mentions: {missing}"
