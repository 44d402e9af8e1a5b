"""The state store behaves the same on SQLite and on a real PostgreSQL server.

Every test takes ``url``: a fresh SQLite file and a fresh PostgreSQL database (see ``tests/pg.py``), so
each behaviour is proven on both backends. The PostgreSQL server starts once, only when a
``postgresql`` case runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from pg import PostgresServer, fresh_postgres_url, postgres_server  # noqa: F401  (pytest fixtures)
from ports import closed_port
from tbhub.adapters.db.store import (
    HEAD_REVISION,
    DeletionRecord,
    RetentionApplication,
    ScanRecord,
    StateStore,
    open_state,
)
from tbhub.adapters.db.tables import leases, metadata
from tbhub.core.models import CorruptRecord, EventFileScan
from tbhub.core.usage import Snapshot
from tbhub.errors import StateError
from together import run_together

pytestmark = pytest.mark.timeout(120)

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    opened = open_state(url)
    yield opened
    opened.dispose()


def _run_threads(count: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as error:  # re-raised in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


# -- schema ------------------------------------------------------------------------------------------


def test_fresh_database_is_migrated_to_head(url: str) -> None:
    store = open_state(url)
    try:
        assert store.current_revision() == StateStore.head_revision() == HEAD_REVISION
        with store.engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
        assert set(metadata.tables) <= tables
        # Opening again is a no-op and keeps the data.
        store.pin("lora", "a/b", "me")
        again = open_state(url)
        try:
            assert again.upgrade() == HEAD_REVISION
            assert [p.relpath for p in again.pins()] == ["a/b"]
        finally:
            again.dispose()
    finally:
        store.dispose()


def test_postgresql_urls_use_psycopg3(fresh_postgres_url: str) -> None:  # noqa: F811
    plain = fresh_postgres_url.replace("postgresql+psycopg://", "postgresql://")
    store = open_state(plain)
    try:
        assert store.engine.dialect.driver == "psycopg"
        assert store.engine.dialect.paramstyle == "pyformat"
        assert store.current_revision() == HEAD_REVISION
    finally:
        store.dispose()


def test_unreachable_postgresql_is_one_line(postgres_server: PostgresServer) -> None:  # noqa: F811
    missing = postgres_server.url("no_such_database")
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/tbhub"
    for url in (missing, closed):
        with pytest.raises(StateError) as info:
            open_state(url)
        assert "\n" not in str(info.value) and "cannot reach state database" in str(info.value)


_OPEN_WHEN_TOLD = """
import sys
from tbhub.adapters.db.store import open_state
print("ready", flush=True)
sys.stdin.readline()
try:
    open_state(sys.argv[1]).dispose()
    print("ok", flush=True)
except Exception as error:
    print(f"{type(error).__name__}: {error}", flush=True)
"""


def test_servers_starting_together_on_a_fresh_postgresql_migrate_once(fresh_postgres_url: str) -> None:  # noqa: F811
    """Four server processes open a fresh shared database at the same moment: all start, one migrates."""
    outcomes = [out.strip() for _, out, _ in run_together(_OPEN_WHEN_TOLD, [fresh_postgres_url], 4, timeout=60)]
    assert outcomes == ["ok"] * 4
    store = open_state(fresh_postgres_url, migrate=False)
    try:
        assert store.current_revision() == HEAD_REVISION
    finally:
        store.dispose()


# -- the scan index ----------------------------------------------------------------------------------


def test_index_round_trip_with_unsigned_inodes(store: StateStore) -> None:
    a = EventFileScan("ds/r/events.out.tfevents.1", 2**64 - 5, 100, 123, 7, 90, 0, 6, 1.5, 9.5, True,
                      CorruptRecord(90, "bad header crc"), True)
    b = EventFileScan("ds/r/events.out.tfevents.2", 11, 50, 456, 3, 50)
    c = EventFileScan("ds/r/events.out.tfevents.3", 2**63, 2**40, 1_700_000_000_123_456_789, 1, 2**40, -1, 2**62,
                      1_700_000_000.123456, 1_700_000_001.654321)
    d = EventFileScan("ds/r/events.out.tfevents.4", 2**63 - 1, 0, 0, 0, 0)
    store.save("lora", [a, b, c, d], [])
    store.save("router", [b], [])
    loaded = store.load("lora")  # the exec_driver_sql fast path, in the dialect's paramstyle
    assert dict(loaded) == {s.relpath: s for s in (a, b, c, d)}
    assert loaded[c.relpath].inode == 2**63 and loaded[a.relpath].inode == 2**64 - 5
    assert type(loaded[a.relpath].truncated) is bool and type(loaded[a.relpath].verified) is bool
    assert dict(store.load("router")) == {b.relpath: b}
    assert dict(store.load("nobody")) == {}


def test_save_replaces_and_removes(store: StateStore) -> None:
    a = EventFileScan("ds/r/a", 1, 10, 1, 1, 10)
    b = EventFileScan("ds/r/b", 2, 20, 2, 2, 20)
    store.save("lora", [a, b], [])
    store.save("router", [a], [])
    grown = EventFileScan(b.relpath, 2, 80, 789, 5, 80)
    store.save("lora", [grown], [a.relpath, "never/existed"])
    assert dict(store.load("lora")) == {b.relpath: grown}
    assert dict(store.load("router")) == {a.relpath: a}  # removals are per endpoint
    store.save("lora", [], [b.relpath])
    assert dict(store.load("lora")) == {}
    # More removals than one IN list holds.
    many = [EventFileScan(f"ds/r/{i}", i, 1, 1, 1, 1) for i in range(1200)]
    store.save("big", many, [])
    assert len(store.load("big")) == 1200
    store.save("big", many[:3], [s.relpath for s in many])
    assert set(store.load("big")) == {s.relpath for s in many[:3]}
    store.forget_endpoint("big")
    assert dict(store.load("big")) == {}
    assert dict(store.load("router")) == {a.relpath: a}


def test_index_cache_follows_changes_by_other_servers(url: str) -> None:
    mine, theirs = open_state(url), open_state(url)
    try:
        a = EventFileScan("ds/r/a", 1, 10, 1, 1, 10)
        b = EventFileScan("ds/r/b", 2, 10, 1, 1, 10)
        assert dict(mine.load("lora")) == {}
        mine.save("lora", [a, b], [])
        first = mine.load("lora")
        assert mine.load("lora") is first  # unchanged: served from memory
        theirs.save("lora", [], [b.relpath])
        assert dict(mine.load("lora")) == {a.relpath: a}
        theirs.save("router", [b], [])  # another endpoint's change keeps this one's cache
        kept = mine.load("lora")
        assert mine.load("lora") is kept
        theirs.forget_endpoint("lora")
        assert dict(mine.load("lora")) == {}
        theirs.save("lora", [b], [])  # the generation starts over: still a change
        assert dict(mine.load("lora")) == {b.relpath: b}
    finally:
        mine.dispose()
        theirs.dispose()


def test_concurrent_saves_of_one_endpoint_queue_up(url: str) -> None:
    """Two servers rescanning the same endpoint save the same files at once: no duplicate-key error."""
    stores = [open_state(url) for _ in range(4)]
    try:
        barrier = threading.Barrier(len(stores))

        def rescan(i: int) -> None:
            for n in range(15):
                scans = [EventFileScan(f"ds/r/{f}", f, 10 + n, n, 1, 10 + n) for f in range(20)]
                barrier.wait(10)
                stores[i].save("lora", scans, [])

        _run_threads(len(stores), rescan)
        final = stores[0].load("lora")
        assert len(final) == 20 and {s.size for s in final.values()} == {24}
    finally:
        for s in stores:
            s.dispose()


def test_scan_history_keeps_last_100(store: StateStore) -> None:
    for i in range(105):
        store.record_scan(ScanRecord("lora", float(i), 0.1, 3, 1, 10, None))
    store.record_scan(ScanRecord("router", 7.0, 0.5, 1, 0, 0, "boom"))
    last = store.last_scan("lora")
    assert last == ScanRecord("lora", 104.0, 0.1, 3, 1, 10, None)
    assert store.last_scan("router") == ScanRecord("router", 7.0, 0.5, 1, 0, 0, "boom")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from scan_runs where endpoint = 'lora'").scalar() == 100
        assert conn.exec_driver_sql("select min(finished_at) from scan_runs where endpoint = 'lora'").scalar() == 5.0
    assert store.last_scan("nobody") is None


# -- deletions, pins -----------------------------------------------------------------------------------


def test_deletion_history_newest_first(store: StateStore) -> None:
    records = [
        DeletionRecord(1000.0 + i, "alice", "clean", "lora", "ds", f"run{i}", f"ds/run{i}", 2**40 + i, i,
                       None if i % 2 else f"s3://bucket/ds/run{i}.tar.zst", "deleted" if i != 3 else "failed",
                       "Permission denied" if i == 3 else None)
        for i in range(5)
    ]
    for r in records:
        store.record_deletion(r)
    assert store.deletions() == records[::-1]
    assert store.deletions(limit=2) == records[:2:-1]


def test_pins(store: StateStore) -> None:
    assert store.pin("lora", "ds/b", "alice") is True
    assert store.pin("lora", "ds/a", "bob") is True
    assert store.pin("lora", "ds/a", "carol") is False  # pinned already: the first pin stays
    assert store.pin("router", "ds/a", "carol") is True
    assert [(p.endpoint, p.relpath, p.pinned_by) for p in store.pins()] == [
        ("lora", "ds/a", "bob"),
        ("lora", "ds/b", "alice"),
        ("router", "ds/a", "carol"),
    ]
    assert store.unpin("lora", "ds/a") is True
    assert store.unpin("lora", "ds/a") is False
    assert store.pin("lora", "ds/a", "dave") is True  # the store still works after the IntegrityError
    assert len(store.pins()) == 3


# -- leases ----------------------------------------------------------------------------------------------


def _lease_row(store: StateStore, name: str) -> tuple[str, float] | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)).first()
    return None if row is None else (row[0], row[1])


def test_lease_take_over_renew_release(store: StateStore) -> None:
    assert store.acquire_lease("retention", "a", ttl_s=-1.0) is True  # taken, but expired at once
    assert store.acquire_lease("retention", "b", ttl_s=60.0) is True  # an expired lease is taken over
    assert store.acquire_lease("retention", "a", ttl_s=60.0) is False
    first = _lease_row(store, "retention")
    assert first is not None and first[0] == "b"
    time.sleep(0.01)
    assert store.acquire_lease("retention", "b", ttl_s=60.0) is True  # the holder renews
    renewed = _lease_row(store, "retention")
    assert renewed is not None and renewed[0] == "b" and renewed[1] > first[1]
    assert store.acquire_lease("alerts", "a", ttl_s=60.0) is True  # leases are independent
    store.release_lease("retention", "a")  # not the holder: nothing happens
    assert store.acquire_lease("retention", "a", ttl_s=60.0) is False
    store.release_lease("retention", "b")
    assert _lease_row(store, "retention") is None
    assert store.acquire_lease("retention", "a", ttl_s=60.0) is True
    assert _lease_row(store, "alerts") is not None


@pytest.mark.parametrize("expired", [False, True], ids=["fresh", "expired"])
def test_concurrent_acquire_exactly_one_wins(url: str, expired: bool) -> None:
    """Two servers (own engines) race for the same lease: for each of many names exactly one wins."""
    names = [f"job{i}" for i in range(20)]
    stores = [open_state(url) for _ in range(2)]
    try:
        if expired:
            for name in names:
                assert stores[0].acquire_lease(name, "old", ttl_s=-1.0)
        barrier = threading.Barrier(2)
        won: list[list[bool]] = [[], []]

        def race(i: int) -> None:
            for name in names:
                barrier.wait(10)
                won[i].append(stores[i].acquire_lease(name, f"holder{i}", ttl_s=60.0))

        _run_threads(2, race)
        for n, name in enumerate(names):
            assert won[0][n] != won[1][n], f"{name}: {won[0][n]=} {won[1][n]=}"
            row = _lease_row(stores[0], name)
            assert row is not None and row[0] == f"holder{0 if won[0][n] else 1}"
    finally:
        for s in stores:
            s.dispose()


def test_lease_is_never_held_twice_under_contention(url: str) -> None:
    """8 "servers" trying to acquire/release for 2 s (at most 50 wins each): at no moment do two believe
    they hold the lease."""
    threads, rounds = 8, 50
    stores = [open_state(url) for _ in range(threads)]
    guard = threading.Lock()
    holding = 0
    overlaps: list[str] = []
    wins = [0] * threads
    try:
        barrier = threading.Barrier(threads)

        def worker(i: int) -> None:
            nonlocal holding
            barrier.wait(10)
            deadline = time.monotonic() + 2.0
            while wins[i] < rounds and time.monotonic() < deadline:
                if not stores[i].acquire_lease("retention", f"server{i}", ttl_s=60.0):
                    time.sleep(0.0005)
                    continue
                with guard:
                    holding += 1
                    if holding != 1:
                        overlaps.append(f"server{i} acquired while {holding - 1} other(s) held the lease")
                wins[i] += 1
                time.sleep(0.0005)  # "work" while holding
                with guard:
                    holding -= 1
                stores[i].release_lease("retention", f"server{i}")
                time.sleep(0.001)  # a server does not take the lease again at once: the others get a turn

        _run_threads(threads, worker)
    finally:
        for s in stores:
            s.dispose()
    assert overlaps == []
    assert sum(wins) > 0
    assert sum(1 for w in wins if w) >= 2, f"no contention happened: {wins}"


# -- retention, usage ------------------------------------------------------------------------------------


def test_retention_applications(store: StateStore) -> None:
    ids = []
    for i in range(4):
        ids.append(store.record_retention(RetentionApplication(
            1000.0 + i, "schedule" if i % 2 else "cli", "alice", i, 0, 2**40 * i,
            "over quota" if i == 2 else None, f'{{"runs": [{i}]}}')))
    assert all(isinstance(i, int) and i > 0 for i in ids) and ids == sorted(set(ids))
    history = store.retention_history()
    assert [h.id for h in history] == ids[::-1]
    assert history[1] == RetentionApplication(1002.0, "cli", "alice", 2, 0, 2**41, "over quota", '{"runs": [2]}',
                                              ids[2])
    assert [h.id for h in store.retention_history(limit=2)] == ids[:1:-1]


def test_usage_snapshots(store: StateStore) -> None:
    store.record_usage([])
    old = [Snapshot(100.0, "lora", "ds1", 2**41, 3, 10), Snapshot(100.0, "lora", "ds2", 5, 1, 1)]
    new = [Snapshot(200.0, "lora", "ds1", 2**42, 4, 12)]
    store.record_usage(new)
    store.record_usage(old)
    assert sorted(store.usage_history()[:2], key=lambda r: r.dataset) == old
    assert store.usage_history()[2:] == new
    assert store.usage_history(since=200.0) == new
    assert store.usage_history(since=200.5) == []


# -- the scalar reader's index, run states ---------------------------------------------------------------


def test_scalar_states(store: StateStore) -> None:
    store.save_scalar_states("lora", [("a", 2**64 - 1, 10, 5, '{"x": 1}'), ("b", 7, 20, 6, "{}")], [])
    store.save_scalar_states("router", [("a", 1, 1, 1, "{}")], [])
    assert store.load_scalar_states("lora") == {"a": (2**64 - 1, 10, 5, '{"x": 1}'), "b": (7, 20, 6, "{}")}
    store.save_scalar_states("lora", [("a", 2**63, 11, 6, '{"x": 2}')], ["b"])
    assert store.load_scalar_states("lora") == {"a": (2**63, 11, 6, '{"x": 2}')}
    assert store.load_scalar_states("router") == {"a": (1, 1, 1, "{}")}
    assert store.load_scalar_states("nobody") == {}


def test_scalar_states_of_some_files(store: StateStore) -> None:
    """A selection's rows only, across the query's chunks, undecodable names included; unknown names skipped."""
    names = [f"ds/r{i:04d}/events" for i in range(1_200)] + ["ds/caf\udce9/events"]
    store.save_scalar_states("lora", [(n, i, i, i, f'{{"i": {i}}}') for i, n in enumerate(names)], [])
    store.save_scalar_states("router", [(names[0], 9, 9, 9, "{}")], [])
    wanted = [*names[::2], names[-1], "ds/never-seen/events"]
    got = store.load_scalar_states("lora", wanted)
    assert got == {n: (i, i, i, f'{{"i": {i}}}') for i, n in enumerate(names) if n in wanted}
    assert len(got) == 601 and store.load_scalar_states("lora", []) == {}
    assert len(store.load_scalar_states("lora")) == 1_201


def test_run_states(store: StateStore) -> None:
    store.save_run_states("lora", [])
    store.save_run_states("lora", [("ds/a", "running", "k1", ""), ("ds/b", "idle", "k2", "no events")])
    store.save_run_states("router", [("ds/a", "finished", "k3", "")])
    store.save_run_states("lora", [("ds/a", "stalled", "k4", "no event for 1h")])
    assert store.load_run_states("lora") == {"ds/a": ("stalled", "k4"), "ds/b": ("idle", "k2")}
    assert store.load_run_states("router") == {"ds/a": ("finished", "k3")}


# -- alerts, deliveries, channels ------------------------------------------------------------------------


def _alert(store: StateStore, key: str, status: str = "stalled", at: float = 1000.0) -> int | None:
    return store.insert_alert(key=key, endpoint="lora", dataset="ds", run=f"run-{key}", status=status, at=at,
                              message=f"{key} is {status}", details='{"a": 1}', url=None)


def test_alerts_are_unique_by_key(store: StateStore) -> None:
    first = _alert(store, "k1")
    assert isinstance(first, int)
    assert _alert(store, "k1", status="nan") is None  # never alert twice
    second = _alert(store, "k2", status="nan")
    assert isinstance(second, int) and second > first
    rows = store.alerts()
    assert [(r.id, r.key, r.status) for r in rows] == [(second, "k2", "nan"), (first, "k1", "stalled")]
    assert store.alert(first) == rows[1]
    assert rows[1].message == "k1 is stalled" and rows[1].url is None and rows[1].details == '{"a": 1}'
    assert store.alert(10**6) is None
    assert [r.id for r in store.alerts(limit=1)] == [second]


def test_pending_deliveries_and_channels(store: StateStore) -> None:
    a = _alert(store, "a", "stalled", at=100.0)
    b = _alert(store, "b", "nan", at=200.0)
    c = _alert(store, "c", "finished", at=300.0)
    old = _alert(store, "old", "nan", at=10.0)
    assert a and b and c and old
    pending = store.pending_deliveries("slack", ["stalled", "nan"], since=50.0)
    assert [(p.alert.id, p.attempts, p.next_at, p.last_error) for p in pending] == [(a, 0, None, None),
                                                                                     (b, 0, None, None)]
    assert pending[0].alert == store.alert(a)

    store.record_delivery(a, "slack", 1, "retry", error="HTTP 500", next_at=150.0)
    store.record_delivery(a, "slack", 2, "retry", error="HTTP 429", next_at=170.0)
    store.record_delivery(b, "slack", 1, "sent")
    store.record_delivery(c, "email", 1, "expired")
    pending = store.pending_deliveries("slack", ["stalled", "nan", "finished"], since=0.0)
    assert [(p.alert.id, p.attempts, p.next_at, p.last_error) for p in pending] == [
        (a, 2, 170.0, "HTTP 429"),
        (c, 0, None, None),
        (old, 0, None, None),
    ]
    email = store.pending_deliveries("email", ["stalled", "nan", "finished"], since=0.0)
    assert [p.alert.id for p in email] == [a, b, old]  # c expired for email; slack's attempts don't count
    assert all(p.attempts == 0 for p in email)
    store.record_delivery(a, "slack", 3, "sent")
    assert [p.alert.id for p in store.pending_deliveries("slack", ["stalled"], since=0.0)] == []
    assert [d["outcome"] for d in store.deliveries(a)] == ["retry", "retry", "sent"]
    assert len(store.deliveries()) == 5

    assert store.channel_states() == {}
    store.set_channel("slack", disabled=True, reason="HTTP 404")
    store.set_channel("email", disabled=False, reason=None)
    assert store.channel_states() == {"slack": (True, "HTTP 404"), "email": (False, None)}
    store.set_channel("slack", disabled=False, reason=None)
    assert store.channel_states() == {"slack": (False, None), "email": (False, None)}
