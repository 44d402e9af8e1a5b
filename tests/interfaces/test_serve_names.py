"""Run folders with hostile names under a real ``tbhub serve``: bytes that are not UTF-8 and control
characters are shown escaped and never stop the rest of an endpoint; a failing scan shows its error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serving import Server, serve, wait_for

from eventfiles import write_scalar_file

pytestmark = pytest.mark.slow

#: A run folder name that is not UTF-8 and holds an escape sequence (it would recolour a terminal).
BAD = b"bad-\xff\xfe\x1b[31m"
SHOWN = "bad-\\xff\\xfe\\x1b[31m"


def _write_root(root: Path) -> None:
    write_scalar_file(root / "ds" / "good", range(20))
    write_scalar_file(root / "ds" / "zz-also-good", range(10))
    bad = os.path.join(os.fsencode(root / "ds"), BAD)
    write_scalar_file(Path(os.fsdecode(bad)), range(5))


def _endpoint(server: Server, name: str) -> dict[str, object]:
    response = server.get(f"/api/endpoints/{name}")
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def test_a_non_utf8_run_folder_is_shown_escaped_and_the_good_runs_still_appear(tmp_path: Path) -> None:
    root = tmp_path / "logs" / "lora"
    _write_root(root)
    with serve(tmp_path / "serve", {"lora": root}) as server:
        wait_for(lambda: _endpoint(server, "lora")["runs"] == 3, 60, "all three runs in the index")
        endpoint = _endpoint(server, "lora")
        assert endpoint["error"] is None
        assert endpoint["last_scan"]["error"] is None  # type: ignore[index]

        runs = server.get("/api/endpoints/lora/runs")
        assert runs.status_code == 200
        names = sorted(r["run"] for r in runs.json())
        assert names == [SHOWN, "good", "zz-also-good"]
        bad = next(r for r in runs.json() if r["run"] == SHOWN)
        assert bad["event_count"] == 6 and bad["relpath"] == f"ds/{SHOWN}"

        page = server.get("/endpoints/lora")
        assert page.status_code == 200
        assert "good" in page.text and "zz-also-good" in page.text
        assert SHOWN in page.text and "\x1b" not in page.text
        assert server.get("/").status_code == 200
        compare = server.get("/api/compare?tag=loss")
        assert compare.status_code == 200, compare.text
        assert SHOWN in {r["run"] for r in compare.json()["rows"]}
        for path in ("/compare?tags=loss", "/api/usage", "/usage", "/api/history"):
            assert server.get(path).status_code == 200, path
        assert server.get("/tb/lora/").status_code == 200
        # TensorBoard itself lists the run (by the name its own loader gives it).
        tb_runs = wait_for(lambda: len(server.get("/tb/lora/data/runs").json()) == 3 or None, 60, "TensorBoard's runs")
        assert tb_runs

        # Still one line per scan in the log, and no traceback: the name broke nothing.
        assert "Traceback" not in server.log.read_text(errors="replace")


def test_a_failing_scan_shows_its_error_on_the_endpoint(tmp_path: Path) -> None:
    root = tmp_path / "logs" / "lora"
    _write_root(root)
    with serve(tmp_path / "serve", {"lora": root}) as server:
        wait_for(lambda: _endpoint(server, "lora")["runs"] == 3, 60, "all three runs in the index")
        shutil.rmtree(root)
        error = wait_for(lambda: _endpoint(server, "lora")["last_scan"]["error"], 30, "the scan error")  # type: ignore[index]
        assert "does not exist" in str(error)
        assert _endpoint(server, "lora")["error"]
        page = server.get("/endpoints/lora")
        assert page.status_code == 200 and "does not exist" in page.text
        index = server.get("/")
        assert index.status_code == 200 and "does not exist" in index.text
