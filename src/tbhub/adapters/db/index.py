"""The scanner's index in the state database: event files, scan records, scalar reader and run states.

``IndexStore`` implements the core's ``ScanIndex`` port (``load``/``save``) and keeps the per-file
state of the two readers that follow the scanner: the scalar reader's (``scalar_files``) and the
alert engine's last verdict per run (``run_states``). Every row is keyed by (endpoint, relpath);
relpaths go through ``names.to_db`` and inode numbers are stored signed (see ``_inode_to_db``).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tbhub.adapters.db.names import from_db, to_db
from tbhub.adapters.db.records import from_row, row_values
from tbhub.adapters.db.tables import event_files, index_generations, run_states, scalar_files, scan_runs
from tbhub.core.models import CorruptRecord, EventFileScan
from tbhub.core.names import without_surrogates

__all__ = ["IndexStore", "ScanRecord"]

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


def _inode_to_db(inode: int) -> int:
    # inode numbers are unsigned 64-bit; BIGINT is signed.
    return inode if inode < 2**63 else inode - 2**64


def _inode_from_db(inode: int) -> int:
    return inode if inode >= 0 else inode + 2**64


#: The columns of _LOAD_COLUMNS between inode and truncated, which map one to one onto the fields.
_Counts = tuple[int, int, int, int, int | None, int | None, float | None, float | None]


def _tuple_to_scan(row: Any) -> EventFileScan:
    corrupt_offset, corrupt_reason = row[11], row[12]
    return EventFileScan(
        from_db(row[0]),
        _inode_from_db(row[1]),
        *cast(_Counts, row[2:10]),
        bool(row[10]),
        None if corrupt_offset is None else CorruptRecord(corrupt_offset, corrupt_reason or "corrupt"),
        bool(row[13]),
    )


def _scan_to_row(endpoint: str, scan: EventFileScan) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "relpath": to_db(scan.relpath),
        "inode": _inode_to_db(scan.inode),
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


def _delete_relpaths(connection: Connection, table: Table, endpoint: str, relpaths: Sequence[str]) -> None:
    """Delete the endpoint's rows of ``relpaths`` (already in their ``to_db`` form), in chunks."""
    for i in range(0, len(relpaths), _CHUNK):
        connection.execute(
            delete(table).where(table.c.endpoint == endpoint, table.c.relpath.in_(relpaths[i : i + _CHUNK]))
        )


class IndexStore:
    """The scan index and the readers' per-file state on the state database's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._index_cache: dict[str, tuple[int, dict[str, EventFileScan]]] = {}

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
            _delete_relpaths(connection, event_files, endpoint, gone)
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
                    row_values(record) | {"error": None if record.error is None else without_surrogates(record.error)}
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
        return from_row(ScanRecord, row)

    # -- the scalar reader's index --------------------------------------------------------------------
    def load_scalar_states(
        self, endpoint: str, relpaths: Collection[str] | None = None
    ) -> dict[str, tuple[int, int, int, str]]:
        """relpath -> (inode, size, mtime_ns, state JSON) of one endpoint; of ``relpaths`` only, if given
        (a compare of 10 runs reads their files' rows, not the whole endpoint's)."""
        query = select(
            scalar_files.c.relpath,
            scalar_files.c.inode,
            scalar_files.c.size,
            scalar_files.c.mtime_ns,
            scalar_files.c.state,
        ).where(scalar_files.c.endpoint == endpoint)
        wanted = None if relpaths is None else [to_db(r) for r in relpaths]
        with self.engine.connect() as connection:
            if wanted is None:
                rows = list(connection.execute(query))
            else:
                rows = [
                    row
                    for i in range(0, len(wanted), _CHUNK)
                    for row in connection.execute(query.where(scalar_files.c.relpath.in_(wanted[i : i + _CHUNK])))
                ]
            return {from_db(r[0]): (_inode_from_db(r[1]), r[2], r[3], r[4]) for r in rows}

    def save_scalar_states(
        self, endpoint: str, rows: list[tuple[str, int, int, int, str]], removed: Iterable[str]
    ) -> None:
        """Upsert (relpath, inode, size, mtime_ns, state JSON) rows and drop ``removed``, in one transaction."""
        gone = [to_db(relpath) for relpath in [*removed, *(r[0] for r in rows)]]
        with self.engine.begin() as connection:
            _delete_relpaths(connection, scalar_files, endpoint, gone)
            if rows:
                connection.execute(
                    insert(scalar_files),
                    [
                        {
                            "endpoint": endpoint,
                            "relpath": to_db(r),
                            "inode": _inode_to_db(ino),
                            "size": size,
                            "mtime_ns": mt,
                            "state": state,
                        }
                        for r, ino, size, mt, state in rows
                    ],
                )

    # -- run states: the alert engine's last verdict per run -------------------------------------------
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
            _delete_relpaths(connection, run_states, endpoint, [to_db(r[0]) for r in rows])
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
