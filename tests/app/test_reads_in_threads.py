"""The hub answers in threads, so several requests may read event files at once through one cache: the
curves' series cache (``app.series``, issue 17) and the targets' cache (``app.targets``, issue 18). Each
read borrows a decoder of its own (``app.decoders``: a decoder keeps a batch's working state on its
templates), and what reads run at once return equals what reading one run after another returns."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventfiles import file_version_event, scalar_event, write_events
from tbhub.app.hub import Hub
from tbhub.app.series import SeriesCache, run_series
from tbhub.app.services import Services
from tbhub.app.targets import TargetCache, TargetSearch
from tbhub.config import AuthConfig, Config, EndpointConfig, StateConfig
from tbhub.core.compare import parse_target

RUNS = 6
STEPS = 20_000


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """Runs of ``loss`` every step, falling at a rate of their own, and ``eval/loss`` every 10 steps."""
    root = tmp_path / "logs"
    for i in range(RUNS):
        events = [file_version_event(1.7e9)]
        for s in range(STEPS):
            events.append(scalar_event(s, (i + 1) / (1 + 0.01 * s), "loss", wall_time=1.7e9 + s))
            if s % 10 == i % 10:
                events.append(scalar_event(s, float(i), "eval/loss", wall_time=1.7e9 + s))
        write_events(root / f"ds/run{i}" / "events.out.tfevents.1.h", events)
    services = Services(Config(auth=AuthConfig(mode="none"), state=StateConfig(dir=tmp_path / "state"),
                               endpoints={"lora": EndpointConfig(logdir=str(root))}))
    hub = Hub(services, None)
    hub.refresh("lora")
    yield hub
    services.close()


def at_once_equals_one_by_one(new_cache: Callable[[], Any], read: Callable[[Any, int], Any]) -> list[Any]:
    """``read(cache, i)`` for every run: one after another (a cache each), then three times in threads
    sharing one cold cache, switching inside every batch a decoder decodes; asserts they agree."""
    one_by_one = [read(new_cache(), i) for i in range(RUNS)]

    def at_once() -> list[Any]:
        cache, got = new_cache(), [None] * RUNS

        def one(i: int) -> None:
            got[i] = read(cache, i)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(RUNS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return got

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(3):
            assert at_once() == one_by_one
    finally:
        sys.setswitchinterval(interval)
    return one_by_one


def test_curves_read_at_once_in_threads_equal_curves_read_one_after_another(hub: Hub) -> None:
    runs = sorted(hub.runs("lora"), key=lambda r: r.relpath)
    assert len(runs) == RUNS
    series = at_once_equals_one_by_one(
        SeriesCache, lambda cache, i: run_series(hub.services, runs[i], None, cache, max_points=100))
    assert all(s["loss"].total == STEPS and s["eval/loss"].total == STEPS // 10 for s in series)


def test_targets_searched_at_once_in_threads_equal_targets_searched_one_after_another(hub: Hub) -> None:
    runs = sorted(hub.runs("lora"), key=lambda r: r.relpath)
    target = parse_target("loss<0.04")
    found = at_once_equals_one_by_one(
        TargetCache, lambda cache, i: TargetSearch(target, cache).first_points(hub.services, [(runs[i], "loss")]))
    # (i + 1) / (1 + 0.01 s) is 0.04 at s = 2500 (i + 1) - 100, stored as float32 0.0399999991: each run
    # meets the target there, at a step of its own.
    assert [next(iter(f.values()))[1] for f in found] == [2500 * (i + 1) - 100 for i in range(RUNS)]
