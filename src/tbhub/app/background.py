"""The leader's loops: scan into the index, evaluate and deliver alerts, retention and usage on schedule.

``Background`` is what ``tbhub serve``'s web app starts in its lifespan. Leadership is checked by each
loop before it acts and again in the worker thread right before a job writes (``_as_leader``): a
process stopped in between (SIGSTOP) may wake up after a follower took over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from tbhub.adapters.db.leader import Leadership, leadership_for
from tbhub.adapters.memory import release_free_memory
from tbhub.app.alerts import AlertEngine
from tbhub.app.hub import Hub
from tbhub.app.retention import apply_retention, retention_status
from tbhub.app.timing import ALERTS_WARMUP_S, JOB_INTERVAL_S, SCAN_INTERVAL_S
from tbhub.app.workers import ParseFailed, ScalarParser

__all__ = ["LEADER_POLL_S", "LEADER_TTL_S", "Background", "Warmup"]

log = logging.getLogger("tbhub.hub")


def _background_jobs(hub: Hub, now: float) -> None:
    """Daily usage snapshot; retention when due. One process at a time applies retention (a lease)."""
    hub.snapshot_usage_if_due(now)
    status = retention_status(hub.services, now)
    if status["next_at"] is not None and now >= status["next_at"]:
        outcome = apply_retention(hub.services, trigger="schedule")
        if outcome.busy:
            log.info("retention is being applied by another process")


def _as_leader(leadership: Leadership, job: Callable[..., Any], *args: Any) -> None:
    """Run a leader-only job, unless leadership lapsed since the loop looked: checked again here, in the
    worker thread right before the job writes, because a process stopped in between (SIGSTOP) may wake
    up after a follower took over."""
    if leadership.is_leader:
        job(*args)
    else:
        log.info("not the leader any more: skipping %s", getattr(job, "__name__", "a leader job"))


async def _jobs_forever(hub: Hub, interval: float, leadership: Leadership) -> None:
    while True:
        if leadership.is_leader:
            try:
                await asyncio.to_thread(_as_leader, leadership, _background_jobs, hub, time.time())
            except Exception:  # monitoring never stops: log and try again next time
                log.exception("background job failed")
        await asyncio.sleep(interval)


#: Seconds between leader polls. A follower takes over at its next poll after the leader's advisory
#: lock is gone (PostgreSQL) or LEADER_TTL_S after its last renewal (the lease on SQLite, the heartbeat
#: of a hung leader on PostgreSQL); a leader stops acting 0.75 × LEADER_TTL_S after its last renewal.
LEADER_POLL_S = 5.0
LEADER_TTL_S = 20.0


async def _lead_forever(leadership: Leadership, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(leadership.poll)
        except Exception:
            log.exception("leader election failed")


class _BackgroundThread(Executor):
    """One daemon worker thread at the lowest priority.

    Daemon, unlike ``ThreadPoolExecutor``'s workers: a long scalar parse in progress must not keep the
    process alive after SIGTERM (its database transaction simply rolls back).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._work, name="tbhub-background", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        _low_priority()
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as error:  # handed to the awaiting coroutine
                    future.set_exception(error)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((future, functools.partial(fn, **kwargs) if kwargs else fn, args))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._jobs.put(None)
        if wait:
            self._thread.join()


def _low_priority() -> None:
    # Scanning and the alert passes must never slow the TensorBoards that serve
    # users: the lowest priority (Linux applies nice per thread) leaves them only idle CPU.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class _Evaluation:
    """One endpoint's alert pass: its event files parsed in a worker process (``ScalarParser``), then
    the statuses decided here from the states the worker stored. A worker that fails is one log line
    (not repeated while it keeps failing the same way) and the pass goes on with the states there are."""

    def __init__(self, hub: Hub, engine: AlertEngine, parser: ScalarParser) -> None:
        self.hub, self.engine, self.parser = hub, engine, parser
        self._failing: dict[str, str] = {}  # endpoint -> the error last logged

    def __call__(self, name: str) -> None:
        runs = self.hub.runs(name)
        try:
            self.parser.parse(name, runs)
            if self._failing.pop(name, None) is not None:
                log.info("parsing the event files of %s works again", name)
        except ParseFailed as error:
            if self._failing.get(name) != str(error):
                log.error("%s; alerts are decided on the scalars parsed before", error)
            self._failing[name] = str(error)
        try:
            self.engine.evaluate(self.hub.specs[name], runs, parse=False)
        finally:
            release_free_memory()


class Warmup:
    """The alert engine's first pass parses every scalar of every run: wait until each TensorBoard has
    been up for ``seconds``, so their initial load (what users wait for) gets the machine first."""

    def __init__(self, hub: Hub, seconds: float) -> None:
        self.hub, self.seconds = hub, seconds
        self.all_up_since: float | None = None
        self.done = seconds <= 0 or hub.supervisor is None

    def over(self) -> bool:
        if self.done:
            return True
        assert self.hub.supervisor is not None
        states = [c.state for c in self.hub.supervisor.status()]
        if any(str(s) not in ("up", "error") for s in states):  # a missing log root never comes "up"
            self.all_up_since = None
            return False
        now = time.monotonic()
        self.all_up_since = self.all_up_since or now
        self.done = now - self.all_up_since >= self.seconds
        return self.done


#: How often the refresh loop looks whether a mirror changed since its endpoint was scanned.
MIRROR_POLL_S = 0.5


async def _refresh_forever(
    hub: Hub, interval: float, evaluate: _Evaluation | None, pool: Executor, warmup: Warmup, leadership: Leadership
) -> None:
    """The leader scans every endpoint into the index and evaluates alerts; followers read the index.

    A mirrored endpoint (a URL log root ``serve`` keeps a copy of) is scanned from its mirror: not
    while the mirror's first sync runs (each byte arrives once, through the mirror), and again as soon
    as a sync changed the mirror rather than only every ``interval``."""
    loop = asyncio.get_running_loop()
    mirrors = hub.mirrors
    scanned: dict[str, int] = {}  # endpoint -> the mirror's generation its last scan read

    async def scan(name: str) -> None:
        scanned[name] = mirrors.generation(name)
        try:
            await loop.run_in_executor(pool, _as_leader, leadership, hub.refresh, name)
            if evaluate is not None and warmup.over():
                await loop.run_in_executor(pool, _as_leader, leadership, evaluate, name)
        except Exception:  # keep the loop alive: monitoring never stops
            log.exception("refreshing endpoint %s failed", name)

    while True:
        for name in hub.specs:
            if not leadership.is_leader:
                break
            if not mirrors.pending(name):
                await scan(name)
        deadline = time.monotonic() + interval
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, MIRROR_POLL_S) if mirrors.names else left)
            for name in mirrors.names:
                if leadership.is_leader and not mirrors.pending(name) and scanned.get(name) != mirrors.generation(name):
                    await scan(name)


async def _deliver_forever(engine: AlertEngine, name: str, interval: float, leadership: Leadership) -> None:
    while True:
        if leadership.is_leader:
            try:
                await asyncio.to_thread(_as_leader, leadership, engine.deliver, name)
            except Exception:
                log.exception("delivering alerts to %s failed", name)
        await asyncio.sleep(interval)


class Background:
    """The background work of one hub process, started and stopped by the web app's lifespan.

    Every replica polls for leadership and keeps the mirrors of its own TensorBoards; only the leader
    scans into the index, evaluates and delivers alerts, applies retention on schedule and records
    usage snapshots. Scans and alert passes share one low-priority thread; an alert pass parses the
    new event-file bytes in a worker process (``tbhub.app.workers``), so the hub never holds protobuf
    or a parse's peak.
    """

    def __init__(self, hub: Hub, *, replica: str, scan_interval: float = SCAN_INTERVAL_S,
                 job_interval: float = JOB_INTERVAL_S, alerts: bool = True,
                 alerts_warmup: float = ALERTS_WARMUP_S) -> None:
        self.hub = hub
        self.leadership = leadership_for(hub.state, replica, ttl_s=LEADER_TTL_S)
        self.scan_interval, self.job_interval = scan_interval, job_interval
        self.alerts, self.alerts_warmup = alerts, alerts_warmup
        self.engine: AlertEngine | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: _BackgroundThread | None = None
        self.parser: ScalarParser | None = None

    async def start(self) -> None:
        hub, leadership = self.hub, self.leadership
        engine = self.engine = AlertEngine(hub.services) if self.alerts else None
        evaluate = None
        if engine is not None:
            self.parser = ScalarParser(hub.services)
            evaluate = _Evaluation(hub, engine, self.parser)
        pool = self._pool = _BackgroundThread()
        await asyncio.to_thread(leadership.poll)
        tasks = [
            _lead_forever(leadership, LEADER_POLL_S),
            _refresh_forever(hub, self.scan_interval, evaluate, pool, Warmup(hub, self.alerts_warmup), leadership),
            _jobs_forever(hub, self.job_interval, leadership),
        ]
        if engine is not None:
            tasks += [_deliver_forever(engine, name, 1.0, leadership) for name in engine.channels]
        if hub.mirrors.names:  # every replica serves its own TensorBoards, so keeps its own mirrors
            tasks.append(hub.mirrors.run_forever())
        self._tasks = [asyncio.create_task(t) for t in tasks]

    async def stop(self) -> None:
        if self.parser is not None:
            self.parser.stop()  # a first pass over a big tree may take minutes: not a reason to wait
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.leadership.release)  # a follower takes over at its next poll
