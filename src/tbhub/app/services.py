"""The single composition root: every adapter a process uses, built once from the config.

A CLI command builds one ``Services`` for its run; ``tbhub serve`` builds one for the hub process and
hands it to the web app, the background loops and the alert engine. Nobody else constructs a log
store, opens the state database or picks object-storage options: a setting (say an endpoint's
``reload_interval``) goes from the config into ``Services`` and from there to its one use.

Everything is built lazily, so a command that never touches the database never opens one, and a
log store is built once per endpoint (one connection pool per object-storage root).
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.alert_rules import AlertRuleStore, RuleOverride
from tbhub.adapters.db.annotations import AnnotationStore, Note
from tbhub.adapters.db.store import StateStore, open_state, shown_url, sqlite_file
from tbhub.adapters.storage.local import LocalLogStore
from tbhub.adapters.storage.mirror import SYNC_REQUESTS, MirroredLogStore
from tbhub.adapters.storage.objectstore import ObjectLogStore
from tbhub.adapters.storage.remote import is_url
from tbhub.config import Config
from tbhub.core.models import EndpointSpec
from tbhub.errors import LogRootError

__all__ = [
    "AccountStore", "AlertRuleStore", "AnnotationStore", "AnyLogStore", "Note", "RuleOverride", "Services", "actor",
    "build_log_store",
]

#: A log root on local disk or in object storage: both implement the ``LogStore`` port and the
#: manage verbs (``check``, ``delete_run``, ``finish_trash``, ``commit``).
AnyLogStore = LocalLogStore | ObjectLogStore


def actor() -> str:
    """Who is acting, for the history: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def build_log_store(endpoint: EndpointSpec, options: Mapping[str, Any]) -> AnyLogStore:
    """The store of ``endpoint``'s log root: ``ObjectLogStore`` for a URL (``s3://bucket/prefix``) with
    the object-storage ``options``, else ``LocalLogStore``."""
    if is_url(endpoint.logdir):
        try:
            return ObjectLogStore(endpoint.logdir, options)
        except LogRootError as error:
            raise LogRootError(f"endpoint {endpoint.name!r}: {error}") from None
    return LocalLogStore(endpoint.logdir)


class Services:
    """The adapters of one process, built from ``config`` on first use and kept.

    ``state``: an already open state database to use instead of the config's (the tests, and a hub
    that opened it early); it is then not closed by ``close()``.

    ``create_state=False`` (commands that only report, such as ``tbhub usage``): when the configured
    SQLite file does not exist, ``state`` is an empty database in memory for this process, so a scan
    still works and nothing is written to disk; ``state_exists()`` tells which it was.
    """

    def __init__(self, config: Config, *, state: StateStore | None = None, create_state: bool = True,
                 mirrored: bool = False) -> None:
        self.config = config
        #: ``tbhub serve``: URL log roots are mirrored, and their event files read from the mirror.
        self.mirrored = mirrored
        #: Brings endpoint NAME's mirror up to date now (the hub's ``MirrorKeeper.sync``): before a scan
        #: that must be fresh (``scan_endpoints``), after the bucket was changed (clean, restore).
        self.sync_mirror: Callable[[str], object] | None = None
        self._given_state = state
        self._create_state = create_state
        self._stores: dict[str, AnyLogStore] = {}

    # -- endpoints ------------------------------------------------------------------------------------
    @cached_property
    def specs(self) -> dict[str, EndpointSpec]:
        """Every configured endpoint by name (``UsageError`` when there is none)."""
        return {spec.name: spec for spec in self.config.endpoint_specs()}

    def spec(self, name: str) -> EndpointSpec:
        spec = self.specs.get(name)
        if spec is None:
            (spec,) = self.select([name])  # UnknownEndpoint, naming the known ones
        return spec

    def select(self, names: Sequence[str] | None = None) -> list[EndpointSpec]:
        """The endpoints ``names`` (``None`` or ``["all"]``: all); ``UnknownEndpoint`` names the known."""
        return self.config.endpoint_specs(names)

    def storage_options(self, endpoint: str | None = None) -> Mapping[str, Any]:
        """The object-storage options of ``endpoint`` (or the global ones). Holds secrets: never log it."""
        if endpoint is not None and endpoint not in self.config.endpoints:
            endpoint = None
        return self.config.storage_options(endpoint)

    def store(self, name: str) -> AnyLogStore:
        """The log store of endpoint ``name``, kept for the life of the process."""
        store = self._stores.get(name)
        if store is None:
            spec = self.spec(name)
            folder = self.mirror_folder(name)
            if folder is not None:  # serve: the mirror already holds every byte; read them there
                try:
                    store = MirroredLogStore(spec.logdir, self.storage_options(name), folder,
                                             on_change=lambda: self._mirror_changed(name))
                except LogRootError as error:
                    raise LogRootError(f"endpoint {name!r}: {error}") from None
            else:
                store = build_log_store(spec, self.storage_options(name))
            self._stores[name] = store
        return store

    def _mirror_changed(self, name: str) -> None:
        if self.sync_mirror is not None:
            self.sync_mirror(name)

    def mirror_folder(self, name: str) -> Path | None:
        """The local mirror of endpoint ``name``'s URL log root when this process keeps one (``serve``)."""
        if not self.mirrored or not is_url(self.spec(name).logdir):
            return None
        from tbhub.app.tensorboards import mirror_dir  # the supervisor's module: only for serve

        return mirror_dir(self.config, name)

    def sync_requests(self, name: str) -> int:
        """Requests in flight while mirroring endpoint ``name`` (``[s3] sync_requests``)."""
        own = self.config.endpoints[name].s3
        settings = own.over(self.config.s3) if own is not None else self.config.s3
        return settings.sync_requests or SYNC_REQUESTS

    # -- the state database and its aggregates --------------------------------------------------------
    @cached_property
    def state(self) -> StateStore:
        """The state database named by the config, migrated (opened on first use; a SQLite file is
        created when missing)."""
        if self._given_state is not None:
            return self._given_state
        if not self._create_state and not self.state_exists():
            return open_state("sqlite://")  # in memory: gone with the process
        return open_state(self.config.state.url)

    def state_exists(self) -> bool:
        """Whether the configured state database exists (a server database always counts as existing)."""
        if self._given_state is not None:
            return True
        file = self.state_file()
        return file is None or file.is_file()

    def state_file(self) -> Path | None:
        """The SQLite file of the configured state database; ``None`` for a database server (or an
        in-memory or malformed URL, which ``state`` reports)."""
        return sqlite_file(self.config.state.url)

    def describe_state(self) -> str:
        """The state database for a person: the SQLite file's path, or the server URL without its password."""
        return shown_url(self.config.state.url)

    def existing_state(self) -> StateStore | None:
        """The state database if there is one, for commands that only read it: ``None`` when the
        configured SQLite file does not exist yet (nothing is created). A server database (PostgreSQL)
        is always connected: whether it holds tbhub's tables is for the migration to say."""
        return self.state if self.state_exists() else None

    @cached_property
    def accounts(self) -> AccountStore:
        return AccountStore(self.state.engine)

    @cached_property
    def annotations(self) -> AnnotationStore:
        return AnnotationStore(self.state.engine)

    @cached_property
    def alert_rules(self) -> AlertRuleStore:
        return AlertRuleStore(self.state.engine)

    # -- lifetime -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close what this object opened (a given state database stays open)."""
        if "state" in self.__dict__ and self._given_state is None:
            self.state.dispose()
            del self.__dict__["state"]

    def __enter__(self) -> Services:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
