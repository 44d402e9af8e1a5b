"""The tbhub exception tree.

User-facing errors carry a one-line message that is safe to show, a process exit
code for the CLI and an HTTP status for the hub::

    TbhubError                      (exit 1, HTTP 500)
     ├── ConfigError                bad or missing configuration (exit 2, HTTP 500)
     ├── UsageError                 a user mistake on the command line (exit 2, HTTP 400)
     │    └── UnknownEndpoint       an endpoint name that the config does not define (HTTP 404)
     ├── LogRootError               a log root that is missing or unreadable (exit 2, HTTP 503)
     ├── UnsafePathError            a path that escapes its log root (exit 2, HTTP 400)
     ├── StateError                 the state database cannot be opened or migrated (exit 1)
     ├── ServeError                 the server cannot start (port in use, ...) (exit 2)
     ├── ArchiveError               an archive cannot be written, verified or restored (exit 1)
     └── DeliveryError              a notifier could not deliver (retry later, or never: ``permanent``)

Anything that is not a ``TbhubError`` is a bug: the CLI shows its traceback.
"""

from __future__ import annotations

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
]


class TbhubError(Exception):
    """Base of every error tbhub raises on purpose."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(TbhubError):
    exit_code = 2


class UsageError(TbhubError):
    exit_code = 2
    http_status = 400


class UnknownEndpoint(UsageError):
    http_status = 404


class LogRootError(TbhubError):
    exit_code = 2
    http_status = 503


class UnsafePathError(TbhubError):
    exit_code = 2
    http_status = 400


class StateError(TbhubError):
    exit_code = 1


class ServeError(TbhubError):
    exit_code = 2


class ArchiveError(TbhubError):
    exit_code = 1


class DeliveryError(TbhubError):
    """A notification was not delivered.

    ``permanent``: retrying cannot help (the endpoint answered 404 or 410, or rejected the
    credentials): the channel should be disabled until someone fixes it. ``retry_after``: seconds the
    receiver asked us to wait (Slack's 429 ``Retry-After``), else ``None``.
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
