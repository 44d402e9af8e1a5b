"""Composition root: builds adapters from the config and hands them to the core's use-cases."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from tbhub.adapters.crc import crc32c
from tbhub.adapters.db.store import StateStore, open_state
from tbhub.adapters.storage.local import LocalLogStore
from tbhub.config import Config
from tbhub.core.inventory import EndpointInventory, Progress, scan_endpoint
from tbhub.core.models import EndpointSpec
from tbhub.errors import LogRootError

__all__ = ["log_store", "scan_endpoints", "state_store"]


def state_store(config: Config) -> StateStore:
    """The state database named by the config, migrated."""
    return open_state(config.state.url)


def log_store(endpoint: EndpointSpec) -> LocalLogStore:
    if "://" in endpoint.logdir:
        raise LogRootError(
            f"endpoint {endpoint.name!r}: log root {endpoint.logdir} is a URL; object storage is not supported yet"
        )
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
    stores = [log_store(spec) for spec in specs]
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
