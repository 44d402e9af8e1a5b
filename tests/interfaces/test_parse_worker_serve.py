"""A real ``tbhub serve``: its alert pass parses event files in a worker process, never in the hub."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from serving import serve, wait_for

from eventfiles import file_version_event, scalar_event, write_events

pytestmark = pytest.mark.slow


def test_alerts_fire_while_the_hub_never_loads_protobuf(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    t = time.time()
    values = [1.0, 0.9, 0.8, float("nan")]
    write_events(root / "ds" / "nan" / "events.out.tfevents.1",
                 [file_version_event(t), *(scalar_event(s, v, "loss", wall_time=t) for s, v in enumerate(values))])
    with serve(tmp_path / "srv", {"lora": root}) as server:
        alerts = wait_for(lambda: [a for a in server.get("/api/alerts").json() if a["status"] == "diverged"],
                          60, "the diverged alert")
        assert alerts[0]["run"] == "nan"
        maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
        # The NaN was read from the event file, but not by the hub: protobuf's extension is not mapped.
        assert "_upb" not in maps and "/google/protobuf/" not in maps
        assert "/sqlalchemy/" in maps  # (the probe sees the hub's extension modules)
