"""The target of ``/usage`` and ``/trends`` (``?target=eval/loss<0.5``, and ``target`` of ``/api/usage``
and ``/api/trends``): parsed, looked up with the app's ``TargetSearch`` over one cache per app (made on
first use, in ``app.state``: no module state), and what the search read, for the page to say."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from tbhub.app.targets import HUB_TARGET_READ_LIMIT, TargetCache, TargetSearch
from tbhub.core.compare import parse_target
from tbhub.core.units import format_size
from tbhub.errors import UsageError

__all__ = ["PENDING_HEADER", "TARGET_EXAMPLE", "pending_header", "read_note", "target_search"]

#: The example the target fields show.
TARGET_EXAMPLE = "eval/loss<0.5"

#: The API's answer with a target: how many runs were not read to the end yet (their hit unknown).
PENDING_HEADER = "X-Tbhub-Target-Pending"


def _cache(request: Request) -> TargetCache:
    cache: TargetCache | None = getattr(request.app.state, "target_cache", None)
    if cache is None:
        cache = request.app.state.target_cache = TargetCache()
    return cache


def target_search(request: Request, text: str | None) -> TargetSearch | None:
    """A search for the target ``text`` (``None`` or blank: none asked); ``UsageError`` (400) when it
    does not parse."""
    if text is None or not text.strip():
        return None
    try:
        target = parse_target(text.strip())
    except ValueError as error:
        raise UsageError(str(error)) from None
    return TargetSearch(target, _cache(request), limit=HUB_TARGET_READ_LIMIT)


def read_note(search: TargetSearch | None, seconds: float) -> dict[str, Any] | None:
    """What a page says of what ``search`` read (``None``: no target asked)."""
    if search is None:
        return None
    return {
        "target": str(search.target),
        "tag": search.target.tag,
        "runs": search.runs,
        "pending": search.pending,
        "files_read": search.files_read,
        "files_cached": search.files_cached,
        "bytes_read": format_size(search.bytes_read),
        "bytes_left": format_size(search.bytes_left),
        "limit": format_size(HUB_TARGET_READ_LIMIT),
        "seconds": round(seconds, 1),
    }


def pending_header(response: Response, search: TargetSearch | None) -> None:
    """Say on an API answer how many runs' hits are still unknown (a later request reads on)."""
    if search is not None:
        response.headers[PENDING_HEADER] = str(search.pending)
