"""The scalar reader keeps each event file's text summaries: where trainers write their plan (issue 18)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tbhub.adapters.crc import crc32c
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.app.scalars import state_from_json, state_to_json
from tbhub.core.scalars import ScalarFileState, resume_offset, run_texts, summarize_file
from tbhub.core.scalars.texts import MAX_TEXTS


def _summarize(path: Path, previous: ScalarFileState | None = None, *, templates: bool = True) -> ScalarFileState:
    st = path.stat()
    with open(path, "rb") as f:
        return summarize_file(f, previous, relpath=f"ds/run/{path.name}", inode=st.st_ino, size=st.st_size,
                              mtime_ns=st.st_mtime_ns, decoder=ProtobufDecoder(templates=templates), crc32c=crc32c)


def test_texts_latest_first_tags_capped_and_cut(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(logdir=str(tmp_path))
    writer.add_text("args", json.dumps({"max_steps": 10}), 0)
    for step in range(5):
        writer.add_scalar("loss", 1.0, step)
    writer.add_text("args", json.dumps({"max_steps": 20}), 5)  # a later text of the same tag wins
    writer.add_text("long", "x" * 100_000, 5)
    for i in range(30):
        writer.add_text(f"note{i:02d}", "n", 6)
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    for templates in (True, False):
        state = _summarize(path, templates=templates)
        assert state.texts is not None and len(state.texts) == MAX_TEXTS
        assert json.loads(state.texts["args/text_summary"]) == {"max_steps": 20}
        assert len(state.texts["long/text_summary"]) == 64 * 1024
        assert state.tags["loss"].count == 5
    assert state_from_json(state_to_json(state)) == state
    assert run_texts("ds/run", [state])["args/text_summary"] == json.dumps({"max_steps": 20})


def test_a_state_stored_before_texts_were_kept_is_read_again(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(logdir=str(tmp_path))
    writer.add_text("args", "{}", 0)
    writer.add_scalar("loss", 1.0, 1)
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    state = _summarize(path)
    old = json.loads(state_to_json(state))
    del old["texts"]  # what a state JSON stored before looked like
    loaded = state_from_json(json.dumps(old))
    assert loaded.texts is None
    st = path.stat()
    assert resume_offset(loaded, inode=st.st_ino, size=st.st_size) == 0
    assert resume_offset(replace(loaded, texts={}), inode=st.st_ino, size=st.st_size) == loaded.offset
    assert _summarize(path, loaded).texts == {"args/text_summary": "{}"}
