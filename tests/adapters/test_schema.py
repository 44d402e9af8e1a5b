"""``tables.py`` says exactly what the migrations build, so a fresh database can skip alembic.

``StateStore.upgrade`` builds a brand-new database from ``tables.metadata`` and stamps it at
``HEAD_REVISION`` without importing alembic; databases at an older revision still go through the
migration scripts. Both ways must give the same schema, on SQLite and on a real PostgreSQL
(``tests/pg.py``), and alembic must be able to carry a database built the fresh way further.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select

from pg import PostgresServer, postgres_server  # noqa: F401  (pytest fixtures)
from tbhub.adapters.db import store as store_module
from tbhub.adapters.db.store import HEAD_REVISION, StateStore, _alembic_config, open_state
from tbhub.adapters.db.tables import alembic_version, metadata
from together import run_together

pytestmark = pytest.mark.timeout(180)

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes empty databases of one backend (each call a new one); PostgreSQL ones dropped afterwards."""
    if request.param == "sqlite":
        yield lambda: f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    names: list[str] = []

    def make() -> str:
        names.append(f"t_{uuid.uuid4().hex}")
        return server.create_database(names[-1])

    yield make
    for name in names:
        server.drop_database(name)


def _alembic(engine: Engine, verb: Callable[..., None], revision: str) -> None:
    cfg = _alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        verb(cfg, revision)


def _migrated_step_by_step(url: str) -> StateStore:
    """A database built by the migration scripts, one revision per transaction, as upgrades over time did."""
    state = open_state(url, migrate=False)
    scripts = ScriptDirectory.from_config(_alembic_config())
    revisions = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    assert revisions[-1] == HEAD_REVISION
    for revision in revisions:
        _alembic(state.engine, command.upgrade, revision)
        assert state.current_revision() == revision
    return state


def _built_fresh(url: str, monkeypatch: pytest.MonkeyPatch) -> StateStore:
    """A database built by ``upgrade``'s fresh path (the migration scripts made to fail if called)."""

    def refuse(_connection: Any) -> None:
        raise AssertionError("a fresh database went through alembic")

    with monkeypatch.context() as patch:
        patch.setattr(store_module, "_migrate_with_alembic", refuse)
        return open_state(url)


def _schema(engine: Engine) -> dict[str, dict[str, Any]]:
    """What the inspector reports of every table: columns, keys, indexes, constraints."""
    with engine.connect() as connection:
        inspector = inspect(connection)
        dialect = connection.dialect
        schema: dict[str, dict[str, Any]] = {}
        for table in sorted(inspector.get_table_names()):
            columns = [
                (c["name"], c["type"].compile(dialect=dialect), c["nullable"], c.get("default"), c.get("autoincrement"))
                for c in inspector.get_columns(table)
            ]
            pk = inspector.get_pk_constraint(table)
            schema[table] = {
                "columns": columns,
                "primary_key": (pk.get("name"), pk["constrained_columns"]),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
                ),
                "unique": sorted(
                    (u["name"] or "", tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)
                ),
                "foreign_keys": sorted(
                    (
                        f["name"] or "",
                        tuple(f["constrained_columns"]),
                        f["referred_table"],
                        tuple(f["referred_columns"]),
                        tuple(sorted(f["options"].items())),
                    )
                    for f in inspector.get_foreign_keys(table)
                ),
                "checks": sorted((c["name"] or "", c["sqltext"]) for c in inspector.get_check_constraints(table)),
            }
    return schema


def _differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, metadata))


def test_migrations_and_fresh_path_build_the_tables_py_schema(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    migrated = _migrated_step_by_step(new_database())
    fresh = _built_fresh(new_database(), monkeypatch)
    try:
        assert fresh.current_revision() == migrated.current_revision() == HEAD_REVISION
        assert _differences(migrated.engine) == []
        assert _differences(fresh.engine) == []
        built, expected = _schema(fresh.engine), _schema(migrated.engine)
        assert set(built) == set(expected) == {*metadata.tables, alembic_version.name}
        for table in sorted(expected):  # one table at a time: a readable diff when one drifts
            assert (table, built[table]) == (table, expected[table])
    finally:
        migrated.dispose()
        fresh.dispose()


def test_alembic_carries_a_freshly_built_database_further(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _built_fresh(new_database(), monkeypatch)
    try:
        before = _schema(state.engine)
        with state.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == HEAD_REVISION
            assert connection.execute(select(alembic_version.c.version_num)).scalars().all() == [HEAD_REVISION]
        _alembic(state.engine, command.upgrade, "head")  # at head already: nothing to do
        assert state.current_revision() == HEAD_REVISION
        assert _schema(state.engine) == before
        # Down past 0007 (a batch table rebuild of notes on SQLite) and up again, as a future
        # migration would touch these tables.
        _alembic(state.engine, command.downgrade, "0006")
        assert state.current_revision() == "0006"
        _alembic(state.engine, command.upgrade, "head")
        assert state.current_revision() == HEAD_REVISION
        assert _schema(state.engine) == before
        assert _differences(state.engine) == []
    finally:
        state.dispose()


_UPGRADE_AND_REPORT = """
import sys
from tbhub.adapters.db.store import open_state
state = open_state(sys.argv[1])
print(state.current_revision(), "alembic" in sys.modules)
"""


@pytest.mark.parametrize("before", ["empty", "unrelated table", "0007"])
def test_only_an_older_revision_imports_alembic(new_database: Callable[[], str], before: str) -> None:
    url = new_database()
    if before != "empty":
        old = open_state(url, migrate=False)
        try:
            if before == "0007":
                _alembic(old.engine, command.upgrade, "0007")
            else:
                with old.engine.begin() as connection:
                    connection.exec_driver_sql("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)")
        finally:
            old.dispose()
    result = subprocess.run(
        [sys.executable, "-c", _UPGRADE_AND_REPORT, url], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [HEAD_REVISION, str(before == "0007")]
    state = open_state(url, migrate=False)
    try:
        differences = _differences(state.engine)
        if before == "unrelated table":  # left alone: the only table tables.py does not know
            assert [(d[0], d[1].name) for d in differences] == [("remove_table", "someone_elses")]
        else:
            assert differences == []
    finally:
        state.dispose()


_UPGRADE_WHEN_TOLD = """
import sys
from tbhub.adapters.db import store

build = store._create_at_head

def spy(connection):
    print("built", flush=True)
    build(connection)

store._create_at_head = spy
state = store.open_state(sys.argv[1], migrate=False)
print("ready", flush=True)
sys.stdin.readline()
print(state.upgrade(), "alembic" in sys.modules, flush=True)
"""


def test_processes_upgrading_one_fresh_database_together_build_it_once(new_database: Callable[[], str]) -> None:
    url = new_database()
    results = run_together(_UPGRADE_WHEN_TOLD, [url], 4)
    assert [code for code, _, _ in results] == [0] * 4, [err for _, _, err in results]
    outputs = [out.split("\n") for _, out, _ in results]
    assert sum(lines.count("built") for lines in outputs) == 1
    assert {lines[-2] for lines in outputs} == {f"{HEAD_REVISION} False"}
    state = open_state(url, migrate=False)
    try:
        with state.engine.connect() as connection:
            assert connection.execute(select(alembic_version.c.version_num)).scalars().all() == [HEAD_REVISION]
        assert _differences(state.engine) == []
    finally:
        state.dispose()
