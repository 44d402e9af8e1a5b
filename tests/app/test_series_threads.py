"""app.series: the hub answers in threads, so curves of several runs may be read at once through one series
cache; each read borrows a decoder of its own (a decoder keeps a batch's working state on its templates), and
what concurrent reads return equals what reading one run after another returns (issue 17)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventfiles import file_version_event, scalar_event, write_events
from tbhub.app.hub import Hub
from tbhub.app.series import SeriesCache, run_series
from tbhub.app.services import Services
from tbhub.config import AuthConfig, Config, EndpointConfig, StateConfig
from tbhub.core.series import SeriesPoints

RUNS = 6


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    root = tmp_path / "logs"
    for i in range(RUNS):
        events = [file_version_event(1.7e9)]
        for s in range(20_000):
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


def test_curves_read_at_once_in_threads_equal_curves_read_one_after_another(hub: Hub) -> None:
    runs = sorted(hub.runs("lora"), key=lambda r: r.relpath)
    assert len(runs) == RUNS

    def read(cache: SeriesCache, run_index: int) -> dict[str, SeriesPoints]:
        return run_series(hub.services, runs[run_index], None, cache, max_points=100)

    def at_once() -> list[dict[str, SeriesPoints] | None]:
        cache = SeriesCache()  # cold: every thread reads its run's event file
        got: list[dict[str, SeriesPoints] | None] = [None] * RUNS

        def one(i: int) -> None:
            got[i] = read(cache, i)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(RUNS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return got

    one_by_one = [read(SeriesCache(), i) for i in range(RUNS)]
    assert all(s["loss"].total == 20_000 and s["eval/loss"].total == 2_000 for s in one_by_one)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch inside every batch a decoder decodes
    try:
        for _ in range(3):
            assert at_once() == one_by_one
    finally:
        sys.setswitchinterval(interval)
