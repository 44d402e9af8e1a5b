"""The state database: one handle per process on a SQLAlchemy 2 engine, with its Alembic migrations.

SQLite (WAL mode) in the state folder by default; any SQLAlchemy URL works (PostgreSQL via psycopg 3).
The schema is migrated to the newest revision when a store is opened, so the embedded default needs no
set-up; ``tbhub db upgrade`` does the same explicitly.

This module opens the database (``open_state``: the URL, a private SQLite file, the pragmas) and
migrates it. The tables' rows live in one module per aggregate, each a class holding only its own
methods on a shared ``engine``:

    index.py     IndexStore     scan index (the core's ``ScanIndex``), scan records, scalar and run states
    history.py   HistoryStore   deletions, retention applications
    alerts.py    AlertStore     alerts, deliveries, channels
    usage.py     UsageStore     usage snapshots
    pins.py      PinStore       pinned runs
    run_index.py RunIndexStore  one row per run (derived from the index) for the runs explorer
    leases.py    LeaseStore     named leases for background jobs

``StateStore`` composes them by inheritance, so a process keeps one handle (one engine, one connection
pool, one index cache) and every ``state.method(...)`` call works as it did when this module held every
aggregate; code that needs one aggregate alone can build it from an engine (``AlertStore(engine)``), as
``accounts.py``, ``annotations.py``, ``alert_rules.py`` and ``throttle.py`` are built. The records
(``ScanRecord``, ``DeletionRecord``, ...) are re-exported here so their import path stays.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from tbhub.adapters.db.alerts import AlertRow, AlertStore, DeliveryState
from tbhub.adapters.db.history import DeletionRecord, HistoryStore, RetentionApplication
from tbhub.adapters.db.index import IndexStore, ScanRecord
from tbhub.adapters.db.leases import LeaseStore
from tbhub.adapters.db.pins import Pin, PinStore
from tbhub.adapters.db.run_index import RunIndexStore
from tbhub.adapters.db.tables import alembic_version, metadata
from tbhub.adapters.db.usage import UsageStore
from tbhub.errors import StateError

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS",
    "AlertRow",
    "DeletionRecord",
    "DeliveryState",
    "Pin",
    "RetentionApplication",
    "ScanRecord",
    "StateStore",
    "one_line",
    "open_state",
    "shown_url",
    "sqlite_file",
]

MIGRATIONS = Path(__file__).parent / "migrations"

#: The newest migration; a test checks it against the migration scripts. Comparing with it spares
#: every command the import of alembic (slow) when the schema is already up to date.
HEAD_REVISION = "0011"


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


class StateStore(IndexStore, HistoryStore, AlertStore, UsageStore, PinStore, LeaseStore, RunIndexStore):
    """The state database: every aggregate's methods on one engine, and the schema. Implements the
    core's ``ScanIndex`` port (through ``IndexStore``)."""

    def __init__(self, engine: Engine) -> None:
        # IndexStore's also makes the index cache; the other aggregates hold only the engine.
        IndexStore.__init__(self, engine)

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

    def dispose(self) -> None:
        self.engine.dispose()


def one_line(error: BaseException) -> str:
    """The first line of a database error (the driver's own message when there is one)."""
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite state URL names; ``None`` for a database server, an in-memory database or a
    malformed URL (which ``open_state`` reports)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def shown_url(url: str) -> str:
    """The state database for a person: a SQLite file's path, or the server URL without its password."""
    file = sqlite_file(url)
    if file is not None:
        return str(file)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


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
        database = sqlite_file(url)
        if database is not None:
            try:
                _create_private(database)
            except OSError as error:
                raise StateError(f"cannot create the state folder for {parsed.database}: {error.strerror}") from None
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
