"""The serving side: endpoints, their TensorBoards and mirrors, and what the pages read of the index.

``Hub`` is what ``tbhub serve`` keeps for the life of the process. Pages read ``view()``, which comes
from the state database; only ``refresh()`` scans, and it runs in the background. Nothing here writes
below a log root.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from tbhub.adapters.db.leader import Leadership
from tbhub.adapters.db.store import ScanRecord, StateStore
from tbhub.adapters.storage.mirror import MANIFEST, Mirror, MirrorKeeper, MirrorPlan, MirrorStatus, SyncStats
from tbhub.adapters.storage.remote import is_url, open_filesystem
from tbhub.adapters.tensorboard.supervisor import ChildState, ChildStatus, SupervisorTiming, TensorBoardSupervisor
from tbhub.app.inventory import endpoint_runs, refresh
from tbhub.app.services import AnyLogStore, Services
from tbhub.app.tensorboards import mirror_dir, tensorboard_supervisor
from tbhub.app.usage import indexed_usage, snapshot_usage_if_due
from tbhub.config import Config
from tbhub.core.models import EndpointSpec, RunSummary
from tbhub.core.usage import DatasetUsage

__all__ = ["ChildState", "EndpointView", "Hub", "Leadership", "endpoint_mirror"]


def endpoint_mirror(services: Services, endpoint: EndpointSpec) -> MirrorPlan:
    """The mirror of a URL log root, synced every reload interval."""

    def build() -> Mirror:
        fs, root = open_filesystem(endpoint.logdir, services.storage_options(endpoint.name))
        return Mirror(fs, root, mirror_dir(services.config, endpoint.name), label=endpoint.logdir,
                      requests=services.sync_requests(endpoint.name))

    folder = mirror_dir(services.config, endpoint.name)
    return MirrorPlan(endpoint.logdir, float(endpoint.reload_interval), build,
                      ready=lambda: (folder / MANIFEST).is_file())


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
    """The services of the hub process, its TensorBoard supervisor and the mirrors of URL log roots."""

    def __init__(
        self,
        services: Services,
        supervisor: TensorBoardSupervisor | None = None,
        *,
        scan_workers: int | None = None,
        mirrors: Mapping[str, MirrorPlan] | None = None,
    ) -> None:
        self.services = services
        self.supervisor = supervisor
        self.mirrors = MirrorKeeper(mirrors or {}, on_sync=self._mirror_synced)
        self.specs = services.specs
        # One worker by default: the hub is multi-threaded (uvicorn, the supervisor), where forking
        # worker processes is unsafe, and the TensorBoards need the cores more than the index does.
        self._workers = scan_workers or 1

    @property
    def config(self) -> Config:
        return self.services.config

    @property
    def state(self) -> StateStore:
        return self.services.state

    def store(self, name: str) -> AnyLogStore:
        return self.services.store(name)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        timing: SupervisorTiming | None = None,
        supervisor: TensorBoardSupervisor | None = None,
    ) -> Hub:
        """Build the services and the supervisor with one child per endpoint (``supervisor``: one
        already built, and maybe started, by ``tensorboard_supervisor``).

        A URL log root (``s3://...``) is served from a local mirror under the state directory
        (``mirrors/NAME``), kept in sync every reload interval by ``self.mirrors``. Their first sync
        begins here, in the background: the TensorBoard of such an endpoint starts when it is done.
        """
        services = Services(config, mirrored=True)  # a mirrored root's event files are read from its mirror
        services.state  # noqa: B018  (open and migrate the database now: a failure stops the start)
        mirrors = {s.name: endpoint_mirror(services, s) for s in services.specs.values() if is_url(s.logdir)}
        if supervisor is None:
            supervisor = tensorboard_supervisor(config, timing=timing)
        hub = cls(services, supervisor, mirrors=mirrors)
        services.sync_mirror = hub.mirrors.sync  # fresh scans and changes to a bucket sync its mirror
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
        return self.services.spec(name)

    def refresh(self, name: str) -> ScanRecord:
        """Scan one endpoint into the index and record the outcome (an error is recorded, not raised)."""
        return refresh(self.services, name, workers=self._workers)

    def refresh_all(self) -> list[ScanRecord]:
        return [self.refresh(name) for name in self.specs]

    def runs(self, name: str) -> list[RunSummary]:
        """The runs of an endpoint as the index knows them."""
        return endpoint_runs(self.services, name)

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
        return indexed_usage(self.services, time.time())

    def snapshot_usage_if_due(self, now: float) -> bool:
        """Record a usage snapshot from the index when the newest is a day old (or none exists)."""
        return snapshot_usage_if_due(self.services, now)

    def close(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        self.services.close()
