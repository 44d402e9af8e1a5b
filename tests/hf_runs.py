"""Hugging Face Trainer runs written by the Trainer itself (``hf_training.py``), shared by the tests.

``trained_runs()`` trains, once per test session (whichever test module asks first), in one process:

* ``hf/done``: 12 steps (max_steps), evaluation every 4: finished normally;
* ``hf/epochs``: planned in epochs (max_steps unset, 2 epochs of 6 steps): finished normally;
* ``hf/nan``: 12 steps, the LoRA weights turned NaN after step 5: diverged (grad_norm, eval/loss NaN);
* ``hf/crash``: planned for 20 steps, SIGKILLed after step 7: no final tags, an unclosed file.

``Live`` starts a run in its own process and lets a test watch it while it trains (the ETA test, the
stall that resumes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tbhub.adapters.crc import crc32c
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.core.models import EventFileScan, FileEntry, RunSummary
from tbhub.core.scalars import TagSummary, merge_tags, run_texts, summarize_file
from tbhub.core.scanner import scan_event_file

SCRIPT = Path(__file__).with_name("hf_training.py")
BATCH = ("done:steps=12,eval=4", "epochs:steps=0,epochs=2,samples=24", "nan:steps=12,nan_at=5,eval=4",
         "crash:steps=20,kill_at=7")

_trained: dict[str, Path] = {}


def _env() -> dict[str, str]:
    return os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                         "PYTHONWARNINGS": "ignore"}


def start(root: Path, *specs: str, go: Path | None = None) -> subprocess.Popen[bytes]:
    """Train ``specs`` into ``root`` in a new process; with ``go``, once that file is created."""
    root.mkdir(parents=True, exist_ok=True)
    env = _env() | ({"HF_TEST_GO_FILE": str(go)} if go is not None else {})
    return subprocess.Popen([sys.executable, str(SCRIPT), str(root), *specs], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def trained_runs(base: Path) -> Path:
    """The log root holding ``hf/{done,epochs,nan,crash}`` (trained on the first call)."""
    if "batch" not in _trained:
        root = base / "logs"
        proc = start(root / "hf", *BATCH)
        out, _ = proc.communicate(timeout=300)
        # The last run kills its own process (the crash): SIGKILL is the expected end.
        assert proc.returncode == -9, out.decode(errors="replace")[-3000:]
        _trained["batch"] = root
    return _trained["batch"]


@dataclass
class RunView:
    run: RunSummary
    tags: dict[str, TagSummary]
    texts: dict[str, str]


def view(root: Path, relpath: str, endpoint: str = "e") -> RunView:
    """The run at ``root/relpath`` as tbhub's scanner and scalar reader see it (every file read anew)."""
    scans: list[EventFileScan] = []
    states = []
    decoder = ProtobufDecoder()
    for path in sorted((root / relpath).rglob("events.out.tfevents.*")):
        st = path.stat()
        rel = path.relative_to(root).as_posix()
        entry = FileEntry(rel, st.st_ino, st.st_size, st.st_mtime_ns)
        with open(path, "rb", buffering=0) as f:
            scans.append(scan_event_file(f, entry, crc32c=crc32c))
        with open(path, "rb") as f:
            states.append(summarize_file(f, None, relpath=rel, inode=st.st_ino, size=st.st_size,
                                         mtime_ns=st.st_mtime_ns, decoder=decoder, crc32c=crc32c))
    dataset, _, name = relpath.partition("/")
    return RunView(RunSummary(endpoint, dataset, name, relpath, tuple(scans)), merge_tags(relpath, states),
                   run_texts(relpath, states))


def wait_for(check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None and not check():
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"training ended before {what}: {out[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    if proc.stdout:
        proc.stdout.close()
