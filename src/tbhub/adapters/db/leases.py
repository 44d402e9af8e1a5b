"""Named leases in the state database: one process at a time runs a background job (retention, ...).

A lease is a row (name, holder, expires_at), ``expires_at`` on the clock of the process that took it;
the leader election in ``leader.py`` uses one too on databases without advisory locks.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tbhub.adapters.db.tables import leases

__all__ = ["LeaseStore"]


class LeaseStore:
    """Leases on the state database's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take (or renew) the lease ``name`` for ``ttl_s`` seconds; ``False`` if someone else holds it.

        Atomic on every database: the conditional UPDATE takes an expired or own lease, and the
        primary key makes only one of two concurrent INSERTs of a new lease succeed.
        """
        now = time.time()
        try:
            with self.engine.begin() as connection:
                taken = connection.execute(
                    update(leases)
                    .where(leases.c.name == name, or_(leases.c.holder == holder, leases.c.expires_at < now))
                    .values(holder=holder, expires_at=now + ttl_s)
                )
                if taken.rowcount:
                    return True
                exists = connection.execute(select(leases.c.name).where(leases.c.name == name)).first()
                if exists:
                    return False
                connection.execute(insert(leases).values(name=name, holder=holder, expires_at=now + ttl_s))
                return True
        except IntegrityError:
            return False

    def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` now; ``None`` when nobody does (never taken, released or expired)."""
        with self.engine.connect() as connection:
            holder: str | None = connection.execute(
                select(leases.c.holder).where(leases.c.name == name, leases.c.expires_at >= time.time())
            ).scalar()
        return holder

    def take_over_lease(self, name: str, old_holder: str, holder: str, ttl_s: float) -> bool:
        """Take the lease ``name`` from ``old_holder`` (known to be gone); ``False`` if it changed hands meanwhile."""
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(leases)
                .where(leases.c.name == name, leases.c.holder == old_holder)
                .values(holder=holder, expires_at=time.time() + ttl_s)
            )
            return bool(taken.rowcount)

    def release_lease(self, name: str, holder: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(leases).where(and_(leases.c.name == name, leases.c.holder == holder)))
