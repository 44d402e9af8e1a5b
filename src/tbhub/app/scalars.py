"""Scalar summaries per run, kept incrementally in the state database.

Each event file's ``ScalarFileState`` (how far it was parsed, and a summary per tag) is stored as JSON
in ``scalar_files``, so any process (the alert engine in ``serve``, ``tbhub compare``) continues where
the last one stopped and parses only the bytes appended since.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from tbhub.adapters.crc import crc32c
from tbhub.app.services import Services
from tbhub.core.models import EndpointSpec, RunSummary
from tbhub.core.scalars import EventDecoder, ScalarFileState, TagSummary, merge_tags, summarize_file

__all__ = ["run_scalars", "state_from_json", "state_to_json"]


def state_to_json(state: ScalarFileState) -> str:
    data = asdict(state)
    data["tags"] = {tag: asdict(summary) for tag, summary in state.tags.items()}
    return json.dumps(data)


def state_from_json(text: str) -> ScalarFileState:
    data = json.loads(text)
    tags = {tag: TagSummary(**{**s, "tail": tuple(s["tail"])}) for tag, s in data.pop("tags").items()}
    return ScalarFileState(**data, tags=tags)


def run_scalars(
    services: Services,
    endpoint: EndpointSpec,
    runs: Sequence[RunSummary],
    decoder: EventDecoder,
    *,
    prune: bool = True,
    parse: bool = True,
) -> dict[str, dict[str, TagSummary]]:
    """Per run relpath, its tag summaries; parses only the event-file bytes added since the last call.

    The per-file state lives in the state database (``scalar_files``), so any process (the alert
    engine in ``serve``, ``tbhub compare``) continues where the last one stopped. ``prune`` drops
    the states of files not among ``runs``: pass ``False`` when ``runs`` is only a selection.
    ``parse=False`` only reads what the database holds (the hub's request path never parses).
    """
    state = services.state
    store = services.store(endpoint.name)
    known = state.load_scalar_states(endpoint.name)
    states: dict[str, ScalarFileState] = {}
    changed: list[tuple[str, int, int, int, str]] = []
    for run in runs:
        for f in run.files:
            old = known.get(f.relpath)
            if old is not None and old[:3] == (f.inode, f.size, f.mtime_ns):
                states[f.relpath] = state_from_json(old[3])
                continue
            previous = state_from_json(old[3]) if old is not None else None
            if not parse:
                if previous is not None:
                    states[f.relpath] = previous
                continue
            try:
                with store.open(f.relpath) as fh:
                    new = summarize_file(
                        fh,
                        previous,
                        relpath=f.relpath,
                        inode=f.inode,
                        size=f.size,
                        mtime_ns=f.mtime_ns,
                        decoder=decoder,
                        crc32c=crc32c,
                    )
            except FileNotFoundError:
                continue  # deleted since the scan; the next scan drops it
            states[f.relpath] = new
            changed.append((f.relpath, f.inode, f.size, f.mtime_ns, state_to_json(new)))
    wanted = {f.relpath for run in runs for f in run.files}
    removed = [relpath for relpath in known if relpath not in wanted] if prune else []
    if changed or removed:
        state.save_scalar_states(endpoint.name, changed, removed)
    tags: dict[str, dict[str, TagSummary]] = {}
    for run in runs:
        files = [states[f.relpath] for f in run.files if f.relpath in states]
        loose = len(run.files) == 1 and run.files[0].relpath == run.relpath
        root = run.relpath.rpartition("/")[0] if loose else run.relpath
        tags[run.relpath] = merge_tags(root, files)
    return tags
