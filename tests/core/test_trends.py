"""core.trends: ISO weeks (across a year boundary), by run when few, medians and the best metric,
an unpriced run makes a point's cost unknown, not 0."""

from __future__ import annotations

import datetime as dt

import pytest

from tbhub.core.trends import RunFacts, build_trends, iso_week, parse_metric


def fact(run: str, start: float, *, busy: float = 3600.0, cost: float | None = 2.5, metric: float | None = None,
         dataset: str = "ds", training: bool = False) -> RunFacts:
    return RunFacts("e", dataset, run, f"{dataset}/{run}", start, busy, busy / 3600, cost, 1.0, None, None, None,
                    metric, training)


def at(year: int, month: int, day: int) -> float:
    return dt.datetime(year, month, day, 12, tzinfo=dt.UTC).timestamp()


def test_iso_weeks_cross_the_year_boundary() -> None:
    assert iso_week(at(2026, 12, 31))[0] == "2026-W53"
    assert iso_week(at(2027, 1, 3))[0] == "2026-W53"  # a Sunday: still the week of Monday 28 December
    assert iso_week(at(2027, 1, 4))[0] == "2027-W01"
    _, monday = iso_week(at(2027, 1, 3))
    assert dt.datetime.fromtimestamp(monday, tz=dt.UTC) == dt.datetime(2026, 12, 28, tzinfo=dt.UTC)


def test_weeks_when_many_runs_with_medians_and_the_best_metric() -> None:
    facts = [fact(f"r{i}", at(2026, 11, 2) + (i // 4) * 7 * 86400 + i * 60, busy=3600.0 * (i + 1),
                  metric=1.0 / (i + 1)) for i in range(8)]
    (trend,) = build_trends(facts, parse_metric("eval/loss"))
    assert trend.by == "week" and [p.label for p in trend.points] == ["2026-W45", "2026-W46"]
    first = trend.points[0]
    assert [r.run for r in first.runs] == ["r0", "r1", "r2", "r3"]
    assert first.gpu_hours == pytest.approx(2.5)  # median of 1, 2, 3, 4 GPU-hours
    assert first.metric == pytest.approx(0.25)  # the lowest eval/loss of the week
    best_high = build_trends(facts, parse_metric("eval/accuracy:max"))[0]
    assert best_high.points[0].metric == pytest.approx(1.0)


def test_few_runs_or_one_week_give_a_point_per_run() -> None:
    few = build_trends([fact(f"r{i}", at(2026, 11, 2) + i * 7 * 86400) for i in range(3)])
    assert few[0].by == "run" and [p.label for p in few[0].points] == ["r0", "r1", "r2"]
    one_week = build_trends([fact(f"r{i}", at(2026, 11, 2) + i * 3600) for i in range(10)])
    assert one_week[0].by == "run" and len(one_week[0].points) == 10


def test_an_unpriced_run_makes_the_cost_unknown_and_runs_without_a_start_are_left_out() -> None:
    facts = [fact("a", at(2026, 11, 2)), fact("b", at(2026, 11, 2) + 60, cost=None), fact("c", None)]  # type: ignore[arg-type]
    (trend,) = build_trends(facts)
    assert [p.cost for p in trend.points] == [2.5, None]


def test_a_run_still_training_counts_in_rates_not_in_gpu_hours_or_cost() -> None:
    week = [fact("a", at(2026, 11, 2), busy=3600.0), fact("b", at(2026, 11, 2) + 60, busy=7200.0),
            fact("live", at(2026, 11, 2) + 120, busy=60.0, cost=0.04, metric=0.1, training=True)]
    (trend,) = build_trends(week, parse_metric("eval/loss"), weekly_min_runs=3)
    assert trend.by == "run"
    live = trend.points[-1]
    assert (live.training, live.gpu_hours, live.cost) == (1, None, None)  # only spent so far: no point
    assert live.steps_per_s == 1.0 and live.metric == 0.1  # its rate and best value so far stand
    (weekly,) = build_trends([*week, *(fact(f"old{i}", at(2026, 10, 26) + i) for i in range(3))],
                             weekly_min_runs=3)
    this_week = weekly.points[-1]
    assert this_week.training == 1 and len(this_week.runs) == 3
    assert this_week.gpu_hours == pytest.approx(1.5) and this_week.cost == pytest.approx(2.5)  # medians of a, b


@pytest.mark.parametrize("text", ["", ":max", "loss:best", "loss:"])
def test_bad_metrics_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="metric like"):
        parse_metric(text)
