"""Leader election between replicas: the PostgreSQL advisory lock and the SQLite lease."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine

from pg import fresh_postgres_url, postgres_server  # noqa: F401  (pytest fixtures)
from ports import closed_port
from tbhub.adapters.db.leader import (
    LEADER_LOCK_KEY,
    AdvisoryLockLeadership,
    LeaseLeadership,
    leadership_for,
)
from tbhub.adapters.db.store import StateStore, open_state


@pytest.fixture
def pg_store(fresh_postgres_url: str) -> Iterator[StateStore]:  # noqa: F811
    store = open_state(fresh_postgres_url)
    yield store
    store.dispose()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _conninfo(store: StateStore) -> str:
    url = store.engine.url
    return f"host={url.host} port={url.port} user={url.username} dbname={url.database} connect_timeout=10"


def test_postgresql_uses_the_advisory_lock_and_sqlite_a_lease(pg_store: StateStore, tmp_path: Path) -> None:
    assert isinstance(leadership_for(pg_store, "a"), AdvisoryLockLeadership)
    sqlite = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert isinstance(leadership_for(sqlite, "a"), LeaseLeadership)
    finally:
        sqlite.dispose()


def test_one_leader_at_a_time_on_postgresql(pg_store: StateStore) -> None:
    a = AdvisoryLockLeadership(pg_store.engine, "a")
    b = AdvisoryLockLeadership(pg_store.engine, "b")
    try:
        assert a.poll() is True and a.is_leader
        assert b.poll() is False and not b.is_leader
        assert a.poll() is True  # staying leader is idempotent
        assert b.poll() is False
        a.release()
        assert not a.is_leader
        assert b.poll() is True
        assert a.poll() is False
    finally:
        a.release()
        b.release()
    # The lock is held on the server by a session of its own, released with it.
    with psycopg.connect(_conninfo(pg_store)) as conn:
        held = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                            (LEADER_LOCK_KEY,)).fetchone()
        assert held == (0,)


_LEAD_UNTIL_KILLED = """
import sys, time
from tbhub.adapters.db.leader import AdvisoryLockLeadership
from tbhub.adapters.db.store import open_state
store = open_state(sys.argv[1], migrate=False)
leader = AdvisoryLockLeadership(store.engine, "doomed")
assert leader.poll()
print("leading", flush=True)
time.sleep(3600)
"""


def test_a_follower_takes_over_when_the_leader_is_killed(pg_store: StateStore) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _LEAD_UNTIL_KILLED, pg_store.engine.url.render_as_string(False)],
                            stdout=subprocess.PIPE, text=True)
    follower = AdvisoryLockLeadership(pg_store.engine, "follower")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "leading"
        assert follower.poll() is False
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up: the kernel closes its socket
        proc.wait(10)
        # The server ends the dead session and frees its lock: the next poll wins.
        assert wait_for(follower.poll, 10, "the follower to take over")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        follower.release()


def test_a_leader_whose_session_was_ended_steps_down(pg_store: StateStore) -> None:
    a = AdvisoryLockLeadership(pg_store.engine, "a")
    b = AdvisoryLockLeadership(pg_store.engine, "b")
    try:
        assert a.poll()
        with psycopg.connect(_conninfo(pg_store), autocommit=True) as conn:
            ended = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                (LEADER_LOCK_KEY,),
            ).fetchall()
        assert ended == [(True,)]
        wait_for(b.poll, 10, "the lock to be free")
        assert a.poll() is False and not a.is_leader  # it noticed its session was gone
    finally:
        a.release()
        b.release()


def test_unreachable_postgresql_is_no_leadership(pg_store: StateStore) -> None:
    closed = pg_store.engine.url.set(port=closed_port(), database="nope")
    engine = create_engine(closed)
    try:
        assert AdvisoryLockLeadership(engine, "a").poll() is False
    finally:
        engine.dispose()


def test_sqlite_lease_expires_and_is_taken_over(tmp_path: Path) -> None:
    store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        a = LeaseLeadership(store, "a", ttl_s=0.5)
        b = LeaseLeadership(store, "b", ttl_s=0.5)
        assert a.poll() and not b.poll()
        assert a.poll()  # renewing keeps it
        time.sleep(0.7)  # a stopped renewing (died)
        assert b.poll() and b.is_leader
        assert a.poll() is False and not a.is_leader
        b.release()
        assert a.poll()  # released: no need to wait for the expiry
    finally:
        store.dispose()


_LEAD_UNTIL_STOPPED = """
import signal, sys, time
from tbhub.adapters.db.leader import AdvisoryLockLeadership
from tbhub.adapters.db.store import open_state
store = open_state(sys.argv[1], migrate=False)
leader = AdvisoryLockLeadership(store.engine, "hung", stale_after_s=float(sys.argv[2]))
# What a woken process sees first, before any poll could run (a handler runs before the next bytecode).
signal.signal(signal.SIGCONT, lambda *_: print("awake, leader:", leader.is_leader, flush=True))
assert leader.poll()
print("leading", flush=True)
while True:
    time.sleep(0.2)
    was = leader.is_leader
    now = leader.poll()
    if was != now:
        print("poll, leader:", now, flush=True)
"""


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    """One line of the child's output, or fail after ``timeout`` seconds (never block forever)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"no output from the leader process within {timeout}s")
    return proc.stdout.readline().strip()


def _lock_holders(store: StateStore) -> list[int]:
    with psycopg.connect(_conninfo(store)) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted", (LEADER_LOCK_KEY,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def test_a_follower_takes_over_from_a_stopped_leader(pg_store: StateStore) -> None:
    """SIGSTOP keeps the leader's session and lock: its stale heartbeat is what lets a follower in, by
    ending that session; the leader, woken, knows it is no longer the leader before it polls."""
    stale_after = 2.0
    proc = subprocess.Popen(
        [sys.executable, "-c", _LEAD_UNTIL_STOPPED, pg_store.engine.url.render_as_string(False), str(stale_after)],
        stdout=subprocess.PIPE, text=True,
    )
    follower = AdvisoryLockLeadership(pg_store.engine, "follower", stale_after_s=stale_after)
    try:
        assert _readline(proc, 30) == "leading"
        (hung_backend,) = _lock_holders(pg_store)
        assert follower.poll() is False  # a live leader renews its heartbeat: no takeover

        os.kill(proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        assert wait_for(follower.poll, 20, "the follower to take over from the stopped leader")
        assert time.monotonic() - stopped_at >= stale_after * 0.9  # not before the heartbeat was stale
        assert follower.is_leader
        assert hung_backend not in _lock_holders(pg_store)  # its session was ended

        os.kill(proc.pid, signal.SIGCONT)
        assert _readline(proc, 10) == "awake, leader: False"
        assert follower.poll() is True and follower.is_leader  # and it did not take the lock back
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
        follower.release()


def test_a_live_leader_keeps_leadership_past_the_staleness_bound(pg_store: StateStore) -> None:
    a = AdvisoryLockLeadership(pg_store.engine, "a", stale_after_s=1.0)
    b = AdvisoryLockLeadership(pg_store.engine, "b", stale_after_s=1.0)
    try:
        assert a.poll()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            assert a.poll() is True and a.is_leader
            assert b.poll() is False
            time.sleep(0.2)
    finally:
        a.release()
        b.release()


def test_a_leader_that_stopped_renewing_distrusts_itself(pg_store: StateStore, tmp_path: Path) -> None:
    """Without a poll (the process was frozen), leadership lapses on the leader's own clock."""
    a = AdvisoryLockLeadership(pg_store.engine, "a", stale_after_s=0.5)
    sqlite = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    lease = LeaseLeadership(sqlite, "a", ttl_s=0.5)
    try:
        assert a.poll() and a.is_leader
        assert lease.poll() and lease.is_leader
        time.sleep(0.5)
        assert not a.is_leader and not lease.is_leader
        assert a.poll() and a.is_leader  # renewing restores it
    finally:
        a.release()
        sqlite.dispose()
