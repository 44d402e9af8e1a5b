from __future__ import annotations

import pytest

from tbhub.core.models import DEFAULT_LAYOUT, EventFileScan
from tbhub.core.runs import check_layout, group_runs, index_runs, run_key


def scan(relpath: str, size: int = 10, records: int = 2, mtime_ns: int = 1, **kw: object) -> EventFileScan:
    return EventFileScan(relpath, 1, size, mtime_ns, records, size, **kw)  # type: ignore[arg-type]


def test_run_key_layout_and_outside_files() -> None:
    def key(relpath: str) -> tuple[str, str, str]:
        return run_key(relpath, DEFAULT_LAYOUT)

    assert key("ds/run/events.out.tfevents.1") == ("ds", "run", "ds/run")
    assert key("ds/run/train/deep/events.out.tfevents.1") == ("ds", "run", "ds/run")
    assert key("ds/events.out.tfevents.1") == ("ds", "events.out.tfevents.1", "ds/events.out.tfevents.1")
    assert key("events.out.tfevents.1") == ("", "events.out.tfevents.1", "events.out.tfevents.1")


def test_run_key_of_the_run_layout_has_no_dataset() -> None:
    def key(relpath: str) -> tuple[str, str, str]:
        return run_key(relpath, "{run}")

    assert key("run-1/events.out.tfevents.1") == ("", "run-1", "run-1")
    # Sub-folders belong to the run, whatever their depth: a run named like a dataset stays one run.
    assert key("run-1/train/events.out.tfevents.1") == ("", "run-1", "run-1")
    assert key("run-1/a/b/c/events.out.tfevents.1") == ("", "run-1", "run-1")
    assert key("events.out.tfevents.1") == ("", "events.out.tfevents.1", "events.out.tfevents.1")


def test_the_run_layout_groups_what_the_default_splits() -> None:
    files = [scan("exp/lr-1/events.out.tfevents.1"), scan("exp/lr-2/events.out.tfevents.2"),
             scan("exp/events.out.tfevents.3"), scan("solo/events.out.tfevents.4")]
    by_dataset = group_runs("e", files, layout=DEFAULT_LAYOUT)
    assert [(r.dataset, r.run, r.relpath) for r in by_dataset] == [
        ("exp", "events.out.tfevents.3", "exp/events.out.tfevents.3"),
        ("exp", "lr-1", "exp/lr-1"),
        ("exp", "lr-2", "exp/lr-2"),
        ("solo", "events.out.tfevents.4", "solo/events.out.tfevents.4"),
    ]
    flat = group_runs("e", files, layout="{run}")
    assert [(r.dataset, r.run, r.relpath, r.event_files) for r in flat] == [
        ("", "exp", "exp", 3),
        ("", "solo", "solo", 1),
    ]


@pytest.mark.parametrize("layout", ["{run}/{dataset}", "{dataset}", "{project}/{dataset}/{run}", ""])
def test_unknown_layout_is_refused(layout: str) -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        check_layout(layout)
    with pytest.raises(ValueError, match="unknown layout"):
        run_key("a/b/events.out.tfevents.1", layout)


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
        layout=DEFAULT_LAYOUT,
    )
    assert [(r.dataset, r.run) for r in runs] == [("a", "events.out.tfevents.4"), ("a", "r"), ("b", "r")]
    b = runs[2]
    assert (b.size_bytes, b.event_count, b.event_files) == (12, 7, 2)
    assert (b.first_step, b.last_step, b.first_wall_time, b.last_wall_time) == (0, 9, 1.0, 5.0)
    assert b.last_modified_ns == 30 and b.truncated and b.corrupt == []
    assert b.age_seconds(30 + 2_000_000_000) == 2.0


def test_index_runs_groups_each_index_mapping_once() -> None:
    index = {s.relpath: s for s in (scan("a/r/events.out.tfevents.1"), scan("b/r/events.out.tfevents.2"))}
    first = index_runs("lora", index, layout=DEFAULT_LAYOUT)
    assert [r.relpath for r in first] == ["a/r", "b/r"]
    first.clear()  # callers get their own list
    again = index_runs("lora", index, layout=DEFAULT_LAYOUT)
    assert [r.relpath for r in again] == ["a/r", "b/r"]
    assert again[0] is index_runs("lora", index, layout=DEFAULT_LAYOUT)[0]  # the same runs: not grouped again
    changed = {**index, "c/r/events.out.tfevents.3": scan("c/r/events.out.tfevents.3")}
    regrouped = index_runs("lora", changed, layout=DEFAULT_LAYOUT)
    assert [r.relpath for r in regrouped] == ["a/r", "b/r", "c/r"]
    assert regrouped[0] is not again[0]
    assert [r.endpoint for r in index_runs("other", index, layout=DEFAULT_LAYOUT)] == ["other", "other"]  # per endpoint
    # The same mapping under another layout is grouped again, not served from the cache.
    assert [r.relpath for r in index_runs("lora", changed, layout="{run}")] == ["a", "b", "c"]
    assert [r.relpath for r in index_runs("lora", changed, layout=DEFAULT_LAYOUT)] == ["a/r", "b/r", "c/r"]
