from __future__ import annotations

import pytest

from tbhub.core.cleanup import CleanupLimits, PlanRefused, RunFilter, build_plan, is_active
from tbhub.core.models import EventFileScan, RunSummary

NOW = 1_800_000_000 * 10**9
MIN = 60 * 10**9
DAY = 86400 * 10**9


def run(dataset: str, name: str, age_ns: int, size: int = 100) -> RunSummary:
    scan = EventFileScan(f"{dataset}/{name}/events.out.tfevents.1", 1, size, NOW - age_ns, 3, size)
    return RunSummary("lora", dataset, name, f"{dataset}/{name}", (scan,))


RUNS = [run("claims-v1", "a", 40 * DAY), run("claims-v2", "b", 10 * DAY), run("chat", "c", 2 * DAY),
        run("chat", "live", 3 * MIN, size=50)]


def test_filter_by_age_dataset_and_match() -> None:
    assert [r.run for r in RunFilter(older_than_s=7 * 86400).apply(RUNS, NOW)] == ["a", "b"]
    assert [r.run for r in RunFilter(dataset_glob="claims-*").apply(RUNS, NOW)] == ["a", "b"]
    assert [r.run for r in RunFilter(match_glob="chat/*").apply(RUNS, NOW)] == ["c", "live"]
    assert [r.run for r in RunFilter(8 * 86400, "claims-*", "*/b").apply(RUNS, NOW)] == ["b"]


def test_active_runs_are_skipped_unless_forced() -> None:
    assert is_active(RUNS[3], NOW, 10) and not is_active(RUNS[2], NOW, 10)
    plan = build_plan(RUNS, now_ns=NOW, active_minutes=10)
    assert [r.run for r in plan.runs] == ["a", "b", "c"] and plan.total_bytes == 300
    assert [(r.run, "active" in why) for r, why in plan.skipped] == [("live", True)]
    assert [r.run for r in build_plan(RUNS, now_ns=NOW, force=True).runs] == ["a", "b", "c", "live"]
    assert build_plan(RUNS, now_ns=NOW, active_minutes=1).skipped == ()


def test_limits_refuse_the_whole_plan() -> None:
    with pytest.raises(PlanRefused, match="3 runs, more than the limit of 2"):
        build_plan(RUNS, now_ns=NOW, limits=CleanupLimits(max_delete=2))
    with pytest.raises(PlanRefused, match="300 bytes, more than the limit of 299 bytes"):
        build_plan(RUNS, now_ns=NOW, limits=CleanupLimits(max_bytes=299))
    assert len(build_plan(RUNS, now_ns=NOW, limits=CleanupLimits(3, 300)).runs) == 3
    assert build_plan(RUNS, now_ns=NOW).endpoints == ["lora"]
