"""A run's event files into per-run tag summaries (``{subdir}/{tag}`` keys, see ``run_tag``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from tbhub.core.scalars.summary import TAIL_SIZE, ScalarFileState, TagSummary, combine

__all__ = ["merge_tags", "run_tag"]


def run_tag(subdir: str, tag: str) -> str:
    """The run-level key of ``tag`` written by a file in ``subdir`` (relative to the run folder,
    ``""`` for the run folder itself): ``"{subdir}/{tag}"``, unless ``subdir`` is empty or the tag
    already starts with ``"{subdir}/"`` (or is exactly ``subdir``)."""
    if not subdir or tag == subdir or tag.startswith(subdir + "/"):
        return tag
    return f"{subdir}/{tag}"


def merge_tags(
    run_relpath: str, files: Iterable[ScalarFileState], *, tail_size: int = TAIL_SIZE
) -> dict[str, TagSummary]:
    """Per-run tag summaries from the states of the run's files, keyed (and ``tag`` set) by
    ``run_tag``, sorted by key.

    Files are combined in order of their points' wall time: for each key the ``first_*`` fields
    come from the file whose first point is earliest, ``last_*`` (and the end of ``tail``) from the
    one whose last point is latest (a resumed job's new file wins over the old one even if its
    steps went back). Ties go to the file that sorts first by ``relpath`` (TensorBoard's order).
    Raises ``ValueError`` if a file does not lie below ``run_relpath`` (``""`` is the log root).
    """
    prefix = run_relpath.strip("/")
    found: dict[str, list[tuple[str, TagSummary]]] = {}
    for state in sorted(files, key=lambda s: s.relpath):
        if prefix:
            if not state.relpath.startswith(prefix + "/"):
                raise ValueError(f"{state.relpath!r} is not below the run folder {run_relpath!r}")
            inner = state.relpath[len(prefix) + 1 :]
        else:
            inner = state.relpath
        subdir = inner.rpartition("/")[0]
        for tag, summary in state.tags.items():
            found.setdefault(run_tag(subdir, tag), []).append((state.relpath, summary))
    merged: dict[str, TagSummary] = {}
    for key in sorted(found):
        parts = [s for _, s in found[key]]  # relpath order; sorted() below is stable
        by_start = sorted(parts, key=lambda s: s.first_wall_time)
        by_end = sorted(parts, key=lambda s: s.last_wall_time)
        result = by_end[0]
        for summary in by_end[1:]:
            result = combine(result, summary, tail_size)
        first = by_start[0]
        nonfinite = [s for s in by_start if s.first_nonfinite_step is not None]
        merged[key] = replace(
            result,
            tag=key,
            first_step=first.first_step,
            first_wall_time=first.first_wall_time,
            first_nonfinite_step=nonfinite[0].first_nonfinite_step if nonfinite else None,
        )
    return merged
