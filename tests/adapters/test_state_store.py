from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tbhub.adapters.db.store import HEAD_REVISION, DeletionRecord, ScanRecord, StateStore, open_state
from tbhub.core.models import CorruptRecord, EventFileScan
from tbhub.errors import StateError


def test_fresh_sqlite_is_migrated_to_head_in_wal_mode(tmp_path: Path) -> None:
    store = open_state(f"sqlite:///{tmp_path / 'deep' / 'state.db'}")
    try:
        assert store.current_revision() == StateStore.head_revision() == HEAD_REVISION
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.dispose()


def test_index_round_trip_update_and_remove(tmp_path: Path) -> None:
    store = open_state(f"sqlite:///{tmp_path / 's.db'}")
    a = EventFileScan("ds/r/events.out.tfevents.1", 2**64 - 5, 100, 123, 7, 90, 0, 6, 1.5, 9.5, True,
                      CorruptRecord(90, "bad header crc"), True)
    b = EventFileScan("ds/r/events.out.tfevents.2", 11, 50, 456, 3, 50)
    store.save("lora", [a, b], [])
    store.save("router", [b], [])
    loaded = store.load("lora")
    assert loaded[b.relpath] == b
    assert loaded[a.relpath] == a  # unsigned 64-bit inode survives the signed BIGINT column
    grown = EventFileScan(b.relpath, 11, 80, 789, 5, 80)
    store.save("lora", [grown], [a.relpath])
    assert dict(store.load("lora")) == {b.relpath: grown}
    assert dict(store.load("router")) == {b.relpath: b}
    store.dispose()


def test_scan_history_keeps_last(tmp_path: Path) -> None:
    store = open_state(f"sqlite:///{tmp_path / 's.db'}")
    for i in range(105):
        store.record_scan(ScanRecord("lora", float(i), 0.1, 3, 1, 10, None))
    last = store.last_scan("lora")
    assert last is not None and last.finished_at == 104.0
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from scan_runs").scalar() == 100
    assert store.last_scan("router") is None
    store.dispose()


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://x/y"])
def test_bad_database_url_is_one_line(url: str) -> None:
    with pytest.raises(StateError) as info:
        open_state(url)
    assert "\n" not in str(info.value)


def test_index_kept_in_memory_until_another_process_changes_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    mine, theirs = open_state(url), open_state(url)
    a = EventFileScan("ds/r/events.out.tfevents.1", 1, 10, 1, 1, 10)
    b = EventFileScan("ds/r/events.out.tfevents.2", 2, 10, 1, 1, 10)
    mine.save("lora", [a, b], [])
    first = mine.load("lora")
    assert mine.load("lora") is first  # unchanged: served from memory
    theirs.save("lora", [], [b.relpath])  # another process drops a file
    assert dict(mine.load("lora")) == {a.relpath: a}  # the generation moved: reloaded, no ghost row
    mine.dispose()
    theirs.dispose()


def test_processes_starting_together_on_a_fresh_sqlite_file_all_migrate(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = f"from tbhub.adapters.db.store import open_state; print(open_state({url!r}).current_revision())"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in results]
    assert {out.strip() for out, _ in results} == {HEAD_REVISION}


def test_connections_opening_a_new_sqlite_file_together_all_switch_it_to_wal(tmp_path: Path) -> None:
    """Switching to WAL takes an exclusive lock that SQLite tries once, without the busy handler:
    connections opening a new file at the same moment used to fail with "database is locked"
    (about 1 in 100 rounds of 8 here); they retry now."""
    import sqlite3
    import threading

    from tbhub.adapters.db.store import _sqlite_pragmas

    errors: list[str] = []
    modes: set[str] = set()
    for round_ in range(100):
        path = tmp_path / f"state-{round_}.db"
        barrier = threading.Barrier(8)

        def connect(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            connection = sqlite3.connect(path, check_same_thread=False)
            try:
                barrier.wait()
                _sqlite_pragmas(connection, None)  # type: ignore[arg-type]
                modes.add(connection.execute("PRAGMA journal_mode").fetchone()[0])
            except sqlite3.OperationalError as error:
                errors.append(str(error))
            finally:
                connection.close()

        threads = [threading.Thread(target=connect) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert modes == {"wal"}


#: A relpath whose run folder name is not UTF-8 (as ``os.fsdecode`` gives it), with a backslash.
UNDECODABLE = os.fsdecode(b"ds/bad-\xff\xfe\\x41/events.out.tfevents.1")


@pytest.mark.parametrize("relpath", [UNDECODABLE, "ds/plain\\xff literally/e.tfevents", "/lead/e.tfevents", "ünï/r/e"])
def test_any_relpath_round_trips_through_the_index_losslessly(tmp_path: Path, relpath: str) -> None:
    store = open_state(f"sqlite:///{tmp_path / 's.db'}")
    try:
        scan = EventFileScan(relpath, 1, 10, 2, 3, 10)
        other = EventFileScan("ds/good/e.tfevents", 2, 10, 2, 3, 10)
        store.save("lora", [scan, other], [])
        store._index_cache.clear()
        assert dict(store.load("lora")) == {relpath: scan, other.relpath: other}
        store.save("lora", [], [relpath])
        store._index_cache.clear()
        assert dict(store.load("lora")) == {other.relpath: other}
        # The other relpath-keyed tables take it too: scalar states, run states, pins, history.
        store.save_scalar_states("lora", [(relpath, 1, 10, 2, "{}")], [])
        assert list(store.load_scalar_states("lora")) == [relpath]
        store.save_run_states("lora", [(relpath, "finished", f"k:{relpath}", f"why {relpath}")])
        assert store.load_run_states("lora") == {relpath: ("finished", f"k:{relpath}")}
        assert store.pin("lora", relpath, "ada") and [p.relpath for p in store.pins()] == [relpath]
        assert store.unpin("lora", relpath)
        store.record_deletion(DeletionRecord(1.0, "ada", "clean", "lora", "ds", relpath, relpath, 10, 1, None,
                                             "failed", f"cannot delete {relpath}"))
        (deletion,) = store.deletions()
        assert deletion.relpath == deletion.run == relpath and deletion.error is not None
    finally:
        store.dispose()


def test_the_state_database_and_its_folder_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    store = open_state(f"sqlite:///{folder / 'tbhub.db'}")
    try:
        store.save("lora", [EventFileScan("ds/r/e.tfevents", 1, 10, 2, 3, 10)], [])  # the WAL files exist now
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        files = [p for p in folder.iterdir() if p.name.startswith("tbhub.db")]
        assert {p.name for p in files} >= {"tbhub.db", "tbhub.db-wal", "tbhub.db-shm"}
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        store.dispose()
