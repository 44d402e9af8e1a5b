"""The alert pass of ``tbhub serve``: event files parsed in a worker process, statuses decided from the
states it stored; a worker that fails or hangs is one log line and the next pass goes on."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import psutil
import pytest

from eventfiles import file_version_event, scalar_event, write_events
from tbhub.app.alerts import AlertEngine
from tbhub.app.background import _Evaluation
from tbhub.app.hub import Hub
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.app.workers import ParseFailed, ScalarParser
from tbhub.config import load_config


def diverging(root: Path) -> Path:
    path = root / "ds" / "nan" / "events.out.tfevents.1"
    t = time.time()
    values = [1.0, 0.9, 0.8, float("nan")]
    events = [scalar_event(step, value, "loss", wall_time=t) for step, value in enumerate(values)]
    write_events(path, [file_version_event(t), *events])
    return path


def services_for(tmp_path: Path, state: str = "state") -> Services:
    cfg = tmp_path / f"{state}.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / state}"\n[endpoints.lora]\nlogdir = "{tmp_path / "logs"}"\n')
    services = Services(load_config(cfg))
    scan_endpoints(services)
    return services


def status(services: Services) -> str | None:
    found = services.state.load_run_states("lora").get("ds/nan")
    return None if found is None else found[0]


def test_the_pass_parses_in_a_worker_and_a_failure_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = diverging(tmp_path / "logs")
    services = services_for(tmp_path)
    parser = ScalarParser(services)
    evaluate = _Evaluation(Hub(services), AlertEngine(services, channels=[]), parser)
    # The worker cannot read the file the index lists (a folder now stands there): it exits with an error.
    aside = path.with_name("aside")
    path.rename(aside)
    path.mkdir()
    with caplog.at_level(logging.INFO, logger="tbhub.hub"):
        evaluate("lora")
        evaluate("lora")
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1, caplog.text  # not once per pass
    assert "parse worker for lora failed: IsADirectoryError" in failures[0].getMessage()
    assert "Traceback" not in caplog.text
    assert parser.last_pid is not None and parser.last_pid != os.getpid()
    assert status(services) != "diverged"  # decided on what was parsed before: nothing
    assert services.state.load_scalar_states("lora") == {}

    path.rmdir()
    aside.rename(path)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tbhub.hub"):
        evaluate("lora")  # the loop went on: this pass parses, in another process, and the run diverged
    assert status(services) == "diverged"
    assert "works again" in caplog.text
    assert list(services.state.load_scalar_states("lora")) == ["ds/nan/events.out.tfevents.1"]
    assert not psutil.pid_exists(parser.last_pid) or psutil.Process(parser.last_pid).status() == "zombie"


def test_a_worker_past_its_timeout_is_killed_with_its_session(tmp_path: Path) -> None:
    diverging(tmp_path / "logs")
    services = services_for(tmp_path)
    (inv,) = scan_endpoints(services)
    parser = ScalarParser(services, timeout=0.05)  # less than an interpreter needs to start
    with pytest.raises(ParseFailed, match="did not finish within"):
        parser.parse("lora", inv.runs)
    assert parser.last_pid is not None and not psutil.pid_exists(parser.last_pid)
    assert ScalarParser(services).parse("lora", inv.runs) == 1  # the next one does the work
    assert ScalarParser(services).parse("lora", inv.runs) == 0  # nothing new: no worker at all


def test_a_stopped_parser_starts_no_worker(tmp_path: Path) -> None:
    diverging(tmp_path / "logs")
    services = services_for(tmp_path)
    (inv,) = scan_endpoints(services)
    parser = ScalarParser(services)
    parser.stop()
    assert parser.parse("lora", inv.runs) == 0 and parser.last_pid is None


def test_the_cli_path_parses_in_process_with_the_same_reader(tmp_path: Path) -> None:
    """``tbhub runs --status`` parses in its own process; the result equals the worker's."""
    from tbhub.adapters.scalar_decoder import ProtobufDecoder
    from tbhub.app.scalars import run_scalars

    diverging(tmp_path / "logs")
    here, there = services_for(tmp_path, "here"), services_for(tmp_path, "there")
    (inv,) = scan_endpoints(here)
    tags_here = run_scalars(here, inv.endpoint, inv.runs, ProtobufDecoder())
    assert ScalarParser(there).parse("lora", inv.runs) == 1
    tags_there = run_scalars(there, inv.endpoint, inv.runs, parse=False)
    assert tags_here == tags_there and tags_here["ds/nan"]["loss"].nan_count == 1
