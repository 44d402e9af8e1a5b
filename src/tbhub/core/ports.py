"""Contracts between the core and its adapters.

Serving and scanning code receive these as arguments; nothing in ``tbhub.core`` constructs an adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import BinaryIO, Protocol

from tbhub.core.models import Alert, EventFileScan, FileEntry, SkippedEntry

__all__ = ["Crc32c", "Discovery", "LogStore", "Notifier", "ScanIndex"]


class Crc32c(Protocol):
    """CRC-32C (Castagnoli) of ``data``, unmasked, as an unsigned 32-bit int."""

    def __call__(self, data: bytes, /) -> int: ...


class Discovery(Protocol):
    """The result of walking a log root once."""

    files: list[FileEntry]
    skipped: list[SkippedEntry]


class LogStore(Protocol):
    """Read access to one log root (local folder now, object storage later).

    Invariants:

    * ``discover`` lists every event file (a file whose name contains ``tfevents``) below the root,
      sorted by ``relpath``; it never follows a symlink whose target lies outside the root and
      reports such links in ``skipped`` instead. It never writes anything.
    * ``open`` returns a binary stream positioned at 0; ``relpath`` must be one ``discover`` returned
      (anything escaping the root raises ``UnsafePathError``).
    * Raises ``LogRootError`` when the root itself is missing or unreadable.
    """

    root: str

    def discover(self) -> Discovery: ...

    def open(self, relpath: str) -> BinaryIO: ...

    def local_path(self, relpath: str) -> str | None:
        """The absolute local path of ``relpath``, or ``None`` when the store is not a local disk."""
        ...

    def exists(self, relpath: str) -> bool:
        """True when ``relpath`` (a file, or a folder or prefix with something below it) is there."""
        ...

    def url(self, relpath: str = "") -> str:
        """Where ``relpath`` is, for messages: a path or a URL."""
        ...


class ScanIndex(Protocol):
    """The scanner's incremental index, kept in the state database, one row per event file.

    ``load`` returns the rows of one endpoint keyed by relpath; ``save`` upserts rows and deletes rows
    of that endpoint whose relpath is in ``removed``, in one transaction.
    """

    def load(self, endpoint: str) -> Mapping[str, EventFileScan]: ...

    def save(self, endpoint: str, scans: Iterable[EventFileScan], removed: Iterable[str]) -> None: ...




class Notifier(Protocol):
    """One notification channel (Slack, webhook, email).

    ``send`` delivers one alert or raises ``tbhub.errors.DeliveryError`` (with ``permanent`` and
    ``retry_after`` filled in as the receiver said); it never blocks longer than its timeout and
    never logs secrets. ``name`` is the channel's stable name in the config.
    """

    name: str

    def send(self, alert: Alert) -> None: ...
