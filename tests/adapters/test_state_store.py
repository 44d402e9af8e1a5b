from __future__ import annotations

from pathlib import Path

import pytest

from tbhub.adapters.db.store import HEAD_REVISION, ScanRecord, StateStore, open_state
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
