"""``tbhub serve --log-format json``: every line a real server writes is one JSON object."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from serving import Server, serve, wait_for

from eventfiles import write_scalar_file
from tbhub.interfaces.cli.logs import JsonFormatter

KEYS = {"time", "level", "logger", "message"}


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    write_scalar_file(tmp_path / "logs" / "lora" / "alpaca" / "r1", range(30))
    return {"lora": tmp_path / "logs" / "lora"}


def _records(server: Server) -> list[dict[str, object]]:
    lines = [line for line in server.output().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return records


@pytest.mark.slow
def test_every_line_is_json_with_access_and_endpoint_fields(tmp_path: Path, roots: dict[str, Path]) -> None:
    with serve(tmp_path / "serve", roots, extra_args=("--log-format", "json")) as server:
        assert server.get("/healthz").status_code == 200
        assert server.get("/api/endpoints/lora").status_code == 200
        assert server.get("/no/such/page").status_code == 404
        server.tensorboard("lora").kill()
        wait_for(lambda: server.get("/api/endpoints/lora").json()["restarts"] >= 1, 30, "a restart")
        wait_for(lambda: server.get("/readyz").status_code == 200, 60, "lora up again")
    # After SIGTERM: the shutdown lines are JSON too.
    records = _records(server)  # stdout and stderr, interleaved, as a container runtime collects them
    assert records
    for record in records:
        assert set(record) >= KEYS, record
        assert dt.datetime.fromisoformat(str(record["time"])).tzinfo is not None
        assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    loggers = {str(r["logger"]) for r in records}
    assert {"uvicorn.access", "uvicorn.error", "tbhub.serve"} <= loggers
    assert any(name.startswith("tbhub.adapters.tensorboard") for name in loggers)

    access = [r for r in records if r["logger"] == "uvicorn.access"]
    requests = {(r["method"], r["path"], r["status"]) for r in access}
    assert {("GET", "/healthz", 200), ("GET", "/api/endpoints/lora", 200), ("GET", "/no/such/page", 404)} <= requests
    assert all(re.fullmatch(r"127\.0\.0\.1:\d+", str(r["client"])) for r in access)

    banner = [r for r in records if r["logger"] == "tbhub.serve" and r.get("endpoint") == "lora"]
    assert banner and banner[0]["url"] == f"{server.url}/tb/lora/"
    assert banner[0]["direct_url"] == f"http://127.0.0.1:{server.ports['lora']}/tb/lora/"
    # The supervisor's records about the killed child name the endpoint in a field of their own.
    restart = [r for r in records if r["level"] == "WARNING" and r.get("endpoint") == "lora"
               and str(r["logger"]).startswith("tbhub.adapters.tensorboard")]
    assert restart, [r for r in records if r["level"] == "WARNING"]


@pytest.mark.slow
def test_text_is_the_default_and_the_access_log_is_opt_in(tmp_path: Path, roots: dict[str, Path]) -> None:
    with serve(tmp_path / "plain", roots) as server:
        assert server.get("/healthz").status_code == 200
    plain = server.output()
    assert "tbhub hub on " + server.url in plain
    assert '"GET /healthz' not in plain  # no access log unless asked for
    assert not any(line.lstrip().startswith("{") for line in plain.splitlines())

    with serve(tmp_path / "access", roots, extra_args=("--access-log",)) as server:
        assert server.get("/healthz").status_code == 200
    assert re.search(r' INFO +uvicorn\.access: 127\.0\.0\.1:\d+ - "GET /healthz HTTP/1\.1" 200', server.output())


def test_bad_log_format_is_one_line(tmp_path: Path) -> None:
    for flag, value in (("--log-format", "xml"), ("--log-level", "loud")):
        result = subprocess.run(
            [sys.executable, "-m", "tbhub", "serve", "--logdir", f"lora={tmp_path}", flag, value],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert flag in result.stderr and value in result.stderr and "Traceback" not in result.stderr


def _format(record: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_formatter_keeps_extra_fields_and_tracebacks_on_one_line() -> None:
    logger = logging.getLogger("tbhub.test")
    record = logger.makeRecord("tbhub.test", logging.WARNING, __file__, 1, "scanned %d runs", (3,), None,
                               extra={"endpoint": "lora", "duration_s": 0.25, "message_id": 7})
    out = _format(record)
    assert out["message"] == "scanned 3 runs" and out["endpoint"] == "lora" and out["duration_s"] == 0.25
    assert out["message_id"] == 7 and out["logger"] == "tbhub.test" and out["level"] == "WARNING"
    assert str(out["time"]).endswith("Z")

    supervisor = logger.makeRecord("tbhub.adapters.tensorboard.supervisor", logging.INFO, __file__, 1,
                                   "endpoint %s: TensorBoard is up", ("lora",), None)
    assert _format(supervisor)["endpoint"] == "lora"
    literal = logger.makeRecord("tbhub.test", logging.INFO, __file__, 1, "endpoint %s", (), None)
    assert "endpoint" not in _format(literal)

    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        failed = logger.makeRecord("tbhub.test", logging.ERROR, __file__, 1, "it failed", (), sys.exc_info())
    out = _format(failed)
    assert "Traceback" in str(out["exception"]) and "ValueError: broken\nacross lines" in str(out["exception"])
