"""app.targets: the hub answers in threads, so several requests may search targets at once through one
target cache; each read borrows a decoder of its own (``app.decoders``), and what concurrent searches
find equals what searching one after another finds (issue 18)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventfiles import file_version_event, scalar_event, write_events
from tbhub.app.hub import Hub
from tbhub.app.services import Services
from tbhub.app.targets import TargetCache, TargetSearch
from tbhub.config import AuthConfig, Config, EndpointConfig, StateConfig
from tbhub.core.compare import parse_target

RUNS = 6
STEPS = 20_000


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    root = tmp_path / "logs"
    for i in range(RUNS):
        # loss falls below 0.01 late, at a step of its own per run; eval/loss is interleaved noise.
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


def test_targets_searched_at_once_in_threads_equal_targets_searched_one_after_another(hub: Hub) -> None:
    runs = sorted(hub.runs("lora"), key=lambda r: r.relpath)
    assert len(runs) == RUNS
    target = parse_target("loss<0.04")

    def search(cache: TargetCache, i: int) -> dict[tuple[str, str], tuple[float, int]]:
        return TargetSearch(target, cache).first_points(hub.services, [(runs[i], "loss")])

    one_by_one = [search(TargetCache(), i) for i in range(RUNS)]
    # (i + 1) / (1 + 0.01 s) is 0.04 at s = 2500 (i + 1) - 100, stored as float32 0.0399999991: each run
    # meets the target there, at a step of its own.
    assert [next(iter(found.values()))[1] for found in one_by_one] == [2500 * (i + 1) - 100 for i in range(RUNS)]

    def at_once() -> list[dict[tuple[str, str], tuple[float, int]] | None]:
        cache = TargetCache()  # cold: every thread reads its run's event file
        got: list[dict[tuple[str, str], tuple[float, int]] | None] = [None] * RUNS

        def one(i: int) -> None:
            got[i] = search(cache, i)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(RUNS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return got

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch inside every batch a decoder decodes
    try:
        for _ in range(3):
            assert at_once() == one_by_one
    finally:
        sys.setswitchinterval(interval)
