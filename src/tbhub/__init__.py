"""tbhub: the self-hosted, always-on home for an ML team's TensorBoard logs."""

from __future__ import annotations

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
