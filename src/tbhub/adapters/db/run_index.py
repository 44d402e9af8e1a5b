"""The runs of every endpoint as rows (``run_index``), for the explorer's sorts, filters and pages in SQL.

The scan index (``event_files``) holds files; the explorer lists runs. ``RunIndexStore.sync_runs`` writes an
endpoint's runs, as the app layer grouped them from the index, next to the index generation they came
from (``run_index_generations``), changing only the rows that differ; ``query_runs`` then answers one page
of a ``RunQuery`` with the run's status (``run_states``), pin, tags and notes joined in the database.
Names go through ``names.to_db`` like every relpath of the state database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from tbhub.adapters.db.names import from_db, to_db
from tbhub.adapters.db.tables import (
    index_generations,
    metadata,
    notes,
    pins,
    run_states,
    run_table,
    run_tags,
    step_span,
)
from tbhub.core.explorer import ExplorerRow, RunPage, RunQuery, StatusCounts

__all__ = ["RUN_COLUMNS", "RunIndexStore", "run_index", "run_index_generations"]

# The tables of migration 0010, on ``tables.metadata`` like every other table (``store.py`` imports this
# module, so a fresh database gets them and ``tests/adapters/test_schema.py`` compares them). They live
# here, beside their only reader and writer.
#: One row per run, derived from ``event_files`` by the endpoint's layout (``app/explorer.py`` keeps it
#: in step with the index): the runs explorer sorts, filters and pages it in SQL.
run_index = run_table(
    "run_index",
    Column("dataset", Text, nullable=False),
    Column("run", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("event_files", Integer, nullable=False),
    Column("event_count", BigInteger, nullable=False),
    *step_span(),
    Column("last_modified_ns", BigInteger, nullable=False),
    Column("truncated", Boolean, nullable=False),
    Column("corrupt", Boolean, nullable=False),
    indexes=(Index("ix_run_index_modified", "last_modified_ns"),),
)

#: The ``index_generations`` value each endpoint's ``run_index`` rows were derived from.
run_index_generations = Table(
    "run_index_generations",
    metadata,
    Column("endpoint", String(128), primary_key=True),
    Column("generation", BigInteger, nullable=False),
)

#: The columns ``sync_runs`` takes per run, in this order (after the relpath).
RUN_COLUMNS = (
    "dataset", "run", "size_bytes", "event_files", "event_count", "first_step", "last_step",
    "first_wall_time", "last_wall_time", "last_modified_ns", "truncated", "corrupt",
)
_CHUNK = 500
#: Status sort order: what needs a look first.
_STATUS_ORDER = {"diverged": 0, "stalled": 1, "running": 2, "finished": 3}

_ri, _rs, _pins = run_index, run_states, pins
_JOIN = _ri.outerjoin(_rs, and_(_rs.c.endpoint == _ri.c.endpoint, _rs.c.relpath == _ri.c.relpath)).outerjoin(
    _pins, and_(_pins.c.endpoint == _ri.c.endpoint, _pins.c.relpath == _ri.c.relpath)
)


def _tagged() -> Any:
    return and_(run_tags.c.endpoint == _ri.c.endpoint, run_tags.c.relpath == _ri.c.relpath)


def _noted() -> Any:
    return and_(notes.c.endpoint == _ri.c.endpoint, notes.c.relpath == _ri.c.relpath)


def _sort_column(key: str) -> ColumnElement[Any]:
    columns: dict[str, Any] = {
        "endpoint": _ri.c.endpoint,
        "dataset": _ri.c.dataset,
        "run": _ri.c.run,
        "size": _ri.c.size_bytes,
        "events": _ri.c.event_count,
        "files": _ri.c.event_files,
        "step": func.coalesce(_ri.c.last_step, -1),
        "modified": _ri.c.last_modified_ns,
    }
    if key in columns:
        return columns[key]  # type: ignore[no-any-return]
    if key == "status":
        return case(*((_rs.c.status == s, literal(i)) for s, i in _STATUS_ORDER.items()), else_=literal(9))
    if key == "pinned":
        return case((_pins.c.relpath.is_not(None), literal(1)), else_=literal(0))
    if key == "tags":
        # Runs without a tag after every tagged one, ascending.
        return func.coalesce(select(func.min(run_tags.c.tag)).where(_tagged()).scalar_subquery(), "\uffff")
    if key == "notes":
        return select(func.count()).select_from(notes).where(_noted()).scalar_subquery()
    raise ValueError(f"unknown sort key {key!r}")


def _where(endpoints: Sequence[str], query: RunQuery, now_ns: int) -> list[Any]:
    where: list[Any] = [_ri.c.endpoint.in_(list(endpoints))]
    if query.text:
        t = to_db(query.text)
        where.append(or_(
            _ri.c.dataset.icontains(t, autoescape=True),
            _ri.c.run.icontains(t, autoescape=True),
            exists().where(_tagged(), run_tags.c.tag.icontains(t, autoescape=True)),
            exists().where(_noted(), notes.c.text.icontains(query.text, autoescape=True)),
        ))
    if query.dataset:
        where.append(_ri.c.dataset.icontains(to_db(query.dataset), autoescape=True))
    if query.run:
        where.append(_ri.c.run.icontains(to_db(query.run), autoescape=True))
    if query.tag:
        where.append(exists().where(_tagged(), run_tags.c.tag == query.tag))
    if query.note:
        where.append(exists().where(_noted(), notes.c.text.icontains(query.note, autoescape=True)))
    if query.status == "unknown":
        where.append(_rs.c.status.is_(None))
    elif query.status:
        where.append(_rs.c.status == query.status)
    if query.newer_s is not None:
        where.append(_ri.c.last_modified_ns >= now_ns - int(query.newer_s * 1e9))
    if query.older_s is not None:
        where.append(_ri.c.last_modified_ns <= now_ns - int(query.older_s * 1e9))
    if query.pinned == "yes":
        where.append(_pins.c.relpath.is_not(None))
    elif query.pinned == "no":
        where.append(_pins.c.relpath.is_(None))
    return where


class RunIndexStore:
    """``run_index`` and its generations on the state database's engine (a part of ``StateStore``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- keeping it in step with the scan index ------------------------------------------------------
    def run_generations(self, endpoints: Sequence[str]) -> dict[str, tuple[int, int | None]]:
        """endpoint -> (the scan index's generation, the generation its run rows come from or ``None``)."""
        query = select(index_generations.c.endpoint, index_generations.c.generation,
                       run_index_generations.c.generation).select_from(
            index_generations.outerjoin(
                run_index_generations, run_index_generations.c.endpoint == index_generations.c.endpoint
            )
        ).where(index_generations.c.endpoint.in_(list(endpoints)))
        with self.engine.connect() as connection:
            return {r[0]: (int(r[1]), None if r[2] is None else int(r[2])) for r in connection.execute(query)}

    def sync_runs(self, endpoint: str, generation: int, runs: dict[str, tuple[Any, ...]]) -> int:
        """Make the endpoint's rows ``runs`` (relpath -> the ``RUN_COLUMNS`` values) and record
        ``generation``; in one transaction, writing only the rows that changed. Returns how many."""
        wanted = {to_db(relpath): (to_db(v[0]), to_db(v[1]), *v[2:]) for relpath, v in runs.items()}
        try:
            return self._sync_runs(endpoint, generation, wanted)
        except IntegrityError:
            # Another request or replica synced the same rows first: they are in step already.
            return 0

    def _sync_runs(self, endpoint: str, generation: int, wanted: dict[str, tuple[Any, ...]]) -> int:
        columns = [getattr(_ri.c, c) for c in RUN_COLUMNS]
        with self.engine.begin() as connection:
            have = {
                r[0]: tuple(r[1:])
                for r in connection.execute(select(_ri.c.relpath, *columns).where(_ri.c.endpoint == endpoint))
            }
            stale = [p for p, v in have.items() if wanted.get(p) != _normal(v)]
            fresh = [p for p, v in wanted.items() if have.get(p) is None or _normal(have[p]) != v]
            for i in range(0, len(stale), _CHUNK):
                connection.execute(
                    delete(_ri).where(_ri.c.endpoint == endpoint, _ri.c.relpath.in_(stale[i : i + _CHUNK]))
                )
            if fresh:
                connection.execute(
                    insert(_ri),
                    [{"endpoint": endpoint, "relpath": p, **dict(zip(RUN_COLUMNS, wanted[p], strict=True))}
                     for p in fresh],
                )
            marked = connection.execute(
                update(run_index_generations)
                .where(run_index_generations.c.endpoint == endpoint)
                .values(generation=generation)
            ).rowcount
            if not marked:
                connection.execute(insert(run_index_generations).values(endpoint=endpoint, generation=generation))
        return len(fresh) + len([p for p in stale if p not in wanted])

    def forget_runs(self, endpoint: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(_ri).where(_ri.c.endpoint == endpoint))
            connection.execute(delete(run_index_generations).where(run_index_generations.c.endpoint == endpoint))

    # -- reading -------------------------------------------------------------------------------------
    def query_runs(self, endpoints: Sequence[str], query: RunQuery, now_ns: int) -> RunPage:
        """One page of the runs of ``endpoints`` that ``query`` selects, in its order, and the total."""
        where = _where(endpoints, query, now_ns)
        order = _sort_column(query.sort_key)
        listed = (
            select(
                _ri.c.endpoint, _ri.c.relpath, _ri.c.dataset, _ri.c.run, _ri.c.size_bytes, _ri.c.event_files,
                _ri.c.event_count, _ri.c.last_step, _ri.c.first_wall_time, _ri.c.last_wall_time,
                _ri.c.last_modified_ns, _ri.c.truncated, _ri.c.corrupt, _rs.c.status, _rs.c.reason,
                _pins.c.relpath.is_not(None),
            )
            .select_from(_JOIN)
            .where(*where)
            .order_by(order.desc() if query.descending else order.asc(), _ri.c.endpoint, _ri.c.relpath)
            .limit(query.per)
            .offset((query.page - 1) * query.per)
        )
        counted = select(func.count()).select_from(_JOIN).where(*where)
        with self.engine.connect() as connection:
            total = int(connection.execute(counted).scalar() or 0)
            found = connection.execute(listed).all()
            keyed: dict[str, list[str]] = defaultdict(list)
            for r in found:
                keyed[r[0]].append(r[1])
            tags: dict[tuple[str, str], list[str]] = defaultdict(list)
            noted: dict[tuple[str, str], list[str]] = defaultdict(list)
            for endpoint, relpaths in keyed.items():
                for e, p, tag in connection.execute(
                    select(run_tags.c.endpoint, run_tags.c.relpath, run_tags.c.tag)
                    .where(run_tags.c.endpoint == endpoint, run_tags.c.relpath.in_(relpaths))
                    .order_by(run_tags.c.tag)
                ):
                    tags[(e, p)].append(tag)
                for e, p, text in connection.execute(
                    select(notes.c.endpoint, notes.c.relpath, notes.c.text)
                    .where(notes.c.endpoint == endpoint, notes.c.relpath.in_(relpaths))
                    .order_by(notes.c.at, notes.c.id)
                ):
                    noted[(e, p)].append(text)
        rows = [
            ExplorerRow(
                endpoint=r[0], dataset=from_db(r[2]), run=from_db(r[3]), relpath=from_db(r[1]),
                size_bytes=int(r[4]), event_files=int(r[5]), event_count=int(r[6]), last_step=r[7],
                first_wall_time=r[8], last_wall_time=r[9], last_modified_ns=int(r[10]),
                truncated=bool(r[11]), corrupt=bool(r[12]), status=r[13], reason=r[14], pinned=bool(r[15]),
                notes=len(noted.get((r[0], r[1]), ())), tags=tuple(tags.get((r[0], r[1]), ())),
                last_note=noted[(r[0], r[1])][-1] if (r[0], r[1]) in noted else None,
            )
            for r in found
        ]
        return RunPage(query, rows, total)

    def run_status_counts(self, endpoints: Sequence[str]) -> dict[str, StatusCounts]:
        """Per endpoint: runs by status (``unknown`` when not judged yet) and their size on disk."""
        status = func.coalesce(_rs.c.status, "unknown")
        query = (
            select(_ri.c.endpoint, status, func.count(), func.coalesce(func.sum(_ri.c.size_bytes), 0))
            .select_from(_JOIN)
            .where(_ri.c.endpoint.in_(list(endpoints)))
            .group_by(_ri.c.endpoint, status)
        )
        out = {name: StatusCounts(name) for name in endpoints}
        with self.engine.connect() as connection:
            for endpoint, state, n, size in connection.execute(query):
                out[endpoint].add(state, int(n), int(size))
        return out

    def active_run_counts(self, endpoints: Sequence[str], since_ns: int) -> dict[str, int]:
        """Per endpoint: how many runs were written to since ``since_ns``."""
        query = (
            select(_ri.c.endpoint, func.count())
            .where(_ri.c.endpoint.in_(list(endpoints)), _ri.c.last_modified_ns >= since_ns)
            .group_by(_ri.c.endpoint)
        )
        with self.engine.connect() as connection:
            return {e: int(n) for e, n in connection.execute(query)}


def _normal(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as read back, in the types ``sync_runs`` is given (drivers return 0/1 for booleans on SQLite)."""
    *head, truncated, corrupt = values
    return (*head, bool(truncated), bool(corrupt))
