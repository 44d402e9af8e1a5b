"""Migration 0011: scans stored when last_step was the last record's step are read again once (issue 18)."""

from __future__ import annotations

from pathlib import Path

from alembic import command

from tbhub.adapters.crc import crc32c
from tbhub.adapters.db.index import IndexStore
from tbhub.adapters.db.store import _alembic_config, open_state
from tbhub.core.models import EventFileScan, FileEntry
from tbhub.core.scanner import can_reuse, scan_event_file


def test_an_old_scan_of_an_unchanged_file_is_read_again(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(logdir=str(tmp_path / "logs" / "ds" / "run"))
    for step in range(100):
        writer.add_scalar("loss", 1.0 / (step + 1), step)
    writer.add_text("notes", "done", 0)  # the last record: step 0
    writer.close()
    (path,) = (tmp_path / "logs" / "ds" / "run").glob("events.out.tfevents.*")
    st = path.stat()
    entry = FileEntry(path.relative_to(tmp_path / "logs").as_posix(), st.st_ino, st.st_size, st.st_mtime_ns)
    with open(path, "rb") as f:
        now = scan_event_file(f, entry, crc32c=crc32c)
    # What the scanner of 0010's time stored: the last record's step.
    old = EventFileScan(entry.relpath, entry.inode, entry.size, entry.mtime_ns, now.records, now.scanned_offset,
                        now.first_step, 0, now.first_wall_time, now.last_wall_time)

    url = f"sqlite:///{tmp_path / 'state.db'}"
    state = open_state(url, migrate=False)
    cfg = _alembic_config()
    with state.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0010")
    IndexStore(state.engine).save("e", [old], [])
    stored = IndexStore(state.engine).load("e")[entry.relpath]
    assert stored.last_step == 0 and can_reuse(stored, entry, verify=False)  # would stay 0 forever
    state.dispose()

    state = open_state(url)  # upgrades to head
    try:
        stored = IndexStore(state.engine).load("e")[entry.relpath]
        assert not can_reuse(stored, entry, verify=False)
        with open(path, "rb") as f:
            rescanned = scan_event_file(f, entry, stored, crc32c=crc32c)
        assert rescanned.last_step == 99 and rescanned.records == now.records
    finally:
        state.dispose()
