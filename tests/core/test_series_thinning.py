"""core.series: a series of any length read in chunks keeps at most N evenly spaced points, the first and
the last among them; an event file's series agree with TensorBoard's own reader."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tensorboard.backend.event_processing import event_accumulator as ea

from eventfiles import file_version_event, scalar_event, write_events
from tbhub.adapters.crc import crc32c
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.core.series import FileSeries, SeriesPoints, Thinner, merge_series, read_file_series, thin


@pytest.mark.parametrize("seed", range(40))
def test_bounded_evenly_spaced_first_and_last_kept(seed: int) -> None:
    rng = random.Random(seed)
    k, n = rng.randint(2, 50), rng.randint(1, 5000)
    thinner = Thinner(k)
    i = 0
    while i < n:
        chunk = list(range(i, min(n, i + rng.randint(1, 300))))
        thinner.extend(chunk, [float(s) for s in chunk], [s * 0.5 for s in chunk])
        i += len(chunk)
        assert len(thinner.steps) < 2 * k  # bounded memory while reading
    got = thinner.result()
    assert got.total == n and len(got) == min(n, k)
    assert got.steps[0] == 0 and got.steps[-1] == n - 1
    assert list(got.steps) == sorted(set(got.steps)) and got.values == tuple(s * 0.5 for s in got.steps)
    if n > k:  # evenly spaced: no gap more than twice the even one (plus rounding)
        gaps = [b - a for a, b in zip(got.steps, got.steps[1:], strict=False)]
        assert max(gaps) <= 2 * (n - 1) / (k - 1) + 2


def test_thin_and_merge() -> None:
    a = SeriesPoints((0, 2, 4), (0.0, 2.0, 4.0), (1.0, 2.0, 3.0), 3)
    b = SeriesPoints((1, 3), (1.0, 3.0), (9.0, 8.0), 2)
    merged = merge_series([a, b], 10)
    assert merged.steps == (0, 1, 2, 3, 4) and merged.values == (1.0, 9.0, 2.0, 8.0, 3.0) and merged.total == 5
    assert thin(merged, 2).steps == (0, 4)


def test_a_file_read_as_tensorboard_reads_it(tmp_path: Path) -> None:
    path = write_events(
        tmp_path / "run" / "events.out.tfevents.1.h",
        [file_version_event(), *(scalar_event(s, 1.0 / (s + 1), t) for s in range(3000) for t in ("loss", "acc"))],
    )
    with open(path, "rb") as fh:
        series = read_file_series(fh, size=path.stat().st_size, decoder=ProtobufDecoder(), crc32c=crc32c,
                                  keep=lambda tag: None if tag == "acc" else f"train/{tag}", max_points=1000).series()
    assert list(series) == ["train/loss"]
    loss = series["train/loss"]
    acc = ea.EventAccumulator(str(path.parent), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    truth = {e.step: e.value for e in acc.Scalars("loss")}
    assert loss.total == 3000 and len(loss) == 1000 and loss.steps[-1] == 2999
    assert all(truth[s] == v for s, v in zip(loss.steps, loss.values, strict=True))


def test_a_growing_file_is_read_from_where_reading_stopped(tmp_path: Path) -> None:
    """A live run: the file grows between two reads (the second read starts mid-record too); the resumed
    series equal a fresh read of the whole file, and only the new bytes are read."""
    events = [file_version_event(), *(scalar_event(s, 1.0 / (s + 1), "loss") for s in range(5000))]
    path = write_events(tmp_path / "events.out.tfevents.1.h", events)
    whole = path.read_bytes()
    cut = len(whole) // 3 + 5  # inside a record: a job still writing it
    path.write_bytes(whole[:cut])
    decoder = ProtobufDecoder()

    def read(previous: FileSeries | None, size: int) -> FileSeries:
        with open(path, "rb") as fh:
            return read_file_series(fh, previous, inode=7, size=size, decoder=decoder, crc32c=crc32c,
                                    keep=lambda tag: tag, max_points=300)

    first = read(None, cut)
    assert first.walk.truncated and first.walk.offset < cut
    path.write_bytes(whole)
    resumed = read(first, len(whole))
    assert first.series()["loss"].total < 5000  # the first state was not changed by the resume
    fresh = read(None, len(whole))
    assert resumed.series() == fresh.series() and resumed.series()["loss"].total == 5000
    assert resumed.walk.records == fresh.walk.records
    replaced = read(FileSeries(8, 10, first.walk, {}, {}, {}), len(whole))  # another inode: from byte 0
    assert replaced.series() == fresh.series()
