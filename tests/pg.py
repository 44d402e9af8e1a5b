"""A real PostgreSQL server for the test session, started from the distribution's binaries.

Usage in a test module::

    from pg import fresh_postgres_url, postgres_server, postgres_url  # noqa: F401  (pytest fixtures)

- ``postgres_server`` (session): the running :class:`PostgresServer`.
- ``postgres_url`` (session): ``postgresql+psycopg://postgres@127.0.0.1:PORT/tbhub_test``.
- ``fresh_postgres_url`` (function): a brand-new empty database per test, dropped afterwards.

``.ci/run`` installs the ``postgresql`` package; without its binaries the fixtures skip with a reason.
apt starts no service here, so the cluster is ``initdb``-ed in a temporary folder as the ``postgres``
user (initdb refuses root), served on a free 127.0.0.1 port, and stopped and removed at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ports import free_port

__all__ = [
    "PostgresServer",
    "find_pg_bin",
    "fresh_postgres_url",
    "postgres_server",
    "postgres_url",
    "running_postgres",
]

DATABASE = "tbhub_test"


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` that has ``initdb`` and ``pg_ctl`` (or those on PATH)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    for initdb in candidates:
        folder = Path(initdb).parent
        if (folder / "pg_ctl").exists():
            return folder
    return None


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    root: Path

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user=postgres dbname={database} connect_timeout=10"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whatever still uses it."""
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb and the server refuse to run as root: run them as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *argv]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in argv)]


def _run(argv: list[str], root: Path, what: str, log: Path | None = None) -> None:
    result = subprocess.run(
        _as_postgres(argv), cwd=root, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "LC_ALL": "C", "LANG": "C"},
    )
    if result.returncode != 0:
        detail = result.stdout + result.stderr
        if log is not None and log.exists():
            detail += "\n--- server log ---\n" + log.read_text(errors="replace")
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{detail}")


@contextlib.contextmanager
def running_postgres(bin_dir: Path | None = None) -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL cluster with a ``tbhub_test`` database; stop and remove it after."""
    bin_dir = bin_dir or find_pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) not found; apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="tbhub-pg-"))
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for folder in (root, sockets):
            os.chown(folder, user.pw_uid, user.pw_gid)
    started = False
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
              "--locale=C", "--no-sync", "--no-instructions"], root, "initdb")
        # Throwaway cluster: durability off makes CREATE DATABASE and commits fast.
        options = f"-h 127.0.0.1 -p {{port}} -k {sockets} -c fsync=off -c synchronous_commit=off " \
                  "-c full_page_writes=off -c max_connections=200"
        for attempt in range(3):  # the free port may be taken between probing and binding
            port = free_port()
            try:
                _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options.format(port=port), "-l", str(log),
                      "-w", "-t", "30", "start"], root, "pg_ctl start", log)
            except RuntimeError:
                if attempt == 2:
                    raise
                continue
            started = True
            break
        server = PostgresServer("127.0.0.1", port, root)
        server.create_database(DATABASE)
        yield server
    finally:
        if started:
            try:
                _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], root, "pg_ctl stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                _kill_postmaster(data)
        shutil.rmtree(root, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """Last resort when ``pg_ctl stop`` fails: SIGKILL the postmaster named in postmaster.pid."""
    import signal

    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); .ci/run installs it")
    with running_postgres(bin_dir) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session's ``tbhub_test`` database (shared: tests that need isolation use ``fresh_postgres_url``)."""
    return postgres_server.url(DATABASE)


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new, empty database for one test; dropped (with any connections left) afterwards."""
    name = f"t_{uuid.uuid4().hex}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)
