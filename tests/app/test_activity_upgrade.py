"""Scalar states stored before activity segments were kept still load, and their files are read once
more from the start, so every run gets a busy time without a manual rebuild."""

from __future__ import annotations

import json
from pathlib import Path

from eventfiles import file_version_event, scalar_event, write_events
from tbhub.adapters.crc import crc32c
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.app.scalars import stale_files, state_from_json, state_to_json
from tbhub.core.models import FileEntry, RunSummary
from tbhub.core.scalars import ScalarFileState, bytes_to_parse, summarize_file
from tbhub.core.scalars.activity import ACTIVITY_GAP
from tbhub.core.scanner import scan_event_file


def test_an_old_state_is_loaded_and_its_file_read_again(tmp_path: Path) -> None:
    path = tmp_path / "ds" / "r" / "events.out.tfevents.1.host"
    base = 1_800_000_000.0
    write_events(path, [file_version_event(base)] + [scalar_event(s, 1.0, wall_time=base + s) for s in range(1, 50)])
    st = path.stat()
    entry = FileEntry("ds/r/events.out.tfevents.1.host", st.st_ino, st.st_size, st.st_mtime_ns)

    def summarize(previous: ScalarFileState | None = None) -> ScalarFileState:
        with open(path, "rb") as f:
            return summarize_file(f, previous, relpath=entry.relpath, inode=entry.inode, size=entry.size,
                                  mtime_ns=entry.mtime_ns, decoder=ProtobufDecoder(), crc32c=crc32c)

    fresh = summarize()
    assert fresh.activity == ((base, base + 49),) and fresh.activity_gap == ACTIVITY_GAP
    old = json.loads(state_to_json(fresh))
    del old["activity"], old["activity_gap"]  # as a state stored before this version
    old_text = json.dumps(old)
    loaded = state_from_json(old_text)
    assert loaded.activity == () and loaded.activity_gap == 0.0 and loaded.offset == entry.size
    with open(path, "rb", buffering=0) as f:
        scan = scan_event_file(f, entry, crc32c=crc32c)
    run = RunSummary("e", "ds", "r", "ds/r", (scan,))
    known = {entry.relpath: (entry.inode, entry.size, entry.mtime_ns, old_text)}
    assert [e.relpath for e, _ in stale_files(known, [run])] == [entry.relpath]  # unchanged, yet stale
    assert bytes_to_parse(entry, loaded) == entry.size  # read from byte 0
    again = summarize(loaded)
    assert again.activity == fresh.activity and again.records == fresh.records
    current = {entry.relpath: (entry.inode, entry.size, entry.mtime_ns, state_to_json(again))}
    assert stale_files(current, [run]) == []  # and then never again
