"""The TensorBoard command line of one endpoint: ``ChildSpec``, its flags and where it answers.

The supervisor never passes a flag that makes TensorBoard write into the log root (no ``--db*``,
``--inspect``); ``ChildSpec`` rejects extra arguments that override the flags it owns.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tbhub.adapters.storage.mirror import MANIFEST as MIRROR_MANIFEST
from tbhub.core.models import EndpointSpec
from tbhub.core.places import is_url
from tbhub.errors import ConfigError

__all__ = ["ChildSpec", "check_unique"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_LOAD_FAST_CHOICES = frozenset({"true", "auto", "false"})
# Flags the supervisor owns, and flags that make TensorBoard write somewhere (``--db_import`` imports
# into a database) or do something other than serve. Extra arguments may not contain them.
_RESERVED_FLAGS = frozenset(
    {
        "--logdir",
        "--logdir_spec",
        "--host",
        "--bind_all",
        "--port",
        "--reuse_port",
        "--path_prefix",
        "--load_fast",
        "--reload_interval",
        "--db",
        "--db_import",
        "--inspect",
        "--event_file",
        "--tag",
        "--version_tb",
    }
)


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to run the TensorBoard of one endpoint.

    Invariants (checked on construction, ``ConfigError`` otherwise): ``name`` is a slug usable in a URL
    path and a file name; ``path_prefix`` starts with ``/`` and does not end with ``/``; ``port`` is
    1–65535; ``extra_args`` contains none of the flags the supervisor owns. A local ``logdir`` is
    absolute; a URL (``s3://…``) is kept as given.

    ``mirror_of``: the object-storage URL whose local mirror (the ``storage.mirror`` package)
    ``logdir`` is. TensorBoard's fast loader reads that folder; the child waits until a first sync has
    completed there, so it starts with every run in place.

    ``reload_interval`` has no default and no check here: both belong to the config's settings table
    (at least 1 s), which every endpoint's value has passed; a spec built by hand says what it wants.
    """

    name: str
    logdir: str
    port: int
    log_path: Path
    host: str = "127.0.0.1"
    load_fast: str = "true"
    path_prefix: str = ""
    extra_args: tuple[str, ...] = ()
    mirror_of: str | None = None
    reload_interval: int = field(kw_only=True)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(f"endpoint name {self.name!r} must be letters, digits, '.', '_' or '-'")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} for endpoint {self.name!r} is out of range")
        if self.load_fast not in _LOAD_FAST_CHOICES:
            raise ConfigError(f"load_fast must be one of true, auto, false, not {self.load_fast!r}")
        if not self.path_prefix:
            object.__setattr__(self, "path_prefix", f"/tb/{self.name}")
        if not self.path_prefix.startswith("/") or self.path_prefix.endswith("/"):
            raise ConfigError(f"path_prefix {self.path_prefix!r} must start and not end with '/'")
        if not self.is_remote:
            object.__setattr__(self, "logdir", os.path.abspath(os.path.expanduser(self.logdir)))
        for arg in self.extra_args:
            if arg.split("=", 1)[0] in _RESERVED_FLAGS:
                raise ConfigError(f"extra TensorBoard argument {arg!r} is set by tbhub and not allowed")

    @classmethod
    def from_endpoint(
        cls,
        endpoint: EndpointSpec,
        *,
        state_dir: Path,
        exposed: bool = False,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        mirror_dir: Path | None = None,
    ) -> ChildSpec:
        """Build the spec of an endpoint; its log goes to ``state_dir/logs/tensorboard-NAME.log``.

        ``port`` overrides ``endpoint.port``; one of them must be set (the config assigns ports).
        ``exposed`` binds all interfaces (``0.0.0.0``) instead of loopback. ``mirror_dir``: for a URL
        log root, the local mirror TensorBoard reads instead of the URL (with the fast loader).
        """
        chosen = port if port is not None else endpoint.port
        if chosen is None:
            raise ConfigError(f"endpoint {endpoint.name!r} has no port")
        remote = is_url(endpoint.logdir)
        mirrored = remote and mirror_dir is not None
        return cls(
            name=endpoint.name,
            logdir=str(mirror_dir) if mirrored else endpoint.logdir,
            port=chosen,
            log_path=Path(state_dir) / "logs" / f"tensorboard-{endpoint.name}.log",
            host="0.0.0.0" if exposed else "127.0.0.1",
            # The fast loader reads local paths (and gs://) only; "auto" falls back to the Python
            # loader where it cannot read, e.g. an s3:// URL served without a mirror.
            load_fast="auto" if remote and not mirrored else "true",
            reload_interval=endpoint.reload_interval,
            extra_args=tuple(extra_args),
            mirror_of=endpoint.logdir if mirrored else None,
        )

    @property
    def is_remote(self) -> bool:
        return is_url(self.logdir)

    @property
    def pid_path(self) -> Path:
        return self.log_path.with_suffix(".pid")

    @property
    def probe_host(self) -> str:
        """Where the supervisor itself reaches the child (a wildcard bind answers on loopback)."""
        if self.host in ("0.0.0.0", "", "localhost"):
            return "127.0.0.1"
        if self.host == "::":
            return "::1"
        return self.host

    @property
    def url(self) -> str:
        """The child's own (direct, not proxied) URL, ending in ``/``."""
        host = self.probe_host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.path_prefix}/"

    @property
    def health_url(self) -> str:
        # Cheap: answered from flags, no data-provider call, and TensorBoard logs nothing for it.
        return f"{self.url}data/environment"

    def command(self, python: str = sys.executable) -> list[str]:
        """The argv of the child. Nothing here writes into the log root."""
        return [
            python,
            "-m",
            "tensorboard.main",
            "--logdir",
            self.logdir,
            "--load_fast",
            self.load_fast,
            "--reload_interval",
            str(self.reload_interval),
            "--path_prefix",
            self.path_prefix,
            "--port",
            str(self.port),
            "--host",
            self.host,
            *self.extra_args,
        ]

    def root_problem(self) -> str | None:
        """Why the log root cannot be served right now, or ``None``. URLs are not checked here."""
        if self.is_remote:
            return None
        if self.mirror_of is not None:
            if not os.path.exists(os.path.join(self.logdir, MIRROR_MANIFEST)):
                return f"waiting for the first sync of {self.mirror_of}"
            return None
        if not os.path.exists(self.logdir):
            return f"log root {self.logdir} does not exist"
        if not os.path.isdir(self.logdir):
            return f"log root {self.logdir} is not a directory"
        if not os.access(self.logdir, os.R_OK | os.X_OK):
            return f"log root {self.logdir} is not readable"
        return None


def check_unique(specs: Sequence[ChildSpec]) -> None:
    """``ConfigError`` when two specs share a name or a port."""
    names: set[str] = set()
    ports: dict[int, str] = {}
    for spec in specs:
        if spec.name in names:
            raise ConfigError(f"endpoint {spec.name!r} is defined twice")
        names.add(spec.name)
        other = ports.setdefault(spec.port, spec.name)
        if other != spec.name:
            raise ConfigError(f"endpoints {other!r} and {spec.name!r} both use port {spec.port}")


