"""Whether a log root or an archive place is a URL (``s3://bucket/prefix``) or a local path: one rule."""

from __future__ import annotations

import re

__all__ = ["SCHEME", "is_url"]

#: ``scheme://``: a URL's scheme, as RFC 3986 spells one. ``C:\\logs`` or ``./a://b`` are paths.
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_url(place: str) -> bool:
    """True for ``scheme://...`` (``s3://bucket/prefix``, ``gs://...``, ``memory://...``); False for a path."""
    return SCHEME.match(place) is not None
