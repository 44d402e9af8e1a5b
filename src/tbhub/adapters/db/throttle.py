"""Failed logins in the state database, so that every replica throttles the same keys.

The policy (how many failures, how long a wait) is ``tbhub.core.throttle``; this module keeps the
counts. A key is ``(kind, subject)``: ``pair`` is ``ACCOUNT ADDRESS``, ``account`` the name as typed
(unknown names count too, or probing them would be free), ``address`` the client's address. Rows
older than ``FORGET_AFTER_S`` are deleted as new failures are written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, case, delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from tbhub.adapters.db.tables import login_failures
from tbhub.core.throttle import FORGET_AFTER_S, lockout_s, wait_s

__all__ = ["FailedLogins", "LoginThrottle"]

#: Longer names are cut: they cannot be accounts (``USER_NAME_MAX``) and must not grow the table.
NAME_MAX = 128
ADDRESS_MAX = 64


@dataclass(frozen=True, slots=True)
class FailedLogins:
    """Recent failures of one key, for admins: locked until ``locked_until`` (past: not locked)."""

    kind: str
    subject: str
    failures: int
    last_at: float
    locked_until: float


def _keys(name: str, address: str) -> list[tuple[str, str]]:
    name, address = name.strip()[:NAME_MAX], address[:ADDRESS_MAX]
    return [("pair", f"{name} {address}"), ("account", name), ("address", address)]


class LoginThrottle:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def wait(self, name: str, address: str, now: float | None = None) -> float:
        """Seconds before ``name`` may try again from ``address`` (0: now)."""
        now = time.time() if now is None else now
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(login_failures).where(
                    tuple_(login_failures.c.kind, login_failures.c.subject).in_(_keys(name, address)))
            ).all()
        return max((wait_s(r.kind, r.failures, r.last_at, now) for r in rows), default=0.0)

    def failed(self, name: str, address: str, now: float | None = None) -> tuple[int, float]:
        """Count a failure; (the pair's failures, seconds every key now makes the next try wait)."""
        now = time.time() if now is None else now
        stale = now - FORGET_AFTER_S
        counts: dict[str, int] = {}
        for kind, subject in _keys(name, address):
            where = (login_failures.c.kind == kind, login_failures.c.subject == subject)
            bumped = update(login_failures).where(*where).values(
                failures=case((login_failures.c.last_at < stale, 1), else_=login_failures.c.failures + 1), last_at=now)
            try:
                with self.engine.begin() as connection:
                    if not connection.execute(bumped).rowcount:
                        connection.execute(insert(login_failures).values(kind=kind, subject=subject, failures=1,
                                                                         last_at=now))
            except IntegrityError:  # another request inserted it first
                with self.engine.begin() as connection:
                    connection.execute(bumped)
            with self.engine.connect() as connection:
                counts[kind] = int(connection.execute(select(login_failures.c.failures).where(*where)).scalar_one())
        with self.engine.begin() as connection:
            connection.execute(delete(login_failures).where(login_failures.c.last_at < stale))
        return counts["pair"], max(lockout_s(kind, n) for kind, n in counts.items())

    def succeeded(self, name: str, address: str) -> None:
        """A right password forgets the pair's and the account's failures (not the address's)."""
        with self.engine.begin() as connection:
            connection.execute(delete(login_failures).where(
                tuple_(login_failures.c.kind, login_failures.c.subject).in_(_keys(name, address)[:2])))

    def recent(self, now: float | None = None) -> list[FailedLogins]:
        """Every key with failures not yet forgotten, locked ones first, then the newest."""
        now = time.time() if now is None else now
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(login_failures).where(login_failures.c.last_at >= now - FORGET_AFTER_S)
            ).all()
        found = [FailedLogins(r.kind, r.subject, r.failures, r.last_at, r.last_at + lockout_s(r.kind, r.failures))
                 for r in rows]
        return sorted(found, key=lambda f: (f.locked_until <= now, -f.last_at))
