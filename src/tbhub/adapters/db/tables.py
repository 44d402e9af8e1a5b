"""SQLAlchemy tables of the state database. Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

__all__ = ["deletions", "event_files", "metadata", "scan_runs"]

metadata = MetaData()

#: The scanner's incremental index: one row per event file, valid for (inode, size, mtime_ns).
event_files = Table(
    "event_files",
    metadata,
    Column("endpoint", String(128), nullable=False),
    Column("relpath", Text, nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("scanned_offset", BigInteger, nullable=False),
    Column("first_step", BigInteger),
    Column("last_step", BigInteger),
    Column("first_wall_time", Float),
    Column("last_wall_time", Float),
    Column("truncated", Boolean, nullable=False, default=False),
    Column("corrupt_offset", BigInteger),
    Column("corrupt_reason", Text),
    Column("verified", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("endpoint", "relpath", name="pk_event_files"),
)

#: One row per finished scan of an endpoint, for the hub's "refreshed at" and scan errors.
scan_runs = Table(
    "scan_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(128), nullable=False, index=True),
    Column("finished_at", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("files", Integer, nullable=False),
    Column("files_read", Integer, nullable=False),
    Column("bytes_read", BigInteger, nullable=False),
    Column("error", Text),
)

#: Every run a manage command removed (or failed to), with where its archive went.
deletions = Table(
    "deletions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("actor", String(256), nullable=False),
    Column("command", String(64), nullable=False),
    Column("endpoint", String(128), nullable=False),
    Column("dataset", Text, nullable=False),
    Column("run", Text, nullable=False),
    Column("relpath", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Column("archive", Text),
    Column("outcome", String(32), nullable=False),
    Column("error", Text),
)
