"""Leader election between `tbhub serve` replicas that share one state database.

Background jobs that write shared state (index scans, alert evaluation and delivery, retention, usage
snapshots) run on one replica at a time, the leader; every replica serves pages and its own
TensorBoards.

* **PostgreSQL**: a session-level advisory lock held on a dedicated connection, plus a heartbeat. The
  server releases the lock the moment that connection ends, so when the leader dies (even by SIGKILL,
  whose sockets the kernel closes) the next follower to poll takes over. A leader that hangs instead
  (SIGSTOP, a stalled VM) keeps its session and so its lock: every poll it renews a heartbeat row
  (``leases``, name ``leader-heartbeat``, stamped with the database's clock, so replicas' clocks do
  not matter). A follower that finds the heartbeat older than ``stale_after_s`` ends the session
  recorded in it (``pg_terminate_backend``: the same role may, see the PostgreSQL docs), which frees
  the lock, and takes over.
* **SQLite** (and any other database): a lease row renewed on every poll, which a follower may take
  once it has expired (``ttl_s`` after the leader's last renewal).

Either way a leader trusts its leadership only for a while after its last successful renewal
(``is_leader`` checks the monotonic clock, which keeps running while a process is stopped): a leader
that wakes up after followers may have taken over sees ``is_leader`` false before its next write,
without waiting for a poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tbhub.adapters.db.store import StateStore, one_line

__all__ = ["LEADER_LOCK_KEY", "AdvisoryLockLeadership", "Leadership", "LeaseLeadership", "leadership_for"]

log = logging.getLogger("tbhub.leader")

#: The advisory lock key of the leader (the migration lock uses another: 7460501).
LEADER_LOCK_KEY = 7460502
LEASE_NAME = "leader"
HEARTBEAT_NAME = "leader-heartbeat"

#: A leader trusts its last renewal for this fraction of the staleness bound, so it stops acting well
#: before a follower may take over (the follower waits for the whole bound, on the database's clock).
TRUST_FRACTION = 0.75


class Leadership(Protocol):
    """``poll()`` tries to become (or stay) the leader and says whether this process leads now.

    ``is_leader`` is cheap (no database round trip) and turns false on its own once the last renewal
    is too old to be sure no follower took over: check it right before every leader-only write.
    """

    holder: str

    @property
    def is_leader(self) -> bool: ...

    def poll(self) -> bool: ...

    def release(self) -> None: ...


class AdvisoryLockLeadership:
    """Leadership as a PostgreSQL session advisory lock on a connection of its own, with a heartbeat
    that a follower checks to take over from a hung leader (``stale_after_s``)."""

    def __init__(
        self, engine: Engine, holder: str, key: int = LEADER_LOCK_KEY, *, stale_after_s: float = 20.0
    ) -> None:
        self.engine, self.holder, self.key, self.stale_after_s = engine, holder, key, stale_after_s
        self._connection: Any = None  # a raw DBAPI connection that holds the lock, or None
        self._renewed_at = float("-inf")  # monotonic time taken before the last heartbeat that succeeded
        self._lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        fresh = time.monotonic() - self._renewed_at < self.stale_after_s * TRUST_FRACTION
        return self._connection is not None and fresh

    def poll(self) -> bool:
        with self._lock:
            if self._connection is not None:
                if self._beat(self._connection):
                    return True
                log.warning("lost the state database connection that held leadership: stepping down")
                self._drop()
            return self._try_acquire()

    def _beat(self, connection: Any) -> bool:
        """Renew the heartbeat on the lock's own session: success proves the session (so the lock) lives."""
        started = time.monotonic()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO leases (name, holder, expires_at)"
                    " VALUES (%s, %s || ' backend=' || pg_backend_pid(), extract(epoch from clock_timestamp()) + %s)"
                    " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                    (HEARTBEAT_NAME, self.holder, self.stale_after_s),
                )
        except Exception as error:  # the DBAPI's own errors: the session is gone or unusable
            log.debug("leader heartbeat failed: %s", one_line(error))
            return False
        self._renewed_at = started
        return True

    def _try_acquire(self) -> bool:
        # Outside the pool: this connection lives exactly as long as the leadership (a pooled one
        # would go back to the pool still holding the lock), and autocommit keeps it out of a
        # transaction (the lock belongs to the session). Keepalives notice a vanished server.
        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        cparams = {"connect_timeout": 5, "keepalives_idle": 10, "keepalives_interval": 5,
                   "keepalives_count": 3, **cparams}
        try:
            connection: Any = self.engine.dialect.connect(*cargs, **cparams)
        except Exception as error:  # the DBAPI's own errors: the database is unreachable
            log.warning("cannot reach the state database to elect a leader: %s", one_line(error))
            return False
        try:
            connection.autocommit = True
            locked = self._try_lock(connection)
            if not locked and self._end_stale_leader(connection):
                locked = self._try_lock(connection, wait_s=5.0)
        except Exception as error:  # the DBAPI's own errors: the database is unreachable
            log.warning("cannot take the leader lock: %s", one_line(error))
            _close(connection)
            return False
        if locked and self._beat(connection):
            self._connection = connection
            log.info("this replica (%s) is the leader", self.holder)
            return True
        _close(connection)  # ends the session: a lock taken without a heartbeat is released with it
        return False

    def _try_lock(self, connection: Any, wait_s: float = 0.0) -> bool:
        deadline = time.monotonic() + wait_s
        while True:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                row = cursor.fetchone()
            if row and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)  # a terminated backend frees its locks as it exits

    def _end_stale_leader(self, connection: Any) -> bool:
        """End the session of a leader whose heartbeat is older than ``stale_after_s``; whether one was.

        Only the backend named in the stale heartbeat, and only while it still holds the leader lock: a
        follower that took over a moment ago (its first heartbeat not yet written) is not touched.
        """
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT holder, extract(epoch from clock_timestamp()) - expires_at FROM leases WHERE name = %s",
                (HEARTBEAT_NAME,),
            )
            row = cursor.fetchone()
            if row is None or float(row[1]) <= 0:
                return False
            holder, late = str(row[0]), float(row[1])
            replica, _, backend = holder.rpartition(" backend=")
            if not backend.isdigit():
                return False
            try:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    " AND classid = %s AND objid = %s AND objsubid = 1 AND pid = %s",
                    (self.key >> 32, self.key & 0xFFFFFFFF, int(backend)),
                )
                ended = any(r[0] for r in cursor.fetchall())
            except Exception as error:  # e.g. another database role, without pg_signal_backend
                log.error("the leader %s is hung but its session cannot be ended: %s", replica, one_line(error))
                return False
        if ended:
            log.warning(
                "the leader %s has not renewed its heartbeat for %.0f s: ended its database session",
                replica, late + self.stale_after_s,
            )
        return ended

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._renewed_at = float("-inf")
        if connection is not None:
            _close(connection)

    def release(self) -> None:
        with self._lock:
            if self._connection is not None:
                try:
                    with self._connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
                except Exception:  # closing the session releases it anyway
                    pass
                self._drop()


class LeaseLeadership:
    """Leadership as a lease row: renewed on every poll, taken over ``ttl_s`` after the last renewal."""

    def __init__(self, state: StateStore, holder: str, ttl_s: float) -> None:
        self.state, self.holder, self.ttl_s = state, holder, ttl_s
        self._leader = False
        self._renewed_at = float("-inf")

    @property
    def is_leader(self) -> bool:
        return self._leader and time.monotonic() - self._renewed_at < self.ttl_s * TRUST_FRACTION

    def poll(self) -> bool:
        started = time.monotonic()
        try:
            leader = self.state.acquire_lease(LEASE_NAME, self.holder, self.ttl_s)
        except SQLAlchemyError as error:
            log.warning("cannot renew the leader lease: %s", one_line(error))
            leader = False
        if leader and not self._leader:
            log.info("this replica (%s) is the leader", self.holder)
        elif self._leader and not leader:
            log.warning("lost the leader lease: stepping down")
        self._leader = leader
        if leader:
            self._renewed_at = started
        return leader

    def release(self) -> None:
        if self._leader:
            self._leader = False
            with contextlib.suppress(SQLAlchemyError):  # it expires on its own
                self.state.release_lease(LEASE_NAME, self.holder)


def leadership_for(state: StateStore, holder: str, *, ttl_s: float = 20.0) -> Leadership:
    """The advisory lock with a heartbeat on PostgreSQL, a lease elsewhere; ``ttl_s`` bounds how long a
    leader that stopped renewing (dead or hung) keeps followers waiting."""
    if state.engine.dialect.name == "postgresql":
        return AdvisoryLockLeadership(state.engine, holder, stale_after_s=ttl_s)
    return LeaseLeadership(state, holder, ttl_s)


def _close(connection: Any) -> None:
    with contextlib.suppress(Exception):
        connection.close()
