"""The selection grammar of ``tbhub clean``: which rows of the runs table to act on.

::

    selection := "" | "all" | "old" | item (sep item)*
    item      := INDEX | INDEX "-" INDEX          (inclusive range, low <= high)
    sep       := whitespace and/or ","

Indices are those printed in the table (0-based). An empty selection means "cancel" (``None``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["SelectionError", "parse_selection"]

_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")


class SelectionError(ValueError):
    """The text is not a valid selection; the message says what is wrong, in one line."""


def parse_selection(text: str, count: int, is_old: Callable[[int], bool]) -> list[int] | None:
    """Sorted, unique row indices selected by ``text`` among ``count`` rows, or ``None`` to cancel.

    ``is_old(i)`` tells whether row ``i`` is old (for the keyword ``old``). Raises ``SelectionError``.
    """
    words = [w for w in re.split(r"[\s,]+", text.strip().lower()) if w]
    if not words:
        return None
    if words == ["all"]:
        return list(range(count))
    if words == ["old"]:
        return [i for i in range(count) if is_old(i)]
    chosen: set[int] = set()
    for word in words:
        if word in ("all", "old"):
            raise SelectionError(f"{word!r} must be used alone")
        match = _ITEM.match(word)
        if not match:
            raise SelectionError(f"{word!r} is not an index, a range like 0-5, 'all' or 'old'")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if low > high:
            raise SelectionError(f"range {word!r} runs backwards; write {high}-{low}")
        if high >= count:
            last = f"0-{count - 1}" if count else "none"
            raise SelectionError(f"index {high} is out of range (valid: {last})")
        chosen.update(range(low, high + 1))
    return sorted(chosen)
