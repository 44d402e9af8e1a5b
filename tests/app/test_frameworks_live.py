"""Runs watched while the Hugging Face Trainer writes them (issue 18): progress and an ETA within 20 %
of the truth, and a stall that resumes (stalled with the crashed hint, then running, then finished).

Each run trains in its own process (``hf_runs.start``) with a fixed sleep per step, so its pace is
steady; tbhub watches through the same use cases as ``tbhub runs --status`` (scan, parse the new
bytes, decide).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hf_runs import start, stop, view, wait_for
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.app.status import current_statuses
from tbhub.config import load_config
from tbhub.core.models import RunStatus
from tbhub.core.status import StatusVerdict


def _services(tmp: Path, logs: Path, stalled_after: str) -> Services:
    cfg = tmp / "tbhub.toml"
    cfg.write_text(f'[state]\ndir = "{tmp / "state"}"\n[endpoints.hf]\nlogdir = "{logs}"\n'
                   f'[alerts]\nstalled_after = "{stalled_after}"\n')
    return Services(load_config(cfg))


def _status(services: Services, relpath: str) -> StatusVerdict:
    inventories = scan_endpoints(services)
    return current_statuses(services, inventories, time.time_ns())[("hf", relpath)]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, object]]]:
    """Both processes start together (their imports run side by side); each test lets its run train
    (``go-NAME``) when it is ready to watch it."""
    base = tmp_path_factory.mktemp("live")
    logs = base / "logs"
    procs = {
        "eta": start(logs / "hf", "eta:steps=30,sleep=0.2", go=base / "go-eta"),
        "pause": start(logs / "hf", "pause:steps=14,sleep=0.2,pause_at=4,pause=5", go=base / "go-pause"),
        # Killed after step 7 with a checkpoint at step 5, then requeued: resumed from the checkpoint
        # into the same folder (a new event file whose first record is the args text at step 0).
        "crash": start(logs / "hf", "requeued:steps=30,save=5,kill_at=7"),
        "requeued": start(logs / "hf", "requeued:steps=30,sleep=0.2,resume=1", go=base / "go-requeued"),
    }
    try:
        yield base, dict(procs)
    finally:
        for proc in procs.values():
            stop(proc)


def _last_step(logs: Path, relpath: str) -> int:
    if not (logs / relpath).exists():
        return -1
    return view(logs, relpath).run.last_step or -1


def test_progress_and_eta_of_a_run_still_training(live: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    base, procs = live
    logs, proc = base / "logs", procs["eta"]
    (base / "go-eta").touch()
    wait_for(lambda: _last_step(logs, "hf/eta") >= 10, 120, "step 10", proc)  # type: ignore[arg-type]
    with _services(tmp_path, logs, "15m") as services:
        verdict = _status(services, "hf/eta")
    asked = time.time()
    assert verdict.status is RunStatus.RUNNING and verdict.framework == "transformers" and not verdict.crashed
    where = verdict.progress
    assert where is not None and where.plan.text() == "30 steps" and where.eta is not None
    assert 10 / 30 <= where.fraction < 1
    proc.wait(timeout=120)  # type: ignore[attr-defined]
    end = view(logs, "hf/eta")
    truth = end.tags["train/loss"].last_wall_time  # when step 30, the plan, was logged
    assert end.tags["train/loss"].last_step == 30
    error = abs(where.eta - truth) / (truth - asked)
    assert error <= 0.2, f"ETA off by {error:.0%}: predicted {where.eta - asked:.2f} s, took {truth - asked:.2f} s"
    with _services(tmp_path, logs, "15m") as services:
        done = _status(services, "hf/eta")
    assert done.status is RunStatus.FINISHED and done.progress is not None and done.progress.fraction == 1.0


def test_eta_of_a_job_resumed_from_its_checkpoint(live: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    """The pace is the resumed file's: steps from the checkpoint on, not from its step-0 args text."""
    base, procs = live
    logs, proc = base / "logs", procs["requeued"]
    assert procs["crash"].wait(timeout=120) == -9  # type: ignore[attr-defined]
    (base / "go-requeued").touch()
    wait_for(lambda: _last_step(logs, "hf/requeued") >= 16, 120, "step 16", proc)  # type: ignore[arg-type]
    with _services(tmp_path, logs, "15m") as services:
        verdict = _status(services, "hf/requeued")
    asked = time.time()
    assert verdict.status is RunStatus.RUNNING and verdict.progress is not None and verdict.progress.eta is not None
    assert len(view(logs, "hf/requeued").run.files) == 2
    proc.wait(timeout=120)  # type: ignore[attr-defined]
    truth = view(logs, "hf/requeued").tags["train/loss"].last_wall_time
    eta = verdict.progress.eta
    error = abs(eta - truth) / (truth - asked)
    assert error <= 0.2, f"ETA off by {error:.0%}: predicted {eta - asked:.2f} s, took {truth - asked:.2f} s"


def test_a_stall_that_resumes(live: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    base, procs = live
    logs, proc = base / "logs", procs["pause"]
    (base / "go-pause").touch()
    wait_for(lambda: _last_step(logs, "hf/pause") >= 4, 120, "step 4", proc)  # type: ignore[arg-type]
    with _services(tmp_path, logs, "2s") as services:
        seen: list[StatusVerdict] = []
        wait_for(lambda: seen.append(_status(services, "hf/pause")) or seen[-1].status is RunStatus.STALLED, 10,
                 "the stall")
        stalled = seen[-1]
        assert stalled.crashed and stalled.progress is not None and stalled.progress.eta is None
        assert stalled.evidence["last_step"] == 4
        # Training goes on: running again, the hint gone.
        wait_for(lambda: _last_step(logs, "hf/pause") > 4, 30, "the resumption", proc)  # type: ignore[arg-type]
        resumed = _status(services, "hf/pause")
        assert resumed.status is RunStatus.RUNNING and not resumed.crashed
        proc.wait(timeout=120)  # type: ignore[attr-defined]
        finished = _status(services, "hf/pause")
        assert finished.status is RunStatus.FINISHED and not finished.crashed
