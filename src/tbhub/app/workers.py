"""Parsing event files for the hub, in a short-lived process of its own.

The alert engine decides statuses from per-file scalar states (``tbhub.app.scalars``). Bringing
those up to date parses every new event-file byte: protobuf, decoding buffers, and on the first pass
every scalar of every run. ``tbhub serve`` does that here, in a process started for one pass over
one endpoint and gone afterwards, so none of it (protobuf's modules, the parse's peak, the heap
fragmentation it leaves) stays in the hub process, which decides statuses from the stored states
(``run_scalars(parse=False)``).

The process is a fresh interpreter (``python -m tbhub.app.workers``, what a ``spawn`` context
starts, without re-importing the hub's ``__main__``), never a fork of the hub: the hub is
multi-threaded (uvicorn, the supervisor, the background thread), and forking a threaded process can
copy a lock another thread holds. It runs in its own session at the lowest priority and loads only
the core, the log store and protobuf: not the config models (pydantic) nor the database layer
(SQLAlchemy), about 45 MB it would add to the machine's peak while it runs. So the hub does the
database part: it sends the files to parse with their stored states (a pickle on stdin) and saves
what comes back (a JSON line per file on stdout, an empty line after each batch, so a pass stopped
by its timeout keeps what it had done). Inside the worker ``summarize_many`` may fork processes of
its own: the worker is single-threaded, so that fork is safe.

The CLI (``tbhub runs --status``, ``tbhub compare``) parses in its own short-lived process instead
(``update_scalar_states``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from tbhub.adapters.storage.remote import is_url
from tbhub.app.scalars import Stale, parse_files, pruned, stale_files, state_row
from tbhub.core.models import RunSummary

if TYPE_CHECKING:  # not at run time: the worker process imports this module
    from tbhub.app.services import Services

__all__ = ["PARSE_TIMEOUT_S", "PARSE_WORKERS", "ParseFailed", "ScalarParser"]

log = logging.getLogger("tbhub.hub")

#: Seconds one pass over one endpoint may take. States are saved batch by batch, so a pass cut
#: short by this keeps what it parsed and the next one goes on from there.
PARSE_TIMEOUT_S = 900.0
#: Processes ``summarize_many`` may use in the worker when there is enough to parse (the first pass).
#: One: every extra process is one more interpreter while the TensorBoards load, and the worker is
#: at the lowest priority anyway (idle cores only).
PARSE_WORKERS = 1


class ParseFailed(Exception):
    """The parse worker exited with an error, was killed, or did not finish within its timeout."""


class ScalarParser:
    """Brings an endpoint's scalar states up to date with one worker process per pass (``parse``);
    ``stop`` kills the running one."""

    def __init__(self, services: Services, *, timeout: float = PARSE_TIMEOUT_S, workers: int = PARSE_WORKERS) -> None:
        self.services, self.timeout, self.workers = services, timeout, workers
        self.last_pid: int | None = None  # of the last worker started (the tests look at it)
        self._running: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def parse(self, name: str, runs: Sequence[RunSummary]) -> int:
        """Parse what is new in ``runs``' event files (endpoint ``name``) in a worker and store the
        states; returns how many files were parsed. No worker starts when nothing is new or once
        ``stop`` was called. ``ParseFailed`` (one line) when the worker does not exit cleanly within
        the timeout; the batches it completed are kept."""
        state = self.services.state
        known = state.load_scalar_states(name)
        removed = pruned(known, runs)
        stale = stale_files(known, runs)
        del known
        if removed:
            state.save_scalar_states(name, [], removed)
        if not stale or self._stopped:
            return 0
        spec = self.services.spec(name)
        options = dict(self.services.storage_options(name)) if is_url(spec.logdir) else None
        mirror = self.services.mirror_folder(name)  # serve: read what the mirror holds there
        return self._run(name, pickle.dumps((spec.logdir, options, stale, self.workers, mirror)))

    def _run(self, name: str, payload: bytes) -> int:
        # The child finds tbhub where this process did (a checkout on PYTHONPATH, a venv, a test).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        with tempfile.TemporaryFile() as err:
            with self._lock:
                if self._stopped:
                    return 0
                proc = self._running = subprocess.Popen(
                    [sys.executable, "-m", "tbhub.app.workers"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=err, env=env, start_new_session=True,
                )
            return self._collect(name, proc, payload, err)

    def _collect(self, name: str, proc: subprocess.Popen[bytes], payload: bytes, err: IO[bytes]) -> int:
        self.last_pid = proc.pid
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            _kill_session(proc)

        timer = threading.Timer(self.timeout, expire)
        timer.start()
        parsed = 0
        try:
            assert proc.stdin is not None and proc.stdout is not None
            with contextlib.suppress(BrokenPipeError):  # it died early: its exit status says why
                proc.stdin.write(payload)
                proc.stdin.close()
            rows: list[tuple[str, int, int, int, str]] = []
            for line in proc.stdout:
                if line.strip():
                    relpath, inode, size, mtime_ns, text = json.loads(line)
                    rows.append((relpath, inode, size, mtime_ns, text))
                elif rows:  # the end of a batch
                    self.services.state.save_scalar_states(name, rows, [])
                    parsed, rows = parsed + len(rows), []
            proc.wait()
        finally:
            timer.cancel()
            _kill_session(proc)  # nothing of it may outlive the pass
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
            with self._lock:
                self._running = None
        if self._stopped:
            return parsed
        if timed_out.is_set():
            raise ParseFailed(f"parsing {name} did not finish within {self.timeout:.0f} s: stopped")
        if proc.returncode != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            why = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else (
                lines[-1] if lines else f"exit code {proc.returncode}")
            raise ParseFailed(f"the parse worker for {name} failed: {why}")
        return parsed

    def stop(self) -> None:
        """Kill the running worker (and its own workers), if any; no new one starts afterwards."""
        with self._lock:
            self._stopped = True
            proc = self._running
        if proc is not None:
            _kill_session(proc)  # the thread in ``parse`` reaps it


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its session: summarize_many's processes too


def _work(logdir: str, options: dict[str, Any] | None, stale: list[Stale], workers: int,
          mirror: str | os.PathLike[str] | None = None) -> None:
    from multiprocessing import get_context

    from tbhub.adapters.scalar_decoder import ProtobufDecoder
    from tbhub.adapters.storage.local import LocalLogStore
    from tbhub.core.ports import LogStore

    if options is None:
        store: LogStore = LocalLogStore(logdir)
    elif mirror is not None:
        from tbhub.adapters.storage.mirror.store import MirroredLogStore

        mirrored = MirroredLogStore(logdir, options, mirror)
        mirrored.use_local(entry for entry, _ in stale)  # the bucket only for what the mirror lacks
        store = mirrored
    else:
        from tbhub.adapters.storage.objectstore import ObjectLogStore

        store = ObjectLogStore(logdir, options)
    out = sys.stdout
    for states in parse_files(store, stale, ProtobufDecoder(), workers=workers, mp_context=get_context("fork")):
        out.writelines(json.dumps(state_row(s)) + "\n" for s in states)
        out.write("\n")
        out.flush()


def main() -> int:
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, 19)  # the TensorBoards that serve users come first
    logdir, options, stale, workers, mirror = pickle.load(sys.stdin.buffer)  # from the hub that started it
    try:
        _work(logdir, options, stale, workers, mirror)
    except Exception as error:  # one line for the hub's log
        print(f"{type(error).__name__}: {error}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
