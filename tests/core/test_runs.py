from __future__ import annotations

from tbhub.core.models import EventFileScan
from tbhub.core.runs import group_runs, index_runs, run_key


def scan(relpath: str, size: int = 10, records: int = 2, mtime_ns: int = 1, **kw: object) -> EventFileScan:
    return EventFileScan(relpath, 1, size, mtime_ns, records, size, **kw)  # type: ignore[arg-type]


def test_run_key_layout_and_outside_files() -> None:
    assert run_key("ds/run/events.out.tfevents.1") == ("ds", "run", "ds/run")
    assert run_key("ds/run/train/deep/events.out.tfevents.1") == ("ds", "run", "ds/run")
    assert run_key("ds/events.out.tfevents.1") == ("ds", "events.out.tfevents.1", "ds/events.out.tfevents.1")
    assert run_key("events.out.tfevents.1") == ("", "events.out.tfevents.1", "events.out.tfevents.1")


def test_group_runs_aggregates_subfolders() -> None:
    runs = group_runs(
        "lora",
        [
            scan("b/r/train/events.out.tfevents.1", size=5, records=3, mtime_ns=10, first_step=0, last_step=7,
                 first_wall_time=1.0, last_wall_time=4.0),
            scan("b/r/validation/events.out.tfevents.2", size=7, records=4, mtime_ns=30, first_step=2,
                 last_step=9, first_wall_time=2.0, last_wall_time=5.0, truncated=True),
            scan("a/r/events.out.tfevents.3"),
            scan("a/events.out.tfevents.4"),
        ],
    )
    assert [(r.dataset, r.run) for r in runs] == [("a", "events.out.tfevents.4"), ("a", "r"), ("b", "r")]
    b = runs[2]
    assert (b.size_bytes, b.event_count, b.event_files) == (12, 7, 2)
    assert (b.first_step, b.last_step, b.first_wall_time, b.last_wall_time) == (0, 9, 1.0, 5.0)
    assert b.last_modified_ns == 30 and b.truncated and b.corrupt == []
    assert b.age_seconds(30 + 2_000_000_000) == 2.0


def test_index_runs_groups_each_index_mapping_once() -> None:
    index = {s.relpath: s for s in (scan("a/r/events.out.tfevents.1"), scan("b/r/events.out.tfevents.2"))}
    first = index_runs("lora", index)
    assert [r.relpath for r in first] == ["a/r", "b/r"]
    first.clear()  # callers get their own list
    again = index_runs("lora", index)
    assert [r.relpath for r in again] == ["a/r", "b/r"]
    assert again[0] is index_runs("lora", index)[0]  # the same runs: not grouped again
    changed = {**index, "c/r/events.out.tfevents.3": scan("c/r/events.out.tfevents.3")}
    regrouped = index_runs("lora", changed)
    assert [r.relpath for r in regrouped] == ["a/r", "b/r", "c/r"]
    assert regrouped[0] is not again[0]
    assert [r.endpoint for r in index_runs("other", index)] == ["other", "other"]  # per endpoint
