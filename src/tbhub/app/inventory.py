"""Scanning log roots into the index, and reading runs back from it.

``scan_endpoints`` is what every command that lists runs calls (``tbhub runs``, ``clean``, ``compare``,
retention); ``refresh`` is the background scan of one endpoint in ``serve``, which records its outcome
(an error included) instead of raising, so a page can show why an endpoint has no runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

from tbhub.adapters.crc import crc32c
from tbhub.adapters.db.store import ScanRecord
from tbhub.app.explorer import sync_run_index
from tbhub.app.services import Services
from tbhub.core.inventory import EndpointInventory, Progress, scan_endpoint
from tbhub.core.models import EndpointSpec, RunSummary
from tbhub.core.names import shown
from tbhub.core.runs import index_runs
from tbhub.errors import LogRootError, TbhubError

__all__ = ["endpoint_runs", "refresh", "scan_endpoints"]

log = logging.getLogger("tbhub.hub")


def scan_endpoints(
    services: Services,
    names: Sequence[str] | None = None,
    *,
    verify: bool = False,
    progress: Callable[[EndpointSpec], Progress | None] | None = None,
    workers: int | None = None,
) -> list[EndpointInventory]:
    """Scan the selected endpoints (all by default), updating the index in the state database.

    Raises ``UnknownEndpoint`` or ``LogRootError`` (naming the endpoint) before scanning anything when
    a selected endpoint is unknown or its log root is missing or unreadable.
    """
    specs = services.select(names)
    stores = [services.store(spec.name) for spec in specs]
    for spec in specs:  # serve: a mirrored root is scanned from its mirror, brought up to date first
        if services.sync_mirror is not None and services.mirror_folder(spec.name) is not None:
            services.sync_mirror(spec.name)
    for spec, store in zip(specs, stores, strict=True):
        try:
            store.check()
        except LogRootError as error:
            raise LogRootError(f"endpoint {spec.name!r}: {error}") from None
    return [
        scan_endpoint(
            spec,
            store,
            services.state,
            verify=verify,
            crc32c=crc32c,
            workers=workers or os.cpu_count() or 1,
            progress=progress(spec) if progress else None,
        )
        for spec, store in zip(specs, stores, strict=True)
    ]


def refresh(services: Services, name: str, *, workers: int = 1) -> ScanRecord:
    """Scan one endpoint into the index and record the outcome (an error is recorded, not raised)."""
    spec = services.spec(name)
    started = time.monotonic()
    error: str | None = None
    files = files_read = bytes_read = 0
    try:
        inv = scan_endpoint(spec, services.store(name), services.state, crc32c=crc32c, workers=workers)
        files, files_read, bytes_read = inv.files, inv.files_read, inv.bytes_read
        # The explorer's run rows follow the index here, in the background, not on a page's request.
        sync_run_index(services, [name])
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
    services.state.record_scan(record)
    return record


def endpoint_runs(services: Services, name: str) -> list[RunSummary]:
    """The runs of an endpoint as the index knows them (no event file is opened)."""
    spec = services.spec(name)
    return index_runs(spec.name, services.state.load(spec.name), layout=spec.layout)
