"""A run's last step is the highest step it logged, on files the writers themselves write.

tensorboardX (and torch's SummaryWriter) write ``add_text`` records when called; training scripts call
it after the loop at step 0, so the last record's step is 0 while the curves end at the last
training step (issue 18).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tbhub.adapters.crc import crc32c
from tbhub.core.models import EventFileScan, FileEntry, RunSummary
from tbhub.core.scanner import scan_event_file


def _entry(path: Path, root: Path) -> FileEntry:
    st = path.stat()
    return FileEntry(path.relative_to(root).as_posix(), st.st_ino, st.st_size, st.st_mtime_ns)


def _scan(path: Path, root: Path, previous: EventFileScan | None = None, *, verify: bool = False) -> EventFileScan:
    with open(path, "rb", buffering=0) as f:
        return scan_event_file(f, _entry(path, root), previous, verify=verify, crc32c=crc32c)


def _only_file(folder: Path) -> Path:
    (path,) = folder.glob("events.out.tfevents.*")
    return path


@pytest.fixture(scope="module")
def tbx_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 steps of three scalars, then the usual post-training add_text at step 0."""
    from tensorboardX import SummaryWriter

    root = tmp_path_factory.mktemp("tbx")
    writer = SummaryWriter(logdir=str(root / "ds" / "run"))
    for step in range(800):
        writer.add_scalar("train/loss", 1.0 / (step + 1), step)
        writer.add_scalar("train/lr", 0.001, step)
        if step % 50 == 0:
            writer.add_scalar("eval/loss", 2.0 / (step + 1), step)
    writer.add_text("notes", "trained for 800 steps", 0)
    writer.add_text("config", '{"lr": 0.001}', 0)
    writer.close()
    return root


@pytest.mark.parametrize("verify", [False, True])
def test_tensorboardx_add_text_after_training_keeps_the_last_training_step(tbx_run: Path, verify: bool) -> None:
    path = _only_file(tbx_run / "ds" / "run")
    scan = _scan(path, tbx_run, verify=verify)
    assert scan.records > 1600
    assert (scan.first_step, scan.last_step) == (0, 799)
    run = RunSummary("e", "ds", "run", "ds/run", (scan,))
    assert run.last_step == 799 and run.counts()["last_step"] == 799


def test_a_resumed_scan_keeps_the_highest_step(tbx_run: Path, tmp_path: Path) -> None:
    """Scanned while training, then again after the trailing text: the maximum carries over."""
    source = _only_file(tbx_run / "ds" / "run")
    data = source.read_bytes()
    target = tmp_path / "ds" / "run" / source.name
    target.parent.mkdir(parents=True)
    # Cut just after the last training record: everything but the two text records.
    whole = _scan(source, tbx_run)
    target.write_bytes(data[: len(data) // 2])
    first = _scan(target, tmp_path)
    assert first.last_step is not None and 0 < first.last_step < 799
    target.write_bytes(data)
    os.utime(target, ns=(1, 2))
    second = _scan(target, tmp_path, first)
    assert second.records == whole.records and second.last_step == 799


def test_torch_summary_writer_text_after_training(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    folder = tmp_path / "ds" / "torch"
    writer = SummaryWriter(log_dir=str(folder))
    for step in range(1, 301):
        writer.add_scalar("loss", 1.0 / step, step)
    writer.add_text("summary", "done", 0)
    writer.close()
    scan = _scan(_only_file(folder), tmp_path)
    assert (scan.first_step, scan.last_step) == (1, 300)
