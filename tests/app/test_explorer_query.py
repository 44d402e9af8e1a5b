"""The runs explorer's query in SQL: sort on every column, each filter, pages, and the run rows kept in
step with the scan index (only changed rows rewritten)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from manyruns import age_s, run_path, write_many_runs
from pg import postgres_server  # noqa: F401  (pytest fixture)
from tbhub.app.explorer import RunQuery, explore, hub_summary, sync_run_index
from tbhub.app.inventory import refresh
from tbhub.app.services import Services
from tbhub.config import load_config
from tbhub.core.explorer import SORT_KEYS, runs_filter

N = 300


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def services(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The same queries on SQLite and on a real PostgreSQL (LIKE, sorting and NULLs differ between them)."""
    base = tmp_path_factory.mktemp("explorer")
    write_many_runs(base / "big", N)
    write_many_runs(base / "small", 5)
    database = ""
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        database = f'database = "{server.create_database("explorer_" + uuid.uuid4().hex)}"\n'
    config = base / "tbhub.toml"
    config.write_text(f'[state]\ndir = "{base / "state"}"\n{database}[endpoints.big]\nlogdir = "{base / "big"}"\n'
                      f'[endpoints.small]\nlogdir = "{base / "small"}"\n')
    services = Services(load_config(config))
    refresh(services, "big")
    refresh(services, "small")
    services.annotations.tag("big", run_path(3), "baseline", "ada")
    services.annotations.tag("big", run_path(4), "ablation", "ada")
    services.annotations.add_note("big", run_path(5), "LR too high, see [wiki](https://example.org)", "ada")
    services.state.pin("big", run_path(6), "ada")
    services.state.save_run_states("big", [(run_path(7), "diverged", "k7", "eval/loss is NaN at step 20"),
                                           (run_path(8), "running", "k8", "written to 1m ago")])
    yield services
    services.close()


def _relpaths(services: Services, endpoint: str | None = "big", **q: object) -> list[str]:
    page = explore(services, endpoint, RunQuery(**q), time.time_ns())  # type: ignore[arg-type]
    return [r.relpath for r in page.rows]


def test_default_order_is_newest_first_and_pages_cover_every_run_once(services: Services) -> None:
    seen: list[str] = []
    for number in range(1, N // 50 + 2):
        seen += _relpaths(services, page=number, per=50)
    assert len(seen) == N and len(set(seen)) == N
    assert seen == [run_path(i) for i in sorted(range(N), key=age_s)]


def test_every_column_sorts_both_ways(services: Services) -> None:
    for key in SORT_KEYS:
        up = _relpaths(services, None, sort=key, per=200)
        down = _relpaths(services, None, sort=f"-{key}", per=200)
        assert up and down, key
    names = _relpaths(services, sort="run", per=25)
    assert names == sorted(names, key=lambda p: p.split("/")[1])
    assert _relpaths(services, sort="status", per=25)[:2] == [run_path(7), run_path(8)]  # diverged first
    assert _relpaths(services, sort="-pinned", per=25)[0] == run_path(6)
    assert _relpaths(services, sort="tags", per=25)[:2] == [run_path(4), run_path(3)]  # ablation < baseline
    assert _relpaths(services, sort="-notes", per=25)[0] == run_path(5)


def test_filters(services: Services) -> None:
    assert _relpaths(services, tag="baseline") == [run_path(3)]
    assert _relpaths(services, text="ablation") == [run_path(4)]
    assert _relpaths(services, note="lr too HIGH") == [run_path(5)]
    assert _relpaths(services, text="too high") == [run_path(5)]
    assert _relpaths(services, pinned="yes") == [run_path(6)]
    assert run_path(6) not in _relpaths(services, pinned="no", per=200, sort="-pinned")
    assert _relpaths(services, status="diverged") == [run_path(7)]
    assert len(_relpaths(services, status="unknown", per=200)) == 200
    assert set(_relpaths(services, dataset="ALPACA", per=200)) == {run_path(i) for i in range(0, N, 8)}
    assert _relpaths(services, run="r00012") == [run_path(12)]
    assert _relpaths(services, run="%") == []  # LIKE's wildcards are escaped
    recent = {run_path(i) for i in range(N) if age_s(i) < 7 * 86400}
    assert set(_relpaths(services, newer="7d", per=200)) == recent
    old = _relpaths(services, older="7d", per=200, sort="modified")
    assert recent.isdisjoint(old) and len(old) == min(200, N - len(recent))


def test_all_endpoints_view_and_endpoint_filter(services: Services) -> None:
    page = explore(services, None, RunQuery(sort="endpoint", per=25), time.time_ns())
    assert page.total == N + 5 and page.rows[0].endpoint == "big"
    only = explore(services, None, RunQuery(endpoint="small"), time.time_ns())
    assert only.total == 5 and {r.endpoint for r in only.rows} == {"small"}


def test_marks_come_with_the_page(services: Services) -> None:
    page = explore(services, "big", RunQuery(text="r0000", per=25, sort="run"), time.time_ns())
    rows = {r.relpath: r for r in page.rows}
    assert rows[run_path(3)].tags == ("baseline",)
    assert rows[run_path(5)].notes == 1 and "LR too high" in (rows[run_path(5)].last_note or "")
    assert rows[run_path(6)].pinned
    assert rows[run_path(7)].status == "diverged" and rows[run_path(7)].reason == "eval/loss is NaN at step 20"


def test_hub_summary_counts_by_status(services: Services) -> None:
    summary = hub_summary(services, time.time_ns(), 600)
    assert summary.endpoints["big"].runs == N and summary.total.runs == N + 5
    assert summary.endpoints["big"].count("diverged") == 1 and summary.endpoints["big"].count("running") == 1
    assert summary.total.count("unknown") == N + 5 - 2
    assert summary.total.size_bytes > 0 and summary.active["big"] >= 1


def test_rows_follow_the_index_and_only_changed_rows_are_written(services: Services, tmp_path: Path) -> None:
    assert sync_run_index(services) == 0  # in step already
    root = Path(services.spec("small").logdir)
    write_many_runs(tmp_path, 6)  # run 5 is new
    (root / run_path(5)).mkdir(parents=True)
    (tmp_path / run_path(5)).rename(root / run_path(5) / "new")
    refresh(services, "small")
    assert explore(services, "small", RunQuery(), time.time_ns()).total == 6
    assert sync_run_index(services) == 0


def test_bad_queries_are_sentences() -> None:
    for params, words in (({"sort": "size; drop"}, "sort by one of"), ({"page": "0"}, "page starts at 1"),
                          ({"per": "7"}, "per is one of"), ({"newer": "soon"}, "newer:"),
                          ({"status": "ok"}, "status is one of"), ({"pinned": "maybe"}, "pinned is yes or no")):
        with pytest.raises(ValueError, match=words):
            RunQuery.from_params(params)
    assert RunQuery.from_params({"sort": "-size", "page": "2", "junk": "x"}).params() == {"sort": "-size", "page": "2"}


def test_runs_filter_is_exactly_the_selected_runs() -> None:
    import re

    pattern = re.compile(runs_filter(["alpaca/r1", "dolly/r.2"]))
    assert pattern.search("alpaca/r1") and pattern.search("alpaca/r1/train") and pattern.search("dolly/r.2/eval")
    assert not pattern.search("alpaca/r10") and not pattern.search("dolly/rx2")


def test_concurrent_syncs_of_the_same_rows_agree(services: Services) -> None:
    """Requests (and replicas) may bring the same stale rows in step at once: one writes, none fails."""
    from concurrent.futures import ThreadPoolExecutor

    services.state.forget_runs("big")
    with ThreadPoolExecutor(4) as pool:
        written = list(pool.map(lambda _: sync_run_index(services, ["big"]), range(4)))
    assert sum(written) >= N and max(written) == N
    assert explore(services, "big", RunQuery(), time.time_ns()).total == N
    assert sync_run_index(services) == 0
