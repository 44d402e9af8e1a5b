"""Which of an endpoint's per-dataset-glob rules a dataset falls under (status, cost, retention).

An exact name beats any glob; among the globs that match, the one with the most literal characters
(wildcards ``* ? [ ]`` not counted) wins, the first listed on a tie.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["most_specific"]

R = TypeVar("R")

_WILDCARDS = re.compile(r"[*?\[\]]")


def most_specific(dataset: str, rules: Iterable[tuple[str, R]]) -> tuple[str, R] | None:
    """The ``(glob, rule)`` of ``rules`` that decides for ``dataset``; ``None`` when no glob matches."""
    matches = [(glob, rule) for glob, rule in rules if fnmatch.fnmatchcase(dataset, glob)]
    if not matches:
        return None
    exact = [m for m in matches if m[0] == dataset]
    return exact[0] if exact else max(matches, key=lambda m: len(_WILDCARDS.sub("", m[0])))
