"""Where archives may go: never inside a log root, and never around one.

An archive folder inside a log root becomes part of what later cleanups delete (``clean --archive-to
ROOT/ds/runC`` put runD's archive inside runC; the next clean of runC removed the only copy of runD),
and a log root inside the archive folder mixes runs with archives. Both are refused, for local folders
(compared after resolving symlinks, as the file system will) and for object-storage URLs (compared as
``scheme://bucket/prefix/`` prefixes). A local folder and a URL never overlap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from tbhub.core.places import is_url

__all__ = ["overlap", "overlapping_endpoint", "within_any"]


def _url_prefix(url: str) -> str:
    return url.rstrip("/") + "/"


def _real(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def _contains(outer: str, inner: str) -> bool:
    """True when the resolved local folder ``inner`` is ``outer`` or below it."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def overlap(destination: str, root: str) -> bool:
    """True when ``destination`` is ``root``, lies inside it, or contains it."""
    if is_url(destination) != is_url(root):
        return False
    if is_url(destination):
        a, b = _url_prefix(destination), _url_prefix(root)
        return a.startswith(b) or b.startswith(a)
    a, b = _real(destination), _real(root)
    return _contains(a, b) or _contains(b, a)


def overlapping_endpoint(destination: str, roots: Mapping[str, str]) -> str | None:
    """The first endpoint (of name -> log root) whose log root overlaps ``destination``, or ``None``."""
    return next((name for name, root in roots.items() if overlap(destination, root)), None)


def within_any(destination: str, places: Iterable[str]) -> bool:
    """True when ``destination`` is one of ``places`` or inside one (symlinks resolved)."""
    for place in places:
        if is_url(destination) != is_url(place):
            continue
        if is_url(destination):
            if _url_prefix(destination).startswith(_url_prefix(place)):
                return True
        elif _contains(_real(place), _real(destination)):
            return True
    return False
