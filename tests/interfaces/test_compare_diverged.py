"""``/api/compare`` and ``/compare``: a diverged run (last value NaN) is flagged and never best,
even when its min before diverging is the lowest."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving import serve, wait_for

from eventfiles import file_version_event, scalar_event, write_events

NAN = float("nan")


def write_run(root: Path, relpath: str, losses: list[float], t0: float) -> None:
    events = [file_version_event(t0), *(scalar_event(s, v, "loss", wall_time=t0 + s) for s, v in enumerate(losses))]
    write_events(root / relpath / "train" / "events.out.tfevents.1.h", events)


@pytest.mark.slow
def test_the_diverged_run_is_flagged_not_best(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_run(root, "alpaca/ok", [2.0, 0.6, 0.5], 1.7e9)
    write_run(root, "alpaca/diverged", [2.0, 0.1, NAN], 1.7e9 + 100)
    with serve(tmp_path / "srv", {"lora": root}) as server:

        def rows() -> list[dict[str, object]] | None:
            data = server.get("/api/compare", params={"tag": "train/loss", "sort": "train/loss:min"}).json()
            return data["rows"] if sum(1 for r in data["rows"] if r["tags"]) == 2 else None

        found = {r["run"]: r for r in wait_for(rows, 30, "the scalar index")}
        assert found["diverged"]["tags"]["train/loss"]["last"] == "nan"
        assert found["diverged"]["best"] is False and found["diverged"]["diverged"] == ["train/loss"]
        assert found["ok"]["best"] is True and found["ok"]["diverged"] == []
        page = server.get("/compare", params={"tags": "train/loss", "sort": "train/loss:min"}).text
        diverged_row = page[page.index('data-run="lora/alpaca/diverged"') :].split("</tr>")[0]
        assert ">diverged</span>" in diverged_row and 'class="best"' not in diverged_row
        assert 'data-run="lora/alpaca/ok" class="best"' in page
