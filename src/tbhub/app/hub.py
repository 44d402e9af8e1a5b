"""Composition root: builds adapters from the config and hands them to the core's use-cases."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tbhub.adapters.crc import crc32c
from tbhub.adapters.db.store import ScanRecord, StateStore, open_state
from tbhub.adapters.storage.local import LocalLogStore
from tbhub.adapters.storage.mirror import Mirror, MirrorKeeper, MirrorPlan, MirrorStatus, SyncStats
from tbhub.adapters.storage.objectstore import ObjectLogStore
from tbhub.adapters.storage.remote import is_url, open_filesystem
from tbhub.adapters.tensorboard.supervisor import (
    ChildStatus,
    SupervisorTiming,
    TensorBoardSupervisor,
)
from tbhub.app.tensorboards import mirror_dir, tensorboard_supervisor
from tbhub.config import Config
from tbhub.core.compare import CompareRow, Target, build_rows
from tbhub.core.inventory import EndpointInventory, Progress, scan_endpoint
from tbhub.core.models import EndpointSpec, RunSummary
from tbhub.core.names import shown
from tbhub.core.runs import index_runs
from tbhub.core.scalars import (
    EventDecoder,
    ScalarFileState,
    ScalarPoint,
    TagSummary,
    iter_points,
    merge_tags,
    run_tag,
    summarize_file,
)
from tbhub.core.status import StatusVerdict, run_status
from tbhub.core.usage import DatasetUsage, Snapshot, growth, usage_by_dataset
from tbhub.errors import LogRootError, TbhubError, UnknownEndpoint

__all__ = [
    "AnyLogStore",
    "EndpointView",
    "Hub",
    "alert_history",
    "compare_runs",
    "endpoint_mirror",
    "log_store",
    "mirror_dir",
    "run_scalars",
    "run_statuses",
    "scan_endpoints",
    "state_from_json",
    "state_store",
    "state_to_json",
    "usage_report",
]

log = logging.getLogger("tbhub.hub")

#: The server records a usage snapshot when the newest is older than this.
USAGE_SNAPSHOT_EVERY_S = 86400.0


def usage_report(state: StateStore, runs: Sequence[RunSummary], now: float, *, record: bool) -> list[DatasetUsage]:
    """Usage per dataset of ``runs`` with its growth over 7 and 30 days; ``record`` saves a snapshot."""
    current = usage_by_dataset(runs)
    history = state.usage_history()
    if record:
        state.record_usage([Snapshot(now, u.endpoint, u.dataset, u.size_bytes, u.runs, u.events) for u in current])
    return growth(current, history, now)


def state_store(config: Config) -> StateStore:
    """The state database named by the config, migrated."""
    return open_state(config.state.url)


#: A log root on local disk or in object storage: both implement the ``LogStore`` port and the
#: manage verbs (``check``, ``delete_run``, ``finish_trash``, ``commit``).
AnyLogStore = LocalLogStore | ObjectLogStore


def storage_options(config: Config | None, endpoint: str | None = None) -> Mapping[str, Any]:
    """The object-storage options of ``endpoint`` (or the global ones); none without a config, so the
    AWS environment alone decides. Holds secrets: never log it."""
    if config is None:
        return {}
    if endpoint is not None and endpoint not in config.endpoints:
        endpoint = None
    return config.storage_options(endpoint)


def log_store(endpoint: EndpointSpec, config: Config | None = None) -> AnyLogStore:
    """The store of ``endpoint``'s log root: ``ObjectLogStore`` for a URL (``s3://bucket/prefix``),
    with the ``[s3]`` settings of ``config``, else ``LocalLogStore``."""
    if is_url(endpoint.logdir):
        try:
            return ObjectLogStore(endpoint.logdir, storage_options(config, endpoint.name))
        except LogRootError as error:
            raise LogRootError(f"endpoint {endpoint.name!r}: {error}") from None
    return LocalLogStore(endpoint.logdir)


def scan_endpoints(
    config: Config,
    names: Sequence[str] | None = None,
    *,
    verify: bool = False,
    state: StateStore | None = None,
    progress: Callable[[EndpointSpec], Progress | None] | None = None,
    workers: int | None = None,
) -> list[EndpointInventory]:
    """Scan the selected endpoints (all by default), updating the index in the state database.

    Raises ``UnknownEndpoint`` or ``LogRootError`` (naming the endpoint) before scanning anything when
    a selected endpoint is unknown or its log root is missing or unreadable.
    """
    specs = config.endpoint_specs(names)
    stores = [log_store(spec, config) for spec in specs]
    for spec, store in zip(specs, stores, strict=True):
        try:
            store.check()
        except LogRootError as error:
            raise LogRootError(f"endpoint {spec.name!r}: {error}") from None
    own_state = state is None
    db = state or state_store(config)
    try:
        return [
            scan_endpoint(
                spec,
                store,
                db,
                verify=verify,
                crc32c=crc32c,
                workers=workers or os.cpu_count() or 1,
                progress=progress(spec) if progress else None,
            )
            for spec, store in zip(specs, stores, strict=True)
        ]
    finally:
        if own_state:
            db.dispose()


# -- the scalar index: ScalarFileState <-> JSON --------------------------------------------------------
def state_to_json(state: ScalarFileState) -> str:
    data = asdict(state)
    data["tags"] = {tag: asdict(summary) for tag, summary in state.tags.items()}
    return json.dumps(data)


def state_from_json(text: str) -> ScalarFileState:
    data = json.loads(text)
    tags = {tag: TagSummary(**{**s, "tail": tuple(s["tail"])}) for tag, s in data.pop("tags").items()}
    return ScalarFileState(**data, tags=tags)


def run_scalars(
    state: StateStore,
    endpoint: EndpointSpec,
    runs: Sequence[RunSummary],
    decoder: EventDecoder,
    *,
    prune: bool = True,
    parse: bool = True,
    config: Config | None = None,
) -> dict[str, dict[str, TagSummary]]:
    """Per run relpath, its tag summaries; parses only the event-file bytes added since the last call.

    The per-file state lives in the state database (``scalar_files``), so any process (the alert
    engine in ``serve``, ``tbhub compare``) continues where the last one stopped. ``prune`` drops
    the states of files not among ``runs``: pass ``False`` when ``runs`` is only a selection.
    ``parse=False`` only reads what the database holds (the hub's request path never parses).
    ``config`` gives the object-storage settings of a URL log root.
    """
    store = log_store(endpoint, config)
    known = state.load_scalar_states(endpoint.name)
    states: dict[str, ScalarFileState] = {}
    changed: list[tuple[str, int, int, int, str]] = []
    for run in runs:
        for f in run.files:
            old = known.get(f.relpath)
            if old is not None and old[:3] == (f.inode, f.size, f.mtime_ns):
                states[f.relpath] = state_from_json(old[3])
                continue
            previous = state_from_json(old[3]) if old is not None else None
            if not parse:
                if previous is not None:
                    states[f.relpath] = previous
                continue
            try:
                with store.open(f.relpath) as fh:
                    new = summarize_file(
                        fh,
                        previous,
                        relpath=f.relpath,
                        inode=f.inode,
                        size=f.size,
                        mtime_ns=f.mtime_ns,
                        decoder=decoder,
                        crc32c=crc32c,
                    )
            except FileNotFoundError:
                continue  # deleted since the scan; the next scan drops it
            states[f.relpath] = new
            changed.append((f.relpath, f.inode, f.size, f.mtime_ns, state_to_json(new)))
    wanted = {f.relpath for run in runs for f in run.files}
    removed = [relpath for relpath in known if relpath not in wanted] if prune else []
    if changed or removed:
        state.save_scalar_states(endpoint.name, changed, removed)
    tags: dict[str, dict[str, TagSummary]] = {}
    for run in runs:
        files = [states[f.relpath] for f in run.files if f.relpath in states]
        loose = len(run.files) == 1 and run.files[0].relpath == run.relpath
        root = run.relpath.rpartition("/")[0] if loose else run.relpath
        tags[run.relpath] = merge_tags(root, files)
    return tags


def endpoint_mirror(config: Config, endpoint: EndpointSpec) -> MirrorPlan:
    """The mirror of a URL log root, synced every reload interval."""

    def build() -> Mirror:
        fs, root = open_filesystem(endpoint.logdir, storage_options(config, endpoint.name))
        return Mirror(fs, root, mirror_dir(config, endpoint.name), label=endpoint.logdir)

    return MirrorPlan(endpoint.logdir, float(endpoint.reload_interval), build)


@dataclass(frozen=True, slots=True)
class EndpointView:
    """What the hub shows of one endpoint, read from the index (no event file is opened)."""

    spec: EndpointSpec
    runs: list[RunSummary]
    child: ChildStatus | None
    last_scan: ScanRecord | None
    mirror: MirrorStatus | None = None  # a URL log root: the local copy its TensorBoard reads

    @property
    def size_bytes(self) -> int:
        return sum(r.size_bytes for r in self.runs)

    @property
    def newest(self) -> RunSummary | None:
        return max(self.runs, key=lambda r: r.last_modified_ns, default=None)


class Hub:
    """The serving side of tbhub: endpoints, their TensorBoards, and the index the scanner keeps.

    Pages read ``view()``, which comes from the state database; only ``refresh()`` scans, and it runs
    in the background. Nothing here writes below a log root.
    """

    def __init__(
        self,
        config: Config,
        state: StateStore,
        supervisor: TensorBoardSupervisor | None = None,
        *,
        scan_workers: int | None = None,
        mirrors: Mapping[str, MirrorPlan] | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.supervisor = supervisor
        self.mirrors = MirrorKeeper(mirrors or {}, on_sync=self._mirror_synced)
        self.specs = {spec.name: spec for spec in config.endpoint_specs()}
        # One worker by default: the hub is multi-threaded (uvicorn, the supervisor), where forking
        # worker processes is unsafe, and the TensorBoards need the cores more than the index does.
        self._workers = scan_workers or 1
        self._stores: dict[str, AnyLogStore] = {}

    def store(self, name: str) -> AnyLogStore:
        """The log store of endpoint ``name``, kept across scans (one connection pool per root)."""
        store = self._stores.get(name)
        if store is None:
            store = self._stores[name] = log_store(self.spec(name), self.config)
        return store

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        timing: SupervisorTiming | None = None,
        supervisor: TensorBoardSupervisor | None = None,
    ) -> Hub:
        """Build the state store and the supervisor with one child per endpoint (``supervisor``: one
        already built, and maybe started, by ``tensorboard_supervisor``).

        A URL log root (``s3://...``) is served from a local mirror under the state directory
        (``mirrors/NAME``), kept in sync every reload interval by ``self.mirrors``. Their first sync
        begins here, in the background: the TensorBoard of such an endpoint starts when it is done.
        """
        state = state_store(config)
        mirrors = {spec.name: endpoint_mirror(config, spec) for spec in config.endpoint_specs() if is_url(spec.logdir)}
        if supervisor is None:
            supervisor = tensorboard_supervisor(config, timing=timing)
        hub = cls(config, state, supervisor, mirrors=mirrors)
        hub.mirrors.start()
        return hub

    def _mirror_synced(self, name: str, stats: SyncStats, first: bool) -> None:
        """Start the endpoint's TensorBoard once its mirror holds every run; restart it when event
        files were replaced rather than appended to (the fast loader keeps reading an open file)."""
        if self.supervisor is None:
            return
        if stats.files_replaced and not first:
            self.supervisor.restart(name, f"{stats.files_replaced} event files replaced in {self.spec(name).logdir}")
        else:
            self.supervisor.retry_now(name)

    def spec(self, name: str) -> EndpointSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise UnknownEndpoint(f"unknown endpoint {name!r}") from None

    def refresh(self, name: str) -> ScanRecord:
        """Scan one endpoint into the index and record the outcome (an error is recorded, not raised)."""
        spec = self.spec(name)
        started = time.monotonic()
        error: str | None = None
        files = files_read = bytes_read = 0
        try:
            inv = scan_endpoint(spec, self.store(name), self.state, crc32c=crc32c, workers=self._workers)
            files, files_read, bytes_read = inv.files, inv.files_read, inv.bytes_read
        except TbhubError as exc:
            error = exc.message
        except OSError as exc:
            error = f"cannot scan log root {spec.logdir}: {exc.strerror or exc}"
        except Exception as exc:
            # Anything else (a database refusing a row, a bug) must still show on the endpoint's page
            # and in /api: an unrecorded failure looked like a healthy endpoint with no runs.
            log.exception("scanning endpoint %s failed", name)
            error = f"scan failed: {type(exc).__name__}: {shown(str(exc))}"
        record = ScanRecord(name, time.time(), time.monotonic() - started, files, files_read, bytes_read, error)
        self.state.record_scan(record)
        return record

    def refresh_all(self) -> list[ScanRecord]:
        return [self.refresh(name) for name in self.specs]

    def runs(self, name: str) -> list[RunSummary]:
        """The runs of an endpoint as the index knows them."""
        spec = self.spec(name)
        return index_runs(spec.name, self.state.load(spec.name))

    def child(self, name: str) -> ChildStatus | None:
        if self.supervisor is None:
            return None
        return self.supervisor.child_status(name)

    def view(self, name: str) -> EndpointView:
        return EndpointView(
            self.spec(name), self.runs(name), self.child(name), self.state.last_scan(name), self.mirrors.status(name)
        )

    def views(self) -> list[EndpointView]:
        return [self.view(name) for name in self.specs]

    def all_runs(self) -> list[RunSummary]:
        return [run for name in self.specs for run in self.runs(name)]

    def usage(self) -> list[DatasetUsage]:
        return usage_report(self.state, self.all_runs(), time.time(), record=False)

    def snapshot_usage_if_due(self, now: float) -> bool:
        """Record a usage snapshot from the index when the newest is a day old (or none exists)."""
        history = self.state.usage_history(since=now - USAGE_SNAPSHOT_EVERY_S)
        if history:
            return False
        usage_report(self.state, self.all_runs(), now, record=True)
        return True

    def close(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        self.state.dispose()


def compare_runs(
    config: Config,
    state: StateStore,
    *,
    names: Sequence[str] | None = None,
    dataset_glob: str | None = None,
    tags: Sequence[str] = (),
    target: Target | None = None,
    scan: bool = True,
) -> list[CompareRow]:
    """Rows for ``tbhub compare`` and ``/compare``.

    ``scan=True`` (the CLI): a fresh scan, scalar summaries brought up to date, and a ``target`` read
    from the points. ``scan=False`` (the hub): only what the index and the scalar index hold, no file
    is opened (the background alert engine keeps the scalar index fresh).
    """
    from tbhub.adapters.scalar_decoder import ProtobufDecoder  # protobuf: only when comparing

    decoder = ProtobufDecoder()
    rows: list[CompareRow] = []
    specs = config.endpoint_specs(names)
    if scan:
        inventories = {inv.endpoint.name: inv.runs for inv in scan_endpoints(config, names, state=state)}
    else:
        inventories = {s.name: index_runs(s.name, state.load(s.name)) for s in specs}
    for spec in specs:
        runs = inventories[spec.name]
        selected = [r for r in runs if dataset_glob is None or fnmatch.fnmatchcase(r.dataset, dataset_glob)]
        summaries = run_scalars(
            state, spec, selected, decoder, prune=scan and len(selected) == len(runs), parse=scan, config=config
        )
        store = log_store(spec, config)

        def points(run: RunSummary, tag: str, store: AnyLogStore = store) -> Iterator[ScalarPoint]:
            for f in run.files:
                subdir = f.relpath[len(run.relpath) + 1 :].rpartition("/")[0] if f.relpath != run.relpath else ""
                with store.open(f.relpath) as fh:
                    for point in iter_points(fh, None, inode=f.inode, size=f.size, decoder=decoder, crc32c=crc32c):
                        if run_tag(subdir, point[0]) == tag:
                            yield point

        rows.extend(build_rows(selected, summaries, list(tags), target=target if scan else None, target_points=points))
    return rows


def run_statuses(
    config: Config,
    state: StateStore,
    endpoint: EndpointSpec,
    runs: Sequence[RunSummary],
    decoder: EventDecoder,
    *,
    now_ns: int,
) -> tuple[dict[str, StatusVerdict], dict[str, dict[str, TagSummary]]]:
    """Each run's status (by relpath) under the endpoint's rules, and the tag summaries behind it."""
    rules = config.alerts.rules_for(endpoint.name)
    tags = run_scalars(state, endpoint, runs, decoder, config=config)
    store = log_store(endpoint, config)
    verdicts = {}
    for run in runs:
        rule = rules.rule_for(run.dataset)
        if isinstance(store, ObjectLogStore):
            markers = {m for m in rule.marker_files if store.exists(f"{run.relpath}/{m}")}
        else:
            folder = store.resolve(run.relpath)
            markers = {m for m in rule.marker_files if os.path.exists(os.path.join(folder, m))}
        verdicts[run.relpath] = run_status(run, tags.get(run.relpath, {}), rule, now_ns=now_ns, markers=markers)
    return verdicts, tags


def alert_history(state: StateStore, limit: int = 100) -> list[dict[str, Any]]:
    """The newest alerts, newest first, each with the last delivery attempt per channel (JSON-ready)."""
    out = []
    for a in state.alerts(limit=limit):
        per_channel: dict[str, dict[str, Any]] = {}
        for d in state.deliveries(a.id):
            per_channel[d["channel"]] = {"outcome": d["outcome"], "attempts": d["attempt"], "error": d["error"]}
        out.append(
            {
                "id": a.id,
                "key": a.key,
                "endpoint": a.endpoint,
                "dataset": a.dataset,
                "run": a.run,
                "status": a.status,
                "at": a.at,
                "message": a.message,
                "details": json.loads(a.details),
                "url": a.url,
                "deliveries": per_channel,
            }
        )
    return out
