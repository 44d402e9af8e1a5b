from __future__ import annotations

import datetime as dt

from tbhub.core.models import EventFileScan, RunSummary
from tbhub.core.retention import RetentionPolicy, RetentionRule, Schedule, plan_retention

NOW = 1_800_000_000 * 10**9
DAY = 86400 * 10**9


def run(endpoint: str, dataset: str, name: str, days: float, size: int = 1000) -> RunSummary:
    scan = EventFileScan(f"{dataset}/{name}/events.out.tfevents.1", 1, size, NOW - int(days * DAY), 3, size)
    return RunSummary(endpoint, dataset, name, f"{dataset}/{name}", (scan,))


def names(decisions: tuple[object, ...]) -> set[str]:
    return {f"{d.run.dataset}/{d.run.run}" for d in decisions}  # type: ignore[attr-defined]


LORA = RetentionPolicy(
    "lora",
    RetentionRule(keep_days=30, keep_last=2, archive_to="/cold/lora"),
    (
        ("claims-*", RetentionRule(keep_days=90)),
        ("claims-v2", RetentionRule(keep_last=0)),
        ("tmp*", RetentionRule(keep_days=1)),
    ),
)


def test_keep_days_and_keep_last_per_dataset() -> None:
    runs = [run("lora", "chat", f"r{d}", d) for d in (1, 10, 40, 50, 60)]
    plan = plan_retention(runs, {"lora": LORA}, pinned=set(), now_ns=NOW)
    assert names(plan.delete) == {"chat/r40", "chat/r50", "chat/r60"}
    assert all(d.archive_to == "/cold/lora" and d.rule == "lora" for d in plan.delete)
    assert plan.bytes_freed == 3000 and plan.refused == ()
    # keep_last protects the newest even when they are all old
    old = [run("lora", "chat", f"o{d}", d) for d in (100, 200, 300)]
    plan = plan_retention(old, {"lora": LORA}, pinned=set(), now_ns=NOW)
    assert names(plan.delete) == {"chat/o300"}
    assert {d.reason for d in plan.keep} == {"one of the 2 newest of chat"}


def test_most_specific_dataset_rule_wins_and_inherits() -> None:
    runs = [run("lora", "claims-v1", f"a{d}", d) for d in (5, 60, 100, 120)]
    runs += [run("lora", "claims-v2", f"b{d}", d) for d in (5, 95)]
    runs += [run("lora", "tmp-x", f"t{d}", d) for d in (0.5, 2, 3, 4)]
    plan = plan_retention(runs, {"lora": LORA}, pinned=set(), now_ns=NOW)
    # claims-v1: glob keep_days 90 with the endpoint's keep_last 2 -> the two newest stay
    assert {n for n in names(plan.delete) if n.startswith("claims-v1")} == {"claims-v1/a100", "claims-v1/a120"}
    # claims-v2: the exact rule (keep_last 0) beats the glob, keep_days from the endpoint (30)
    assert {n for n in names(plan.delete) if n.startswith("claims-v2")} == {"claims-v2/b95"}
    assert {d.rule for d in plan.delete if d.run.dataset == "claims-v2"} == {'lora.datasets."claims-v2"'}
    assert {n for n in names(plan.delete) if n.startswith("tmp")} == {"tmp-x/t3", "tmp-x/t4"}


def test_pinned_active_and_other_endpoints_are_never_removed() -> None:
    runs = [
        run("lora", "chat", "pinned", 400),
        run("lora", "chat", "live", 0.001),
        run("lora", "chat", "a", 1),
        run("lora", "chat", "b", 2),
        run("lora", "chat", "gone", 99),
        run("router", "moe", "x", 999),
    ]
    plan = plan_retention(runs, {"lora": LORA}, pinned={("lora", "chat/pinned")}, now_ns=NOW, active_minutes=10)
    assert names(plan.delete) == {"chat/gone"}
    reasons = {d.run.run: d.reason for d in plan.keep}
    assert reasons["pinned"] == "pinned" and reasons["live"] == "active"
    assert "router" not in {d.run.endpoint for d in plan.delete + plan.keep}


def test_no_keep_days_keeps_everything_and_empty_datasets() -> None:
    policy = RetentionPolicy("lora", RetentionRule(keep_last=1))
    plan = plan_retention(
        [run("lora", "a", "x", 900), run("lora", "a", "y", 901)], {"lora": policy}, pinned=set(), now_ns=NOW
    )
    assert plan.delete == () and len(plan.keep) == 2
    assert plan_retention([], {"lora": LORA}, pinned=set(), now_ns=NOW).delete == ()


def test_limits_refuse() -> None:
    policy = RetentionPolicy("lora", RetentionRule(keep_days=1), max_delete=2, max_bytes=2500)
    runs = [run("lora", "a", f"r{i}", 10 + i) for i in range(3)]
    plan = plan_retention(runs, {"lora": policy}, pinned=set(), now_ns=NOW)
    assert len(plan.delete) == 3
    assert plan.refused == (
        "lora: would delete 3 runs, more than max_delete = 2",
        "lora: would delete 3,000 bytes, more than max_bytes = 2,500",
    )


UTC = dt.UTC


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_daily_schedule_with_injected_clock() -> None:
    daily = Schedule(daily_at=dt.time(3, 0))
    assert daily.next_after(None, at(28, 10)) == at(29, 3)
    assert daily.next_after(None, at(28, 2, 59)) == at(28, 3)
    assert daily.next_after(at(28, 3), at(28, 10)) == at(29, 3)
    # the server was down at the slot: the missed application is due at once
    missed = daily.next_after(at(25, 3), at(28, 10))
    assert missed == at(26, 3) and missed <= at(28, 10)


def test_interval_schedule() -> None:
    every = Schedule(every_s=6 * 3600)
    assert every.next_after(None, at(28, 10)) == at(28, 10)
    assert every.next_after(at(28, 10), at(28, 11)) == at(28, 16)
