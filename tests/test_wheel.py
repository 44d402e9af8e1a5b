"""tbhub as a team installs it for real: a wheel (``python -m build``) installed into a fresh virtualenv.

The wheel must carry everything the hub reads at run time besides Python modules (templates, static
files with the vendored ones, the database migrations): the test installs it with its dependencies
from the package index, away from the source tree, and serves a page and its CSS from that install.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import psutil
import pytest

from eventfiles import write_scalar_file
from ports import free_port

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tbhub"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
NEW_FILES = ("static/vendor/newlib/1.0/newlib.min.js", "static/newpage.js", "templates/partials/row.html")


def data_files() -> set[str]:
    """Every file the hub reads at run time beside its modules: templates, static files (vendored ones
    in sub-folders too), the migrations and py.typed, as paths in the wheel."""
    folders = ("interfaces/web/static", "interfaces/web/templates", "adapters/db/migrations")
    files = {PACKAGE / "py.typed"} | {p for f in folders for p in (PACKAGE / f).rglob("*") if p.is_file()}
    return {p.relative_to(PACKAGE.parent).as_posix() for p in files if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (the build writes build/ and egg-info beside them)."""
    src = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for licence in ROOT.glob("LICEN[CS]E*"):
        shutil.copy2(licence, src / licence.name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # Files as the next vendored library or template partial would add them: package-data must take them
    # without anyone remembering to list their folder.
    web = src / "src" / "tbhub" / "interfaces" / "web"
    for extra in NEW_FILES:
        (web / extra).parent.mkdir(parents=True, exist_ok=True)
        (web / extra).write_text("/* added by tests/test_wheel.py */\n")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    (built,) = dist.glob("tbhub-*.whl")
    return built


def test_the_wheel_carries_templates_static_files_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = data_files()
    assert {"tbhub/interfaces/web/static/hub.css", "tbhub/interfaces/web/templates/base.html",
            "tbhub/interfaces/web/static/vendor/uplot/uPlot.iife.min.js"} <= expected
    assert any(n.startswith("tbhub/adapters/db/migrations/versions/0001") for n in expected)
    assert expected - names == set()
    assert {f"tbhub/interfaces/web/{f}" for f in NEW_FILES} <= names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


def test_an_installed_wheel_serves_a_page_and_its_css(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=400, env=env)
    assert installed.returncode == 0, installed.stderr
    assert "does not provide the extra" not in installed.stderr, installed.stderr
    # Not the source tree: the import resolves inside the fresh virtualenv.
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import tbhub, s3fs, boto3; print(tbhub.__file__)"],
                           capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path, env=env).stdout
    assert Path(where.strip()).is_relative_to(venv), where

    write_scalar_file(tmp_path / "logs" / "ds" / "run-1")
    hub, board = free_port(), free_port()
    config = tmp_path / "tbhub.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {hub}\n\n[state]\ndir = "{tmp_path / "state"}"\n\n'
        f'[auth]\nmode = "none"\n\n[endpoints.wheel]\nlogdir = "{tmp_path / "logs"}"\nport = {board}\n'
    )
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([str(venv / "bin" / "tbhub"), "serve", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{hub}"
        deadline = time.monotonic() + 120
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                page = httpx.get(f"{base}/", timeout=5, trust_env=False)
                if page.status_code == 200:
                    break
            time.sleep(0.3)
        assert page is not None and page.status_code == 200, (tmp_path / "serve.log").read_text()
        assert "/static/hub.css" in page.text and "wheel" in page.text
        css = httpx.get(f"{base}/static/hub.css", timeout=10, trust_env=False)
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert css.content == (PACKAGE / "interfaces/web/static/hub.css").read_bytes()
        vendored = httpx.get(f"{base}/static/vendor/uplot/uPlot.min.css", timeout=10, trust_env=False)
        assert vendored.status_code == 200
        assert httpx.get(f"{base}/endpoints/wheel", timeout=10, trust_env=False).status_code == 200
    finally:
        tree = []
        with contextlib.suppress(psutil.Error):
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            log.close()
    assert proc.returncode == 0
