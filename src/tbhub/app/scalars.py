"""Scalar summaries per run, kept incrementally in the state database.

Each event file's ``ScalarFileState`` (how far it was parsed, and a summary per tag) is stored as JSON
in ``scalar_files``, so any process (the parse worker ``tbhub serve`` starts for the alert engine,
``tbhub compare``, ``tbhub runs --status``) continues where the last one stopped and parses only the
bytes appended since. Event files on a local log root are read with ``summarize_many``, the reader
``benchmarks/summarize.py`` measures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING

from tbhub.adapters.crc import crc32c
from tbhub.core.models import EndpointSpec, FileEntry, RunSummary
from tbhub.core.ports import LogStore
from tbhub.core.scalars import (
    EventDecoder,
    ScalarFileState,
    TagSummary,
    bytes_to_parse,
    merge_tags,
    summarize_file,
    summarize_many,
)

if TYPE_CHECKING:  # the parse worker imports this module and must not load the config (pydantic)
    from tbhub.app.services import Services

__all__ = [
    "SAVE_EVERY_BYTES",
    "Stale",
    "parse_files",
    "pruned",
    "run_root",
    "run_scalars",
    "stale_files",
    "state_from_json",
    "state_row",
    "state_to_json",
    "update_scalar_states",
]


def state_to_json(state: ScalarFileState) -> str:
    data = asdict(state)
    data["tags"] = {tag: asdict(summary) for tag, summary in state.tags.items()}
    return json.dumps(data)


def state_from_json(text: str) -> ScalarFileState:
    data = json.loads(text)
    tags = {tag: TagSummary(**{**s, "tail": tuple(s["tail"])}) for tag, s in data.pop("tags").items()}
    data["activity"] = tuple((a, b) for a, b in data.get("activity", ()))  # JSON lists; absent in old states
    return ScalarFileState(**data, tags=tags)


#: Bytes parsed between two saves of the states (a few seconds of parsing).
SAVE_EVERY_BYTES = 256 * 1024 * 1024

#: An event file to parse: its entry and its stored state (JSON), if any.
Stale = tuple[FileEntry, str | None]


def stale_files(known: Mapping[str, tuple[int, int, int, str]], runs: Sequence[RunSummary]) -> list[Stale]:
    """The event files of ``runs`` whose stored state (``known``, as ``load_scalar_states`` gives it) is
    not of their current (inode, size, mtime), with that state; none is decoded here."""
    stale = []
    for run in runs:
        for f in run.files:
            old = known.get(f.relpath)
            # A state stored before activity was kept is stale too: its file is read again once.
            if (old is None or old[:3] != (f.inode, f.size, f.mtime_ns) or '"activity_gap"' not in old[3]
                    or '"texts": {' not in old[3]):  # nor texts
                stale.append((FileEntry(f.relpath, f.inode, f.size, f.mtime_ns), None if old is None else old[3]))
    return stale


def parse_files(
    store: LogStore,
    stale: Sequence[Stale],
    decoder: EventDecoder,
    *,
    workers: int = 1,
    mp_context: BaseContext | None = None,
) -> Iterator[list[ScalarFileState]]:
    """The new states of ``stale``, in batches of about ``SAVE_EVERY_BYTES`` to parse (each is saved
    before the next is parsed: a pass stopped half-way keeps what it did). On a local log root with
    ``summarize_many`` (in ``workers`` processes of ``mp_context`` when there is enough to parse); on
    object storage one file at a time through the store. A file deleted since the scan is left out."""
    batch: list[tuple[FileEntry, ScalarFileState | None]] = []
    size = 0
    for entry, previous in stale:
        state = state_from_json(previous) if previous is not None else None
        batch.append((entry, state))
        size += bytes_to_parse(entry, state)
        if size >= SAVE_EVERY_BYTES:
            yield _parse(store, batch, decoder, workers, mp_context)
            batch, size = [], 0
    if batch:
        yield _parse(store, batch, decoder, workers, mp_context)


def _parse(
    store: LogStore,
    stale: Sequence[tuple[FileEntry, ScalarFileState | None]],
    decoder: EventDecoder,
    workers: int,
    mp_context: BaseContext | None,
) -> list[ScalarFileState]:
    paths = [store.local_path(entry.relpath) for entry, _ in stale]
    if all(path is not None for path in paths):
        # A local log root: the parallel reader ``benchmarks/summarize.py`` measures.
        jobs = [(path, entry, previous) for path, (entry, previous) in zip(paths, stale, strict=True) if path]
        results = summarize_many(jobs, decoder=decoder, crc32c=crc32c, workers=workers, mp_context=mp_context)
        return [state for state in results if state is not None]
    parsed = []
    for entry, previous in stale:  # object storage: one file at a time, through the store
        try:
            with store.open(entry.relpath) as fh:
                parsed.append(summarize_file(fh, previous, relpath=entry.relpath, inode=entry.inode,
                                             size=entry.size, mtime_ns=entry.mtime_ns, decoder=decoder,
                                             crc32c=crc32c))
        except FileNotFoundError:
            continue  # deleted since the scan; the next scan drops it
    return parsed


def state_row(state: ScalarFileState) -> tuple[str, int, int, int, str]:
    """``state`` as ``save_scalar_states`` stores it."""
    return state.relpath, state.inode, state.size, state.mtime_ns, state_to_json(state)


def run_files(runs: Sequence[RunSummary]) -> list[str]:
    """The relpaths of ``runs``' event files: the rows of the scalar states that concern them."""
    return [f.relpath for run in runs for f in run.files]


def pruned(known: Mapping[str, object], runs: Sequence[RunSummary]) -> list[str]:
    """The files ``known`` holds a state of that are not among ``runs`` any more."""
    wanted = set(run_files(runs))
    return [relpath for relpath in known if relpath not in wanted]


def update_scalar_states(
    services: Services,
    endpoint: EndpointSpec,
    runs: Sequence[RunSummary],
    decoder: EventDecoder,
    *,
    prune: bool = True,
) -> dict[str, tuple[int, int, int, str]]:
    """Parse, in this process, the event-file bytes of ``runs`` added since the stored states and store
    the new states (batch by batch); returns the stored states as they now are (what
    ``load_scalar_states`` would give; without ``prune``, of ``runs``' files only). ``prune`` as for
    ``run_scalars``. (``tbhub serve`` does the same in a worker process: ``tbhub.app.workers``.)"""
    state = services.state
    known = state.load_scalar_states(endpoint.name, None if prune else run_files(runs))
    removed = pruned(known, runs) if prune else []
    for relpath in removed:
        del known[relpath]
    for states in parse_files(services.store(endpoint.name), stale_files(known, runs), decoder):
        rows = [state_row(s) for s in states]
        state.save_scalar_states(endpoint.name, rows, removed)
        known.update({relpath: (inode, size, mtime_ns, text) for relpath, inode, size, mtime_ns, text in rows})
        removed = []
    if removed:
        state.save_scalar_states(endpoint.name, [], removed)
    return known


def run_root(run: RunSummary) -> str:
    """The folder a run's tags are keyed from (``merge_tags``): the run folder, or the folder of a
    loose event file that is a run of its own."""
    loose = len(run.files) == 1 and run.files[0].relpath == run.relpath
    return run.relpath.rpartition("/")[0] if loose else run.relpath


def run_scalars(
    services: Services,
    endpoint: EndpointSpec,
    runs: Sequence[RunSummary],
    decoder: EventDecoder | None = None,
    *,
    prune: bool = True,
    parse: bool = True,
    states: dict[str, list[ScalarFileState]] | None = None,
) -> dict[str, dict[str, TagSummary]]:
    """Per run relpath, its tag summaries; parses only the event-file bytes added since the last call.

    The per-file state lives in the state database (``scalar_files``), so any process (the alert
    engine's parse worker in ``serve``, ``tbhub compare``) continues where the last one stopped.
    ``prune`` drops the states of files not among ``runs``: pass ``False`` when ``runs`` is only a
    selection. ``parse=False`` only reads what the database holds (the hub process never parses: its
    alert pass reads what ``tbhub.app.workers`` stored; a file not parsed yet counts with the state
    it had, or none). ``decoder`` is needed only to parse. ``states``, when given, receives each run's
    file states (their texts hold where a trainer wrote its plan).
    """
    if parse:
        if decoder is None:
            raise ValueError("run_scalars(parse=True) needs a decoder")
        known = update_scalar_states(services, endpoint, runs, decoder, prune=prune)
    elif prune:
        known = services.state.load_scalar_states(endpoint.name)
        if removed := pruned(known, runs):
            services.state.save_scalar_states(endpoint.name, [], removed)
    else:  # a selection: only its files' rows
        known = services.state.load_scalar_states(endpoint.name, run_files(runs))
    tags: dict[str, dict[str, TagSummary]] = {}
    for run in runs:
        files = [state_from_json(known[f.relpath][3]) for f in run.files if f.relpath in known]
        root = run_root(run)
        tags[run.relpath] = merge_tags(root, files)
        if states is not None:
            states[run.relpath] = files
    return tags
