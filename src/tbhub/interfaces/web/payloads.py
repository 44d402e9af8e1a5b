"""The JSON shapes the hub answers, shared by the API and the pages that render the same data."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from tbhub.app.compare import compare_runs
from tbhub.app.hub import EndpointView, Hub
from tbhub.core.bookmarks import tensorboard_link
from tbhub.core.compare import best_index, parse_sort, sort_rows
from tbhub.core.models import RunSummary
from tbhub.core.names import shown
from tbhub.errors import UsageError
from tbhub.interfaces.records import compare_record, iso_utc

__all__ = [
    "ACTIVE_MINUTES",
    "channels_json",
    "compare_data",
    "endpoint_json",
    "no_marks",
    "run_json",
    "run_marks",
]

#: A run written to within this many minutes is "active".
ACTIVE_MINUTES = 10


def run_json(run: RunSummary, now_ns: int, status: tuple[str, str] | None = None) -> dict[str, Any]:
    age = run.age_seconds(now_ns)
    return {
        "status": status[0] if status else None,
        # Names are shown escaped: one that is not UTF-8 cannot be encoded into a page or a JSON answer.
        "dataset": shown(run.dataset),
        "run": shown(run.run),
        "relpath": shown(run.relpath),
        **run.counts(),
        "last_modified": iso_utc(run.last_modified_ns) if run.last_modified_ns else None,
        "age_seconds": round(age, 3),
        "active": age < ACTIVE_MINUTES * 60,
        "truncated": run.truncated,
        "corrupt": [{"file": f, "offset": c.offset, "reason": c.reason} for f, c in run.corrupt],
    }


def no_marks() -> dict[str, Any]:
    """The marks of a run with no tag, pin or note."""
    return {"tags": [], "pinned": False, "notes": 0, "last_note": None}


def run_marks(hub: Hub, endpoint: str) -> dict[str, dict[str, Any]]:
    """Per run (relpath) of an endpoint: tags, pinned, number of notes, the latest note's text."""
    annotations = hub.services.annotations
    marks: dict[str, dict[str, Any]] = {}

    def mark(relpath: str) -> dict[str, Any]:
        return marks.setdefault(relpath, no_marks())

    for relpath, tags in annotations.tags(endpoint).items():
        mark(relpath)["tags"] = tags
    for pin in hub.state.pins():
        if pin.endpoint == endpoint:
            mark(pin.relpath)["pinned"] = True
    for note in annotations.notes(endpoint):
        m = mark(note.relpath)
        m["notes"] += 1
        m["last_note"] = note.text
    return marks


def _state(view: EndpointView) -> str:
    if view.child is not None:
        return str(view.child.state)
    return "unsupervised"


def endpoint_json(view: EndpointView, request: Request, now_ns: int) -> dict[str, Any]:
    newest = view.newest
    child = view.child
    return {
        "name": view.spec.name,
        "title": view.spec.title or view.spec.name,
        "state": _state(view),
        "error": (view.mirror.error if view.mirror else None)
        or (child.last_error if child else None)
        or (view.last_scan.error if view.last_scan else None),
        "mirror": None
        if view.mirror is None
        else {
            "ready": view.mirror.ready,
            "last_sync_at": view.mirror.last_sync_at,
            "files": view.mirror.last.files if view.mirror.last else None,
            "error": view.mirror.error,
        },
        "port": view.spec.port,
        "url": request.app.state.links.tensorboard(view.spec.name),
        "direct_url": request.app.state.links.direct(view.spec.name, view.spec.port),
        "runs": len(view.runs),
        "size_bytes": view.size_bytes,
        "event_count": sum(r.event_count for r in view.runs),
        "newest_run": None
        if newest is None
        else {
            "dataset": shown(newest.dataset),
            "run": shown(newest.run),
            "age_seconds": round(newest.age_seconds(now_ns), 3),
        },
        "restarts": child.restarts if child else 0,
        "last_scan": None
        if view.last_scan is None
        else {
            "finished_at": view.last_scan.finished_at,
            "duration_s": round(view.last_scan.duration_s, 4),
            "files": view.last_scan.files,
            "files_read": view.last_scan.files_read,
            "error": view.last_scan.error,
        },
    }


# What a JavaScript regex (TensorBoard's run filter) reads as syntax; ``-`` and ``/`` are left as they are.
def compare_data(
    hub: Hub, endpoint: str | None, dataset: str | None, tags: list[str], sort: str | None
) -> dict[str, Any]:
    """The compare table from the index (no scan): the ``tags`` asked for plus the sort's, best marked."""
    try:
        spec = parse_sort(sort) if sort else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    wanted = list(tags)
    if spec is not None and spec.tag not in wanted:
        wanted.append(spec.tag)
    rows = compare_runs(
        hub.services,
        names=[endpoint] if endpoint else None,
        dataset_glob=dataset or None,
        tags=wanted,
        scan=False,
    )
    rows = sort_rows(rows, spec)
    best = best_index(rows, spec)
    records = [
        compare_record(r, wanted, i == best)
        | {
            "first_wall_time": r.run.first_wall_time,
            "tensorboard": tensorboard_link(r.run.endpoint, r.run.relpath),
            # The tags whose last value is NaN or infinite: the run diverged (flagged, never best).
            "diverged": [t for t in wanted if r.diverged(t)],
        }
        for i, r in enumerate(rows)
    ]
    return {"tags": wanted, "sort": sort, "rows": records}


def channels_json(hub: Hub) -> list[dict[str, Any]]:
    states = hub.state.channel_states()
    return [
        {
            "name": name,
            "type": cfg.type,
            "on": cfg.on,
            "disabled": states.get(name, (False, None))[0],
            "reason": states.get(name, (False, None))[1],
        }
        for name, cfg in zip(hub.config.channel_names(), hub.config.notify, strict=True)
    ]
