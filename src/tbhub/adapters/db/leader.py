"""Leader election between `tbhub serve` replicas that share one state database.

Background jobs that write shared state (index scans, alert evaluation and delivery, retention, usage
snapshots) run on one replica at a time, the leader; every replica serves pages and its own
TensorBoards.

* **PostgreSQL**: a session-level advisory lock held on a dedicated connection. The server releases it
  the moment that connection ends, so when the leader dies (even by SIGKILL, whose sockets the kernel
  closes) the next follower to poll takes over. The leader checks its connection on every poll and
  steps down when it is gone.
* **SQLite** (and any other database): a lease row renewed on every poll, which a follower may take
  once it has expired (``ttl_s`` after the leader's last renewal).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tbhub.adapters.db.store import StateStore, one_line

__all__ = ["LEADER_LOCK_KEY", "AdvisoryLockLeadership", "Leadership", "LeaseLeadership", "leadership_for"]

log = logging.getLogger("tbhub.leader")

#: The advisory lock key of the leader (the migration lock uses another: 7460501).
LEADER_LOCK_KEY = 7460502
LEASE_NAME = "leader"


class Leadership(Protocol):
    """``poll()`` tries to become (or stay) the leader and says whether this process leads now."""

    holder: str

    @property
    def is_leader(self) -> bool: ...

    def poll(self) -> bool: ...

    def release(self) -> None: ...


class AdvisoryLockLeadership:
    """Leadership as a PostgreSQL session advisory lock on a connection of its own."""

    def __init__(self, engine: Engine, holder: str, key: int = LEADER_LOCK_KEY) -> None:
        self.engine, self.holder, self.key = engine, holder, key
        self._connection: Any = None  # a raw DBAPI connection that holds the lock, or None
        self._lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        return self._connection is not None

    def poll(self) -> bool:
        with self._lock:
            if self._connection is not None:
                if self._alive(self._connection):
                    return True
                log.warning("lost the state database connection that held leadership: stepping down")
                self._drop()
            return self._try_acquire()

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
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                row = cursor.fetchone()
        except Exception as error:  # the DBAPI's own errors: the database is unreachable
            log.warning("cannot take the leader lock: %s", one_line(error))
            _close(connection)
            return False
        if row and row[0]:
            self._connection = connection
            log.info("this replica (%s) is the leader", self.holder)
            return True
        _close(connection)
        return False

    @staticmethod
    def _alive(connection: Any) -> bool:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
            return True
        except Exception:
            return False

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
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

    @property
    def is_leader(self) -> bool:
        return self._leader

    def poll(self) -> bool:
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
        return leader

    def release(self) -> None:
        if self._leader:
            self._leader = False
            with contextlib.suppress(SQLAlchemyError):  # it expires on its own
                self.state.release_lease(LEASE_NAME, self.holder)


def leadership_for(state: StateStore, holder: str, *, ttl_s: float = 20.0) -> Leadership:
    """The advisory lock on PostgreSQL, a lease elsewhere."""
    if state.engine.dialect.name == "postgresql":
        return AdvisoryLockLeadership(state.engine, holder)
    return LeaseLeadership(state, holder, ttl_s)


def _close(connection: Any) -> None:
    with contextlib.suppress(Exception):
        connection.close()
