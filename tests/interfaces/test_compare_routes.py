"""Compare's routes in process (the real app, a real log root and SQLite state database): runs chosen by id
across endpoints, unknown ids named, the search picker, the row cap of a whole-endpoint comparison (the
export keeps every row), the curves' JSON (thinned, NaN as null), clean 4xx on bad input (issue 17)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eventfiles import file_version_event, scalar_event, write_events
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.app.hub import Hub
from tbhub.app.scalars import update_scalar_states
from tbhub.app.services import Services
from tbhub.config import AuthConfig, Config, EndpointConfig, StateConfig
from tbhub.interfaces.web.app import create_app
from tbhub.interfaces.web.comparing import MAX_ROWS, RECENT

NAN = float("nan")


def write_run(root: Path, relpath: str, losses: list[float]) -> None:
    events = [file_version_event(1.7e9),
              *(scalar_event(s, v, "loss", wall_time=1.7e9 + s) for s, v in enumerate(losses))]
    write_events(root / relpath / "train" / "events.out.tfevents.1.h", events)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    lora, chat = tmp_path_factory.mktemp("lora"), tmp_path_factory.mktemp("chat")
    write_run(lora, "alpaca/long", [2.0 / (1 + 0.01 * s) for s in range(5000)])
    write_run(lora, "alpaca/nan", [1.0, 0.5, NAN])
    write_run(lora, "alpaca/live", [1.0 / (1 + s) for s in range(3000)])
    write_run(lora, os.fsdecode(b"odd/r\xff \xc3\xa9"), [3.0, 2.0, 1.0])  # not UTF-8, a space, an accent
    for i in range(MAX_ROWS + 5):
        write_run(chat, f"sweep/r{i:03d}", [1.0 + i, 0.5 + i])
    state = tmp_path_factory.mktemp("state")
    cfg = Config(auth=AuthConfig(mode="none"), state=StateConfig(dir=state),
                 endpoints={"lora": EndpointConfig(logdir=str(lora)), "chat": EndpointConfig(logdir=str(chat))})
    services = Services(cfg)
    hub = Hub(services, None)
    for name in ("lora", "chat"):
        hub.refresh(name)
        update_scalar_states(services, services.spec(name), hub.runs(name), ProtobufDecoder())
    # No lifespan: no background scan runs beside the requests.
    yield TestClient(create_app(hub, scan_interval=3600, job_interval=3600, alerts=False))
    services.close()


def test_runs_by_id_across_endpoints_and_unknown_ids(client: TestClient) -> None:
    page = client.get("/compare", params={"run": ["lora/alpaca/long", "chat/sweep/r001", "lora/gone/x"]})
    assert page.status_code == 200
    assert 'data-run="lora/alpaca/long"' in page.text and 'data-run="chat/sweep/r001"' in page.text
    assert 'id="unknown-runs"' in page.text and "lora/gone/x" in page.text
    assert "showing train/loss, the most common scalar tag of these runs (2 of 2)" in page.text


def test_a_name_that_is_not_utf8_is_shown_escaped_and_works_everywhere(client: TestClient) -> None:
    shown = "lora/odd/r\\xff é"
    page = client.get("/compare", params={"run": shown})
    assert f'data-run="{shown}"' in page.text and "unknown-runs" not in page.text
    series = client.get("/api/compare/series", params={"run": shown, "tag": "train/loss"}).json()
    assert series["runs"][0]["series"]["train/loss"]["values"] == [3.0, 2.0, 1.0]
    run_page = client.get("/runs/lora/odd/r\\xff é")
    assert run_page.status_code == 200 and "train/loss" in run_page.text
    assert "%5Eodd%2Fr" in run_page.text  # the TensorBoard filter of the run


def test_search_finds_runs_of_every_endpoint(client: TestClient) -> None:
    page = client.get("/compare", params={"q": "r20", "run": "chat/sweep/r200"})
    found = page.text.split('id="search-results"')[1].split("</fieldset>")[0]
    assert "205 match" not in found and "5 matches" in found  # r200..r204; the chosen one is not offered again
    assert found.count('name="run"') == 4 and "chat/sweep/r200" not in found
    assert "no run matches" in client.get("/compare", params={"q": "nothing-like-this"}).text


def test_a_whole_endpoint_shows_the_first_rows_and_exports_all(client: TestClient) -> None:
    page = client.get("/compare", params={"endpoint": "chat", "sort": "train/loss:min"})
    assert page.text.count('data-run="chat/') == MAX_ROWS
    assert "5 more are in the export" in page.text
    exported = client.get("/compare/export", params={"endpoint": "chat", "tag": "train/loss", "format": "csv"})
    assert len(list(csv.DictReader(io.StringIO(exported.text)))) == MAX_ROWS + 5


def test_no_choice_compares_the_most_recent_runs(client: TestClient) -> None:
    page = client.get("/compare")
    assert page.text.count('data-run="') == RECENT and "the 20 most recently written runs" in page.text
    assert 'data-run="chat/sweep/r204"' in page.text  # written last
    every = client.get("/compare", params={"dataset": "*"})  # every run of every endpoint: the first 200 shown
    assert every.text.count('data-run="') == MAX_ROWS and "more are in the export" in every.text


def test_curves_are_thinned_and_nan_is_null(client: TestClient) -> None:
    data = client.get("/api/compare/series", params={"run": ["lora/alpaca/long", "lora/alpaca/nan"],
                                                     "tag": "loss"}).json()
    long, nan = (r["series"]["loss"] for r in data["runs"])
    assert long["total"] == 5000 and len(long["steps"]) == 1000 and long["steps"][0] == 0 and long["steps"][-1] == 4999
    assert long["values"][0] == 2.0
    assert nan["values"] == [1.0, 0.5, None] and nan["nonfinite"] == [2]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/compare", {"sort": "loss:best"}),
        ("/compare", {"endpoint": "nope"}),
        ("/compare/export", {"run": "lora/alpaca/long", "format": "xml"}),
        ("/api/compare/series", {"run": "lora/alpaca/long"}),
        ("/runs/lora/alpaca/nothing", {}),
        ("/runs/lora/../etc", {}),
    ],
)
def test_bad_input_is_a_clean_4xx(client: TestClient, path: str, params: dict[str, str]) -> None:
    answer = client.get(path, params=params)
    assert 400 <= answer.status_code < 500 and "Traceback" not in answer.text


def test_a_live_run_s_curve_reads_only_what_was_appended(client: TestClient, tmp_path: Path) -> None:
    hub = client.app.state.hub  # type: ignore[attr-defined]
    params = {"run": "lora/alpaca/live", "tag": "train/loss"}
    before = client.get("/api/compare/series", params=params).json()["runs"][0]["series"]["train/loss"]
    cache = client.app.state.series_cache  # type: ignore[attr-defined]
    read = cache.bytes_read
    assert before["total"] == 3000 and client.get("/api/compare/series", params=params).status_code == 200
    assert cache.bytes_read == read  # unchanged file: nothing read
    path = next((Path(hub.spec("lora").logdir) / "alpaca/live/train").iterdir())
    grown = tmp_path / "more"
    write_events(grown, [scalar_event(s, 0.0001, "loss", wall_time=1.7e9 + s) for s in range(3000, 3500)])
    with open(path, "ab") as f:
        f.write(grown.read_bytes())
    hub.refresh("lora")
    after = client.get("/api/compare/series", params=params).json()["runs"][0]["series"]["train/loss"]
    assert after["total"] == 3500 and after["steps"][-1] == 3499 and after["values"][-1] == 0.0001
    assert cache.bytes_read - read == grown.stat().st_size  # only the appended records were read
