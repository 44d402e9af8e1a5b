"""Two ``tbhub serve`` replicas behind one state database (a real PostgreSQL): one leader scans and
evaluates, both serve the same data, and a follower takes over when the leader dies."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from serving import Server, serve, wait_for

from eventfiles import write_scalar_file
from pg import fresh_postgres_url, postgres_server  # noqa: F401  (pytest fixtures)

pytestmark = pytest.mark.slow


def _runs(server: Server) -> set[str]:
    return {r["relpath"] for r in server.get("/api/endpoints/lora/runs").json()}


def _leader(server: Server) -> bool:
    return bool(server.get("/healthz").json()["leader"])


@contextlib.contextmanager
def _two_replicas(tmp_path: Path, root: Path, database: str) -> Iterator[tuple[Server, Server]]:
    with (
        serve(tmp_path / "a", {"lora": root}, database=database) as a,
        serve(tmp_path / "b", {"lora": root}, database=database) as b,
    ):
        yield a, b


def test_replicas_share_the_index_and_fail_over(tmp_path: Path, fresh_postgres_url: str) -> None:  # noqa: F811
    root = tmp_path / "logs"
    write_scalar_file(root / "alpaca" / "r1", range(20))
    with _two_replicas(tmp_path, root, fresh_postgres_url) as (a, b):
        # Exactly one leader; it is the one that started first (b found the lock taken).
        assert (_leader(a), _leader(b)) == (True, False)
        wait_for(lambda: _runs(a) == _runs(b) == {"alpaca/r1"}, 60, "both replicas to list the run")

        # A new run: the leader scans it into the shared index, and the follower serves it from there.
        write_scalar_file(root / "alpaca" / "r2", range(5))
        wait_for(lambda: "alpaca/r2" in _runs(b), 60, "the follower to list the leader's scan")
        assert b.get("/tb/lora/data/runs").status_code == 200  # and its own TensorBoard

        # The leader dies without cleaning up (SIGKILL of its whole tree).
        doomed = a.tree()
        for process in doomed:
            with contextlib.suppress(psutil.Error):
                os.kill(process.pid, signal.SIGKILL)
        a.proc.wait(10)
        wait_for(lambda: _leader(b), 30, "the follower to become the leader")

        # The new leader scans: a run written after the failover reaches the index.
        write_scalar_file(root / "dolly" / "r3", range(5))
        wait_for(lambda: "dolly/r3" in _runs(b), 60, "the new leader to scan")


def test_a_stopped_leader_is_replaced_and_stands_down_when_woken(tmp_path: Path, fresh_postgres_url: str) -> None:  # noqa: F811
    """SIGSTOP keeps the leader's database session (and so its lock) open: the follower must take over
    from its stale heartbeat, and the old leader, woken, must not act as leader again."""
    root = tmp_path / "logs"
    write_scalar_file(root / "alpaca" / "r1", range(20))
    with _two_replicas(tmp_path, root, fresh_postgres_url) as (a, b):
        assert (_leader(a), _leader(b)) == (True, False)
        wait_for(lambda: _runs(b) == {"alpaca/r1"}, 60, "the follower to list the run")

        os.kill(a.proc.pid, signal.SIGSTOP)  # the hub process only: frozen, not dead
        try:
            wait_for(lambda: _leader(b), 60, "the follower to take over from the stopped leader")
            write_scalar_file(root / "dolly" / "r2", range(5))
            wait_for(lambda: "dolly/r2" in _runs(b), 60, "the new leader to scan")
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)

        # Woken, the old leader finds it lost leadership (it answers healthz before any poll) ...
        assert _leader(a) is False
        # ... and stays a follower, while the new leader keeps leading.
        time.sleep(6)  # more than a leader poll
        assert (_leader(a), _leader(b)) == (False, True)
        assert "ended its database session" in b.output()
