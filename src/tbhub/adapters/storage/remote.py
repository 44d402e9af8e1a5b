"""Log roots and archive folders given as URLs (``s3://bucket/prefix``, other fsspec URLs).

This module turns a URL and its storage options (from ``Config.storage_options``) into an fsspec
filesystem. The object-storage ``LogStore`` lives in ``objectstore.py``.

Filesystems are created fresh (``skip_instance_cache``) and without a listings cache: a log root is
listed to see what changed, so a cached listing would hide exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tbhub.core.places import SCHEME, is_url
from tbhub.errors import LogRootError

if TYPE_CHECKING:  # fsspec (and s3fs) load only when a log root is a URL: the hub stays smaller
    import fsspec

__all__ = ["is_url", "join", "open_filesystem", "protocol_of", "redact_url"]


#: Connections an S3 filesystem may hold open: at least the requests any reader keeps in flight.
MAX_CONNECTIONS = 64

#: Protocols that take the ``[s3]`` settings.
S3_PROTOCOLS = frozenset({"s3", "s3a"})


def protocol_of(url: str) -> str:
    """The scheme of ``url``, lower-case (``"s3"``); raises ``ValueError`` for a plain path."""
    match = SCHEME.match(url)
    if match is None:
        raise ValueError(f"{url!r} is not a URL")
    return match.group(1).lower()


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, safe for messages and ``--json``."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", url)


def join(url: str, *parts: str) -> str:
    """``url`` with ``parts`` appended, one ``/`` between each."""
    out = url.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


def open_filesystem(url: str, options: Mapping[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``url`` and the root path inside it (no protocol, no trailing ``/``).

    ``options`` are the storage options (``Config.storage_options(endpoint)``); for ``s3://`` they are
    ``s3fs.S3FileSystem`` keyword arguments. Raises ``LogRootError`` for an unknown protocol or a
    missing driver, with a message that never includes option values (they hold secrets).
    """
    try:
        protocol = protocol_of(url)
    except ValueError:
        raise LogRootError(f"{url} is not a URL") from None
    kwargs: dict[str, Any] = dict(options)
    kwargs.setdefault("skip_instance_cache", True)
    if protocol in S3_PROTOCOLS:
        kwargs.setdefault("use_listings_cache", False)
        # botocore's defaults wait 60 s per read and retry a refused connection for ~10 s: a
        # misconfigured endpoint should fail a command quickly, a slow one still succeed. Its pool
        # of 10 connections would cap the requests in flight (the scanner's 16, the mirror's 32).
        kwargs.setdefault("config_kwargs", {"connect_timeout": 5, "read_timeout": 60,
                                            "retries": {"max_attempts": 3, "mode": "standard"},
                                            "max_pool_connections": MAX_CONNECTIONS})
    try:
        import fsspec

        fs, path = fsspec.url_to_fs(url, **kwargs)
    except ImportError as error:
        raise LogRootError(f"{redact_url(url)}: no driver for {protocol}:// is installed ({error.name})") from None
    except ValueError as error:
        if "Protocol not known" in str(error):
            raise LogRootError(f"{redact_url(url)}: unknown storage protocol {protocol}://") from None
        raise
    root = str(path).rstrip("/")
    if not root:
        raise LogRootError(f"{redact_url(url)}: a URL log root needs a bucket (s3://BUCKET/PREFIX)")
    return fs, root
