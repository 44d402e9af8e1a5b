"""SQLAlchemy tables of the state database.

Alembic migrations in ``migrations/`` create them in an existing database; a brand-new one is built
from ``metadata`` directly (``StateStore.upgrade``). So these tables must say exactly what the
migrations up to ``HEAD_REVISION`` create, server defaults included: ``tests/adapters/test_schema.py``
compares both on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

__all__ = [
    "alembic_version",
    "alert_rules",
    "alerts",
    "api_tokens",
    "bookmarks",
    "channels",
    "deletions",
    "deliveries",
    "endpoint_roles",
    "event_files",
    "index_generations",
    "leases",
    "login_failures",
    "metadata",
    "notes",
    "pins",
    "retention_applications",
    "run_states",
    "run_table",
    "run_tags",
    "scalar_files",
    "scan_runs",
    "sessions",
    "setup_tokens",
    "step_span",
    "usage_snapshots",
    "users",
]

metadata = MetaData()


# -- the columns many tables share -----------------------------------------------------------------
def _id() -> Column[int]:
    """The surrogate key of a table that only grows (history, alerts, accounts, annotations)."""
    return Column("id", Integer, primary_key=True, autoincrement=True)


def _endpoint(**options: Any) -> Column[str]:
    """The endpoint a row is about: its name from the config."""
    return Column("endpoint", String(128), nullable=False, **options)


def _run_place() -> tuple[Column[str], Column[str]]:
    """Where a run (or an event file) is: its endpoint and its path below the endpoint's log root."""
    return _endpoint(), Column("relpath", Text, nullable=False)


def _run_names() -> tuple[Column[str], Column[str], Column[str]]:
    """How a run is shown: endpoint, dataset and run name (kept as text: they outlive the run)."""
    return _endpoint(), Column("dataset", Text, nullable=False), Column("run", Text, nullable=False)


def _file_identity() -> tuple[Column[int], Column[int], Column[int]]:
    """What a cached reading of an event file is valid for (``core.models.FileEntry``)."""
    return (
        Column("inode", BigInteger, nullable=False),
        Column("size", BigInteger, nullable=False),
        Column("mtime_ns", BigInteger, nullable=False),
    )


def _stamp(verb: str) -> tuple[Column[str], Column[float]]:
    """Who did ``verb`` to a row and when: ``{verb}_by`` (a user or process name) and ``{verb}_at``."""
    return Column(f"{verb}_by", String(256), nullable=False), Column(f"{verb}_at", Float, nullable=False)


def _user_id() -> Column[int]:
    """The account a row belongs to; deleting the user deletes the row."""
    return Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)


def step_span() -> tuple[Column[int], Column[int], Column[float], Column[float]]:
    """The first and last step and wall time of what a row covers (an event file, a run); none yet: NULL."""
    return (
        Column("first_step", BigInteger),
        Column("last_step", BigInteger),
        Column("first_wall_time", Float),
        Column("last_wall_time", Float),
    )


def run_table(name: str, *columns: Column[Any], key: tuple[str, ...] = (), indexes: tuple[Index, ...] = ()) -> Table:
    """A table of facts about one run or event file, keyed by (endpoint, relpath) and then ``key``."""
    return Table(
        name,
        metadata,
        *_run_place(),
        *columns,
        PrimaryKeyConstraint("endpoint", "relpath", *key, name=f"pk_{name}"),
        *indexes,
    )


#: The scanner's incremental index: one row per event file, valid for (inode, size, mtime_ns).
event_files = run_table(
    "event_files",
    *_file_identity(),
    Column("records", BigInteger, nullable=False),
    Column("scanned_offset", BigInteger, nullable=False),
    *step_span(),
    Column("truncated", Boolean, nullable=False, default=False),
    Column("corrupt_offset", BigInteger),
    Column("corrupt_reason", Text),
    Column("verified", Boolean, nullable=False, default=False),
)

#: One row per finished scan of an endpoint, for the hub's "refreshed at" and scan errors.
scan_runs = Table(
    "scan_runs",
    metadata,
    _id(),
    _endpoint(index=True),
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
    _id(),
    Column("at", Float, nullable=False, index=True),
    Column("actor", String(256), nullable=False),
    Column("command", String(64), nullable=False),
    *_run_names(),
    Column("relpath", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Column("archive", Text),
    Column("outcome", String(32), nullable=False),
    Column("error", Text),
)

#: Runs a retention policy must never delete.
pins = run_table("pins", *_stamp("pinned"))

#: Time-limited leases: one process at a time runs a background job (retention, alerts).
leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("expires_at", Float, nullable=False),
)

#: Every application of the retention policies, scheduled or by hand.
retention_applications = Table(
    "retention_applications",
    metadata,
    _id(),
    Column("at", Float, nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("deleted", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("bytes_freed", BigInteger, nullable=False),
    Column("refused", Text),
    Column("details", Text, nullable=False),
)

#: Storage used per endpoint and dataset over time (daily from the server, and on each `tbhub usage`).
usage_snapshots = Table(
    "usage_snapshots",
    metadata,
    _id(),
    Column("at", Float, nullable=False, index=True),
    _endpoint(),
    Column("dataset", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("runs", Integer, nullable=False),
    Column("events", BigInteger, nullable=False),
)

#: The scalar reader's incremental state per event file (JSON of ``ScalarFileState``).
scalar_files = run_table("scalar_files", *_file_identity(), Column("state", Text, nullable=False))

#: The last status the alert engine saw for each run (so it fires once per change, across restarts).
run_states = run_table(
    "run_states",
    Column("status", String(16), nullable=False),
    Column("key", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: Every alert, once per state change (``key`` is unique).
alerts = Table(
    "alerts",
    metadata,
    _id(),
    Column("key", Text, nullable=False, unique=True),
    *_run_names(),
    Column("status", String(16), nullable=False),
    Column("at", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("url", Text),
)

#: Every delivery attempt of an alert to a channel: sent, retry (with next_at), failed, expired.
deliveries = Table(
    "deliveries",
    metadata,
    _id(),
    Column("alert_id", Integer, ForeignKey("alerts.id"), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("error", Text),
    Column("next_at", Float),
    Index("ix_deliveries_alert_channel", "alert_id", "channel"),
)

#: A channel disabled after a permanent failure (404, 410, bad credentials) and why.
channels = Table(
    "channels",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("disabled", Boolean, nullable=False),
    Column("reason", Text),
    Column("updated_at", Float, nullable=False),
)

#: Bumped in the transaction of every change to an endpoint's scan index: a process that kept the
#: index in memory reloads it only when the generation moved.
index_generations = Table(
    "index_generations",
    metadata,
    Column("endpoint", String(128), primary_key=True),
    Column("generation", BigInteger, nullable=False),
)

# -- accounts (0006) ---------------------------------------------------------------------------------
#: Hub accounts; ``password_hash`` is scrypt (``tbhub.core.accounts``), never the password.
users = Table(
    "users",
    metadata,
    _id(),
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text),
    Column("created_at", Float, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False, server_default=false()),  # as 0006 adds it
)

#: Browser sessions: the SHA-256 of the cookie's value, never the value itself.
sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    _user_id(),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_sessions_expires", "expires_at"),
)

#: API tokens for scripts (``Authorization: Bearer``), shown once and kept as a SHA-256.
api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    Column("name", String(128), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    *_stamp("created"),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
    Column("endpoints", Text),  # 0009: a JSON list of the endpoints it may act on; NULL: every endpoint
)

#: One-time links that create the first admin.
setup_tokens = Table(
    "setup_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float),
)

#: Notes on runs, keyed by (endpoint, relpath) and not tied to the index: they outlive an archive.
notes = Table(
    "notes",
    metadata,
    _id(),
    *_run_place(),
    Column("text", Text, nullable=False),
    Column("author", String(256), nullable=False),
    Column("at", Float, nullable=False),
    Column("edited_by", String(256)),  # 0007: the last editor and when; the author stays
    Column("edited_at", Float),
    Index("ix_notes_run", "endpoint", "relpath"),
)

#: Free tags on runs.
run_tags = run_table("run_tags", Column("tag", String(128), nullable=False), *_stamp("added"), key=("tag",))

#: Shared bookmarks: a TensorBoard view (endpoint and fragment state) or a hub page.
bookmarks = Table(
    "bookmarks",
    metadata,
    _id(),
    Column("name", String(128), nullable=False, unique=True),
    Column("owner", String(256), nullable=False),
    Column("description", Text, nullable=False),
    Column("endpoint", String(128)),
    Column("dashboard", String(32), nullable=False),
    Column("run_filter", Text, nullable=False),
    Column("tag_filter", Text, nullable=False),
    Column("smoothing", Float),
    Column("page", Text),
    Column("created_at", Float, nullable=False),
)

# -- 0007 --------------------------------------------------------------------------------------------
#: Alert (status) rules set from the hub. One row per scope: an endpoint (``dataset`` is "") or one
#: dataset glob of it; ``rule`` is the JSON of the config keys it sets, which win over the config's.
alert_rules = Table(
    "alert_rules",
    metadata,
    _id(),
    _endpoint(),
    Column("dataset", String(256), nullable=False),
    Column("rule", Text, nullable=False),
    *_stamp("updated"),
    UniqueConstraint("endpoint", "dataset", name="uq_alert_rules_scope"),
)

# -- 0008 --------------------------------------------------------------------------------------------
#: A user's role on one endpoint, above their role everywhere else (``users.role``).
endpoint_roles = Table(
    "endpoint_roles",
    metadata,
    _user_id(),
    _endpoint(),
    Column("role", String(16), nullable=False),
    *_stamp("granted"),
    PrimaryKeyConstraint("user_id", "endpoint", name="pk_endpoint_roles"),
)

# -- 0009 --------------------------------------------------------------------------------------------
#: Recent failed logins, per key (``tbhub.core.throttle``): shared by every replica on the database.
login_failures = Table(
    "login_failures",
    metadata,
    Column("kind", String(16), nullable=False),
    Column("subject", String(320), nullable=False),
    Column("failures", Integer, nullable=False),
    Column("last_at", Float, nullable=False),
    PrimaryKeyConstraint("kind", "subject", name="pk_login_failures"),
    Index("ix_login_failures_last", "last_at"),
)

# -- alembic's own ----------------------------------------------------------------------------------
#: The revision stamp, shaped as alembic's ``DefaultImpl.version_table_impl`` creates it (so alembic
#: reads and upgrades a database built without it). In a MetaData of its own: not one of tbhub's tables.
alembic_version = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
