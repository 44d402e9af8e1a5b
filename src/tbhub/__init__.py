"""tbhub: the self-hosted, always-on home for an ML team's TensorBoard logs."""

from __future__ import annotations

import sys

from tbhub.errors import (
    ArchiveError,
    ConfigError,
    DeliveryError,
    LogRootError,
    ServeError,
    StateError,
    TbhubError,
    UnknownEndpoint,
    UnsafePathError,
    UsageError,
)

# httpx's package imports its command-line client, which imports rich, click and pygments when they are
# installed (made lazy only in the httpx2 fork, pydantic/httpx2#947): ~4 MB and ~60 ms in every tbhub
# process, for a tool tbhub never runs. A module marked absent makes httpx fall back to the stub it
# has for installs without those libraries.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__version__ = "0.1.0"

__all__ = [
    "ArchiveError",
    "ConfigError",
    "DeliveryError",
    "LogRootError",
    "ServeError",
    "StateError",
    "TbhubError",
    "UnknownEndpoint",
    "UnsafePathError",
    "UsageError",
    "__version__",
]
