"""The state database: SQLAlchemy 2 engine, Alembic migrations, and the scanner's index.

SQLite (WAL mode) in the state folder by default; any SQLAlchemy URL works (PostgreSQL via psycopg 3).
The schema is migrated to the newest revision when a store is opened, so the embedded default needs no
set-up; ``tbhub db upgrade`` does the same explicitly.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from tbhub.adapters.db.names import from_db, to_db
from tbhub.adapters.db.tables import (
    alembic_version,
    alerts,
    channels,
    deletions,
    deliveries,
    event_files,
    index_generations,
    leases,
    metadata,
    pins,
    retention_applications,
    run_states,
    scalar_files,
    scan_runs,
    usage_snapshots,
)
from tbhub.core.models import CorruptRecord, EventFileScan
from tbhub.core.names import shown, without_surrogates
from tbhub.core.usage import Snapshot
from tbhub.errors import StateError

__all__ = [
    "HEAD_REVISION",
    "AlertRow",
    "DeletionRecord",
    "DeliveryState",
    "Pin",
    "RetentionApplication",
    "ScanRecord",
    "StateStore",
    "open_state",
]

MIGRATIONS = Path(__file__).parent / "migrations"
# SQLite allows 32766 bound variables per statement; keep IN lists well below.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ScanRecord:
    endpoint: str
    finished_at: float
    duration_s: float
    files: int
    files_read: int
    bytes_read: int
    error: str | None


@dataclass(frozen=True, slots=True)
class DeletionRecord:
    """One run a manage command removed (``outcome`` "deleted") or failed to ("failed")."""

    at: float
    actor: str
    command: str
    endpoint: str
    dataset: str
    run: str
    relpath: str
    size_bytes: int
    event_count: int
    archive: str | None
    outcome: str
    error: str | None = None


#: The newest migration; a test checks it against the migration scripts. Comparing with it spares
#: every command the import of alembic (slow) when the schema is already up to date.
HEAD_REVISION = "0009"


@dataclass(frozen=True, slots=True)
class Pin:
    endpoint: str
    relpath: str
    pinned_by: str
    pinned_at: float


@dataclass(frozen=True, slots=True)
class RetentionApplication:
    """One application of the retention policies; ``details`` is JSON text (the runs removed)."""

    at: float
    trigger: str  # "cli" or "schedule"
    actor: str
    deleted: int
    failed: int
    bytes_freed: int
    refused: str | None
    details: str
    id: int | None = None


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    key: str
    endpoint: str
    dataset: str
    run: str
    status: str
    at: float
    message: str
    details: str  # JSON
    url: str | None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Where delivering one alert to one channel stands: attempts so far, when to try next."""

    alert: AlertRow
    attempts: int
    next_at: float | None
    last_error: str | None


def _alembic_config() -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _revision(connection: Connection) -> str | None:
    revision: str | None = connection.execute(select(alembic_version.c.version_num)).scalar()
    return revision


def _create_at_head(connection: Connection) -> None:
    """Build an empty database's schema from the tables and stamp it at head, as alembic's cookbook
    recipe "building an up-to-date database from scratch" does, but without importing alembic."""
    metadata.create_all(connection)
    alembic_version.create(connection)
    connection.execute(insert(alembic_version).values(version_num=HEAD_REVISION))


def _migrate_with_alembic(connection: Connection) -> None:
    from alembic import command

    cfg = _alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


#: How long a new connection keeps trying to switch its SQLite file to WAL.
WAL_SWITCH_S = 10.0


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    # WAL lets the hub read while the scanner writes; NORMAL is durable across process crashes. The
    # switch needs an exclusive lock, which SQLite tries once, without the busy handler: processes
    # opening a new file together ("database is locked") retry. The file keeps the mode, so once one
    # has switched the others find it done.
    # (A file system that cannot do WAL answers with its current mode, and that is kept.)
    deadline = time.monotonic() + WAL_SWITCH_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.02)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_LOAD_COLUMNS = (
    "relpath, inode, size, mtime_ns, records, scanned_offset, first_step, last_step, first_wall_time, "
    "last_wall_time, truncated, corrupt_offset, corrupt_reason, verified"
)
_GENERATION_SQL = {
    "qmark": "SELECT generation FROM index_generations WHERE endpoint = ?",
    "pyformat": "SELECT generation FROM index_generations WHERE endpoint = %(e)s",
    "named": "SELECT generation FROM index_generations WHERE endpoint = :e",
}
_LOAD_SQL = {
    "qmark": f"SELECT {_LOAD_COLUMNS} FROM event_files WHERE endpoint = ?",
    "pyformat": f"SELECT {_LOAD_COLUMNS} FROM event_files WHERE endpoint = %(e)s",
    "named": f"SELECT {_LOAD_COLUMNS} FROM event_files WHERE endpoint = :e",
}


def _tuple_to_scan(row: Any) -> EventFileScan:
    (
        relpath,
        inode,
        size,
        mtime_ns,
        records,
        offset,
        first_step,
        last_step,
        first_wall,
        last_wall,
        truncated,
        corrupt_offset,
        corrupt_reason,
        verified,
    ) = row
    return EventFileScan(
        from_db(relpath),
        inode if inode >= 0 else inode + 2**64,
        size,
        mtime_ns,
        records,
        offset,
        first_step,
        last_step,
        first_wall,
        last_wall,
        bool(truncated),
        None if corrupt_offset is None else CorruptRecord(corrupt_offset, corrupt_reason or "corrupt"),
        bool(verified),
    )


def _scan_to_row(endpoint: str, scan: EventFileScan) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "relpath": to_db(scan.relpath),
        # inode numbers are unsigned 64-bit; BIGINT is signed.
        "inode": scan.inode if scan.inode < 2**63 else scan.inode - 2**64,
        "size": scan.size,
        "mtime_ns": scan.mtime_ns,
        "records": scan.records,
        "scanned_offset": scan.scanned_offset,
        "first_step": scan.first_step,
        "last_step": scan.last_step,
        "first_wall_time": scan.first_wall_time,
        "last_wall_time": scan.last_wall_time,
        "truncated": scan.truncated,
        "corrupt_offset": scan.corrupt.offset if scan.corrupt else None,
        "corrupt_reason": scan.corrupt.reason if scan.corrupt else None,
        "verified": scan.verified,
    }


class StateStore:
    """The state database. Implements the core's ``ScanIndex`` port."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._index_cache: dict[str, tuple[int, dict[str, EventFileScan]]] = {}

    # -- schema ---------------------------------------------------------------------------------
    def upgrade(self) -> str:
        """Migrate to the newest revision; returns it (a no-op when the schema is already there).

        A brand-new database (none of tbhub's tables, no ``alembic_version``) is built from
        ``tables.metadata`` and stamped with ``HEAD_REVISION`` without importing alembic (~10 MB of
        resident memory with mako and pygments); only a database at an older revision goes through the
        migration scripts. A test keeps ``tables.py`` equal to what the migrations build.
        """
        if self.current_revision() == HEAD_REVISION:
            return HEAD_REVISION
        try:
            with self._sqlite_migration_lock(), self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Servers sharing a fresh database start together: one migrates, the others wait here
                    # (the lock lasts until commit) and then find the schema at head.
                    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7460501)")
                # Decided again under the lock: another process may have built the schema meanwhile.
                found = set(inspect(connection).get_table_names())
                if not found & {alembic_version.name, *metadata.tables}:
                    _create_at_head(connection)
                elif alembic_version.name not in found or _revision(connection) != HEAD_REVISION:
                    _migrate_with_alembic(connection)
        except SQLAlchemyError as error:
            raise StateError(f"cannot migrate the state database: {one_line(error)}") from None
        return self.current_revision() or ""

    @contextlib.contextmanager
    def _sqlite_migration_lock(self) -> Iterator[None]:
        """SQLite has no advisory locks: processes that start together on a fresh file take turns on a
        lock file beside it (the later ones then find the schema at head and do nothing)."""
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:":
            yield
            return
        with open(os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            if not inspect(connection).has_table(alembic_version.name):
                return None
            return _revision(connection)

    @staticmethod
    def head_revision() -> str | None:
        """The newest revision according to the migration scripts themselves."""
        from alembic.script import ScriptDirectory

        head: str | None = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        return head

    # -- ScanIndex ------------------------------------------------------------------------------
    def load(self, endpoint: str) -> Mapping[str, EventFileScan]:
        """The endpoint's index; from memory when no process changed it since (its generation).

        This runs on every rescan, so it stays close to the driver: plain tuples, no Row objects.
        """
        style = self.engine.dialect.paramstyle
        params: Any = (endpoint,) if style == "qmark" else {"e": endpoint}
        with self.engine.connect() as connection:
            generation = connection.exec_driver_sql(_GENERATION_SQL[style], params).scalar() or 0
            cached = self._index_cache.get(endpoint)
            if cached is not None and cached[0] == generation:
                return cached[1]
            rows = connection.exec_driver_sql(_LOAD_SQL[style], params).fetchall()
        index = {scan.relpath: scan for scan in map(_tuple_to_scan, rows)}
        self._index_cache[endpoint] = (generation, index)
        return index

    def save(self, endpoint: str, scans: Iterable[EventFileScan], removed: Iterable[str]) -> None:
        rows = [_scan_to_row(endpoint, s) for s in scans]
        gone = [*map(to_db, removed), *(r["relpath"] for r in rows)]
        self._index_cache.pop(endpoint, None)
        self._ensure_generation(endpoint)
        with self.engine.begin() as connection:
            # Bumping the generation first also locks the endpoint's row: concurrent saves queue up.
            connection.execute(
                update(index_generations)
                .where(index_generations.c.endpoint == endpoint)
                .values(generation=index_generations.c.generation + 1)
            )
            for i in range(0, len(gone), _CHUNK):
                connection.execute(
                    delete(event_files).where(
                        event_files.c.endpoint == endpoint,
                        event_files.c.relpath.in_(gone[i : i + _CHUNK]),
                    )
                )
            if rows:
                connection.execute(insert(event_files), rows)

    def _ensure_generation(self, endpoint: str) -> None:
        with self.engine.connect() as connection:
            exists_ = connection.execute(
                select(index_generations.c.generation).where(index_generations.c.endpoint == endpoint)
            ).first()
        if exists_ is not None:
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(index_generations).values(endpoint=endpoint, generation=0))
        except IntegrityError:
            pass  # another process created it first

    def forget_endpoint(self, endpoint: str) -> None:
        self._index_cache.pop(endpoint, None)
        with self.engine.begin() as connection:
            connection.execute(delete(index_generations).where(index_generations.c.endpoint == endpoint))
            connection.execute(delete(event_files).where(event_files.c.endpoint == endpoint))

    # -- scan history ---------------------------------------------------------------------------
    def record_scan(self, record: ScanRecord) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(scan_runs).values(
                    endpoint=record.endpoint,
                    finished_at=record.finished_at,
                    duration_s=record.duration_s,
                    files=record.files,
                    files_read=record.files_read,
                    bytes_read=record.bytes_read,
                    error=None if record.error is None else without_surrogates(record.error),
                )
            )
            # Keep the table small: the last 100 scans per endpoint are plenty for the hub.
            keep = (
                select(scan_runs.c.id)
                .where(scan_runs.c.endpoint == record.endpoint)
                .order_by(scan_runs.c.id.desc())
                .limit(100)
            )
            connection.execute(
                delete(scan_runs).where(
                    scan_runs.c.endpoint == record.endpoint, scan_runs.c.id.not_in(keep.scalar_subquery())
                )
            )

    def last_scan(self, endpoint: str) -> ScanRecord | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(scan_runs).where(scan_runs.c.endpoint == endpoint).order_by(scan_runs.c.id.desc()).limit(1)
            ).first()
        if row is None:
            return None
        return ScanRecord(
            row.endpoint, row.finished_at, row.duration_s, row.files, row.files_read, row.bytes_read, row.error
        )

    # -- deletion history -----------------------------------------------------------------------
    def record_deletion(self, record: DeletionRecord) -> None:
        with self.engine.begin() as connection:
            values = {f: getattr(record, f) for f in DeletionRecord.__slots__}
            values.update({f: to_db(values[f]) for f in ("dataset", "run", "relpath")})
            values["error"] = None if record.error is None else without_surrogates(record.error)
            connection.execute(insert(deletions).values(**values))

    def deletions(self, *, limit: int = 1000) -> list[DeletionRecord]:
        """The newest ``limit`` deletions, newest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(deletions).order_by(deletions.c.id.desc()).limit(limit))
            records = [DeletionRecord(**{f: getattr(row, f) for f in DeletionRecord.__slots__}) for row in rows]
        return [replace(r, dataset=from_db(r.dataset), run=from_db(r.run), relpath=from_db(r.relpath)) for r in records]

    # -- pins ---------------------------------------------------------------------------------------
    def pin(self, endpoint: str, relpath: str, by: str) -> bool:
        """Pin a run; ``False`` when it was pinned already."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(pins).values(endpoint=endpoint, relpath=to_db(relpath), pinned_by=by, pinned_at=time.time())
                )
        except IntegrityError:
            return False
        return True

    def unpin(self, endpoint: str, relpath: str) -> bool:
        """Unpin a run; ``False`` when it was not pinned."""
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(pins).where(pins.c.endpoint == endpoint, pins.c.relpath == to_db(relpath))
            )
            return bool(result.rowcount)

    def pins(self) -> list[Pin]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(pins).order_by(pins.c.endpoint, pins.c.relpath))
            return [Pin(r.endpoint, from_db(r.relpath), r.pinned_by, r.pinned_at) for r in rows]

    # -- leases: one process at a time for background jobs ------------------------------------------
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

    def release_lease(self, name: str, holder: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(leases).where(and_(leases.c.name == name, leases.c.holder == holder)))

    # -- retention ----------------------------------------------------------------------------------
    def record_retention(self, application: RetentionApplication) -> int:
        values = {f: getattr(application, f) for f in RetentionApplication.__slots__ if f != "id"}
        with self.engine.begin() as connection:
            result = connection.execute(insert(retention_applications).values(**values))
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    def retention_history(self, *, limit: int = 50) -> list[RetentionApplication]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(retention_applications).order_by(retention_applications.c.id.desc()).limit(limit)
            )
            return [RetentionApplication(**{f: getattr(r, f) for f in RetentionApplication.__slots__}) for r in rows]

    # -- usage ----------------------------------------------------------------------------------------
    def record_usage(self, rows: list[Snapshot]) -> None:
        if not rows:
            return
        with self.engine.begin() as connection:
            connection.execute(
                insert(usage_snapshots),
                [{f: getattr(r, f) for f in Snapshot.__slots__} | {"dataset": to_db(r.dataset)} for r in rows],
            )

    def usage_history(self, since: float = 0.0) -> list[Snapshot]:
        """Snapshots taken at or after ``since``, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(usage_snapshots).where(usage_snapshots.c.at >= since).order_by(usage_snapshots.c.at)
            )
            return [Snapshot(r.at, r.endpoint, from_db(r.dataset), r.size_bytes, r.runs, r.events) for r in rows]

    # -- the scalar reader's index --------------------------------------------------------------------
    def load_scalar_states(self, endpoint: str) -> dict[str, tuple[int, int, int, str]]:
        """relpath -> (inode, size, mtime_ns, state JSON) of one endpoint."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    scalar_files.c.relpath,
                    scalar_files.c.inode,
                    scalar_files.c.size,
                    scalar_files.c.mtime_ns,
                    scalar_files.c.state,
                ).where(scalar_files.c.endpoint == endpoint)
            )
            return {from_db(r[0]): (r[1] if r[1] >= 0 else r[1] + 2**64, r[2], r[3], r[4]) for r in rows}

    def save_scalar_states(
        self, endpoint: str, rows: list[tuple[str, int, int, int, str]], removed: Iterable[str]
    ) -> None:
        """Upsert (relpath, inode, size, mtime_ns, state JSON) rows and drop ``removed``, in one transaction."""
        gone = [to_db(relpath) for relpath in [*removed, *(r[0] for r in rows)]]
        with self.engine.begin() as connection:
            for i in range(0, len(gone), _CHUNK):
                connection.execute(
                    delete(scalar_files).where(
                        scalar_files.c.endpoint == endpoint, scalar_files.c.relpath.in_(gone[i : i + _CHUNK])
                    )
                )
            if rows:
                connection.execute(
                    insert(scalar_files),
                    [
                        {
                            "endpoint": endpoint,
                            "relpath": to_db(r),
                            "inode": ino if ino < 2**63 else ino - 2**64,
                            "size": size,
                            "mtime_ns": mt,
                            "state": state,
                        }
                        for r, ino, size, mt, state in rows
                    ],
                )

    # -- run states and alerts -------------------------------------------------------------------------
    def load_run_states(self, endpoint: str) -> dict[str, tuple[str, str]]:
        """relpath -> (status, key) as the alert engine last recorded them."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(run_states.c.relpath, run_states.c.status, run_states.c.key).where(
                    run_states.c.endpoint == endpoint
                )
            )
            return {from_db(r[0]): (r[1], from_db(r[2])) for r in rows}

    def save_run_states(self, endpoint: str, rows: list[tuple[str, str, str, str]]) -> None:
        """Upsert (relpath, status, key, reason) rows."""
        if not rows:
            return
        now = time.time()
        with self.engine.begin() as connection:
            relpaths = [to_db(r[0]) for r in rows]
            for i in range(0, len(relpaths), _CHUNK):
                connection.execute(
                    delete(run_states).where(
                        run_states.c.endpoint == endpoint, run_states.c.relpath.in_(relpaths[i : i + _CHUNK])
                    )
                )
            connection.execute(
                insert(run_states),
                [
                    {
                        "endpoint": endpoint,
                        "relpath": to_db(r),
                        "status": st,
                        "key": to_db(k),
                        "reason": without_surrogates(why),
                        "updated_at": now,
                    }
                    for r, st, k, why in rows
                ],
            )

    def insert_alert(
        self,
        *,
        key: str,
        endpoint: str,
        dataset: str,
        run: str,
        status: str,
        at: float,
        message: str,
        details: str,
        url: str | None,
    ) -> int | None:
        """Record an alert; ``None`` when an alert with that key exists already (never alert twice).

        Alerts are messages for people and receivers, so names in them are kept in their display form."""
        try:
            with self.engine.begin() as connection:
                result = connection.execute(
                    insert(alerts).values(
                        key=shown(key),
                        endpoint=endpoint,
                        dataset=shown(dataset),
                        run=shown(run),
                        status=status,
                        at=at,
                        message=without_surrogates(message),
                        details=details,
                        url=None if url is None else shown(url),
                    )
                )
                pk = result.inserted_primary_key
                return int(pk[0]) if pk else None
        except IntegrityError:
            return None

    def alerts(self, *, limit: int = 200) -> list[AlertRow]:
        """The newest alerts, newest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(alerts).order_by(alerts.c.id.desc()).limit(limit))
            return [AlertRow(*r) for r in rows]

    def alert(self, alert_id: int) -> AlertRow | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            return AlertRow(*row) if row else None

    def pending_deliveries(self, channel: str, statuses: Iterable[str], since: float) -> list[DeliveryState]:
        """Alerts of ``statuses`` at or after ``since`` not yet sent to (nor expired for, nor found
        undeliverable by) ``channel``, oldest first."""
        done = exists().where(
            deliveries.c.alert_id == alerts.c.id,
            deliveries.c.channel == channel,
            deliveries.c.outcome.in_(("sent", "expired", "undeliverable")),
        )
        attempts = (
            select(
                deliveries.c.alert_id,
                func.count().label("attempts"),
                func.max(deliveries.c.next_at).label("next_at"),
                func.max(deliveries.c.id).label("last_id"),
            )
            .where(deliveries.c.channel == channel)
            .group_by(deliveries.c.alert_id)
            .subquery()
        )
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(alerts, attempts.c.attempts, attempts.c.next_at, attempts.c.last_id)
                .outerjoin(attempts, attempts.c.alert_id == alerts.c.id)
                .where(alerts.c.status.in_(list(statuses)), alerts.c.at >= since, ~done)
                .order_by(alerts.c.id)
            ).all()
            errors: dict[int, str | None] = {}
            last_ids = [r.last_id for r in rows if r.last_id is not None]
            if last_ids:
                for rid, err in connection.execute(
                    select(deliveries.c.id, deliveries.c.error).where(deliveries.c.id.in_(last_ids))
                ):
                    errors[rid] = err
        return [DeliveryState(AlertRow(*r[:10]), r.attempts or 0, r.next_at, errors.get(r.last_id)) for r in rows]

    def record_delivery(
        self,
        alert_id: int,
        channel: str,
        attempt: int,
        outcome: str,
        error: str | None = None,
        next_at: float | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(deliveries).values(
                    alert_id=alert_id,
                    channel=channel,
                    attempt=attempt,
                    at=time.time(),
                    outcome=outcome,
                    error=error,
                    next_at=next_at,
                )
            )

    def deliveries(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        query = select(deliveries).order_by(deliveries.c.id)
        if alert_id is not None:
            query = query.where(deliveries.c.alert_id == alert_id)
        with self.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(query)]

    def alert_counts(self) -> dict[tuple[str, str], int]:
        """(endpoint, status) → how many alerts were ever recorded (one GROUP BY; for ``/metrics``)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(alerts.c.endpoint, alerts.c.status, func.count()).group_by(alerts.c.endpoint, alerts.c.status)
            )
            return {(endpoint, status): int(n) for endpoint, status, n in rows}

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        """(channel, outcome) → how many delivery attempts ended so (one GROUP BY; for ``/metrics``)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(deliveries.c.channel, deliveries.c.outcome, func.count()).group_by(
                    deliveries.c.channel, deliveries.c.outcome
                )
            )
            return {(channel, outcome): int(n) for channel, outcome, n in rows}

    def set_channel(self, name: str, *, disabled: bool, reason: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(channels).where(channels.c.name == name))
            connection.execute(
                insert(channels).values(name=name, disabled=disabled, reason=reason, updated_at=time.time())
            )

    def channel_states(self) -> dict[str, tuple[bool, str | None]]:
        with self.engine.connect() as connection:
            return {r.name: (bool(r.disabled), r.reason) for r in connection.execute(select(channels))}

    def dispose(self) -> None:
        self.engine.dispose()


def one_line(error: BaseException) -> str:
    """The first line of a database error (the driver's own message when there is one)."""
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _create_private(database: Path) -> None:
    """Create the state folder (0700) and an empty database file (0600) unless they exist: the file
    holds password hashes and token digests. SQLite creates its -wal and -shm files with the mode of
    the database file, so they are private too. Existing files keep the mode their owner gave them."""
    folder = database.parent
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def open_state(url: str, *, migrate: bool = True) -> StateStore:
    """Open (and by default migrate) the state database at ``url``.

    Raises ``StateError`` with one line when the URL is malformed, the folder cannot be created or
    the server cannot be reached.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StateError(f"state database URL {url!r} is not a valid SQLAlchemy URL") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            try:
                _create_private(Path(database).expanduser())
            except OSError as error:
                raise StateError(f"cannot create the state folder for {database}: {error.strerror}") from None
        kwargs["connect_args"] = {"timeout": 30}
    elif parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(parsed, pool_pre_ping=True, **kwargs)
    except (ArgumentError, ImportError) as error:
        raise StateError(f"cannot open state database {url!r}: {error}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    store = StateStore(engine)
    if migrate:
        try:
            store.upgrade()
        except OperationalError as error:  # pragma: no cover - depends on the server
            raise StateError(f"cannot reach state database: {one_line(error)}") from None
    return store
