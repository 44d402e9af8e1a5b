"""Scalar summary benchmark: TensorBoard's ``EventAccumulator`` vs tbhub's ``summarize_many``, first
pass and incremental update, over the tree ``gentree.py`` generates.

    python benchmarks/summarize.py [--tree DIR] [--ea-runs 4] [--workers N] [--append 1000,20000]

``summarize_many`` is what production runs: ``tbhub serve``'s alert pass parses in a worker process
(``tbhub.app.workers``) through ``tbhub.app.scalars.parse_files``, which calls ``summarize_many`` with
``PARSE_WORKERS`` processes (the default of ``--workers`` here); ``tbhub runs --status`` and
``tbhub compare`` take the same function in their own process, one worker.

(a) TensorBoard's Python loader (``EventAccumulator`` with ``size_guidance={SCALARS: 0, TENSORS: 0}``,
    everything kept) loading a subset of the runs, one of each style (PyTorch, Keras/TF2 with its
    ``train/`` and ``validation/`` sub-runs, TF1, resumed), each of median size for its style. The
    whole tree takes about 400 s, so the subset is timed and scaled by bytes to the tree (its cost is
    per byte: CRC-32C in Python and protobuf parsing); the output says so. tbhub's summaries of the
    same runs are checked against what it loaded (count, last, min and max per tag).
(b) tbhub first pass: ``summarize_many`` over every event file, no previous state, ``--workers``
    processes (fork; default ``PARSE_WORKERS``, what ``tbhub serve``'s parse worker uses).
(c) tbhub update after appending ``train/loss`` events to the largest PyTorch-style run, for each
    amount in ``--append``: every file is passed with its previous state (unchanged files are not opened), so
    only the appended bytes are parsed; the result is checked against a full pass over that file.
    The append is cut off again afterwards (``os.truncate`` + the original mtime): the tree is left
    as it was.

The page cache is warmed first (every file read once), so disk speed is not what is measured.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import time
from multiprocessing import get_context
from pathlib import Path

from gentree import DEFAULT_RECORDS, DEFAULT_ROOT, DEFAULT_RUNS, append_events, ensure_tree, plan
from tbhub.adapters.crc import crc32c
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.app.workers import PARSE_WORKERS
from tbhub.core.models import FileEntry
from tbhub.core.scalars import ScalarFileState, TagSummary, bytes_to_parse, merge_tags, summarize_many

Job = tuple[str, FileEntry, ScalarFileState | None]


def _event_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if "tfevents" in p.name and p.is_file())


def warm_page_cache(files: list[Path]) -> int:
    total = 0
    for p in files:
        with open(p, "rb", buffering=0) as f:
            while chunk := f.read(1 << 22):
                total += len(chunk)
    return total


def jobs_for(root: Path, files: list[Path], previous: dict[str, ScalarFileState] | None = None) -> list[Job]:
    jobs: list[Job] = []
    for p in files:
        st = p.stat()
        rel = p.relative_to(root).as_posix()
        jobs.append((str(p), FileEntry(rel, st.st_ino, st.st_size, st.st_mtime_ns), (previous or {}).get(rel)))
    return jobs


def runs_by_style(root: Path, runs: int, records: int) -> dict[str, list[tuple[int, Path]]]:
    """Per style (``gentree.plan``), its runs as (event-file bytes, folder), smallest first."""
    by_style: dict[str, list[tuple[int, Path]]] = {}
    for run in plan(runs, records):
        run_dir = root / run.dataset / run.name
        size = sum(p.stat().st_size for p in run_dir.rglob("*") if "tfevents" in p.name)
        by_style.setdefault(run.style, []).append((size, run_dir))
    for group in by_style.values():
        group.sort()
    return by_style


def tensorboard_load(run_dir: Path) -> tuple[float, float, dict[str, list[tuple[int, float]]]]:
    """(seconds, CPU seconds, per tag (step, value) in load order) for one run folder and its
    sub-runs, loaded as TensorBoard does: one ``EventAccumulator`` per folder holding event files."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    folders = sorted({p.parent for p in run_dir.rglob("*") if "tfevents" in p.name})
    seconds = cpu = 0.0
    out: dict[str, list[tuple[int, float]]] = {}
    for folder in folders:
        t, c = time.perf_counter(), time.process_time()
        acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        seconds += time.perf_counter() - t
        cpu += time.process_time() - c
        sub = folder.relative_to(run_dir).as_posix()
        prefix = "" if sub == "." else sub
        for tag in acc.Tags()[ea.SCALARS]:
            out[_key(prefix, tag)] = [(e.step, e.value) for e in acc.Scalars(tag)]
        try:
            tensor_tags = list(acc.PluginTagToContent("scalars"))
        except KeyError:
            tensor_tags = []
        for tag in tensor_tags:
            out[_key(prefix, tag)] = [
                (e.step, float(tensor_util.make_ndarray(e.tensor_proto).item())) for e in acc.Tensors(tag)
            ]
    return seconds, cpu, out


def _key(prefix: str, tag: str) -> str:
    if not prefix or tag == prefix or tag.startswith(prefix + "/"):
        return tag
    return f"{prefix}/{tag}"


def compare(ours: dict[str, TagSummary], theirs: dict[str, list[tuple[int, float]]]) -> list[str]:
    """Differences between tbhub's run summaries and TensorBoard's points (empty when they agree)."""
    problems = []
    if sorted(ours) != sorted(theirs):
        problems.append(f"tags differ: {sorted(set(ours) ^ set(theirs))}")
    for tag in sorted(set(ours) & set(theirs)):
        points = theirs[tag]
        finite = [(v, s) for s, v in points if math.isfinite(v)]
        s = ours[tag]
        want = (len(points), points[-1][1], min(finite)[0] if finite else None, max(finite)[0] if finite else None)
        got = (s.count, s.last_value, s.min_value, s.max_value)
        if want != got:
            problems.append(f"{tag}: TensorBoard {want}, tbhub {got}")
    return problems


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes (the worker pool)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def other_benchmarks() -> list[str]:
    """Other benchmark processes running now (they would skew the timings)."""
    try:
        found = subprocess.run(["pgrep", "-fa", "benchmarks/"], capture_output=True, text=True, check=False)
    except OSError:
        return []
    me = str(os.getpid())
    return [line for line in found.stdout.splitlines() if line and line.split()[0] != me]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tree", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--ea-runs", type=int, default=4, help="runs loaded by EventAccumulator for (a)")
    parser.add_argument("--workers", type=int, default=PARSE_WORKERS,
                        help="processes for summarize_many (default: tbhub serve's PARSE_WORKERS)")
    parser.add_argument("--append", default="1000,20000", help="events appended for (c), comma-separated")
    args = parser.parse_args(argv)

    others = other_benchmarks()
    if others:
        print("WARNING: other benchmarks are running, timings will be skewed:", *others, sep="\n  ")
    root = ensure_tree(args.tree, args.runs, args.records)
    files = _event_files(root)
    total_bytes = sum(p.stat().st_size for p in files)
    warm_page_cache(files)
    print(f"tree {root}: {len(files)} event files, {total_bytes / 1e9:.2f} GB; page cache warm; "
          f"{args.workers} workers (fork), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    decoder = ProtobufDecoder()
    fork = get_context("fork")

    # (b) first, so that (a)'s cross-check can use its states
    t, c, children = time.perf_counter(), time.process_time(), _children_cpu()
    results = summarize_many(jobs_for(root, files), decoder=decoder, crc32c=crc32c, workers=args.workers,
                             mp_context=fork)
    b = time.perf_counter() - t
    b_cpu = time.process_time() - c + _children_cpu() - children
    states = {s.relpath: s for s in results if s is not None}
    records = sum(s.records for s in states.values())
    points = sum(t.count for s in states.values() for t in s.tags.values())
    assert all(not s.truncated and not s.corrupt and s.offset == s.size for s in states.values())

    # (a)
    # One run of median size per style; each style's time scaled by the bytes of that style in the
    # tree (TensorBoard's cost per byte differs by style: record sizes, values per event).
    by_style = runs_by_style(root, args.runs, args.records)
    picks = [(style, group[len(group) // 2]) for style, group in sorted(by_style.items())][: args.ea_runs]
    a_seconds = a_cpu = a = a_cpu_tree = 0.0
    a_bytes = 0
    notes = []
    for style, (size, run_dir) in picks:
        seconds, cpu, theirs = tensorboard_load(run_dir)
        style_bytes = sum(b for b, _ in by_style[style])
        a += seconds * style_bytes / size
        a_cpu_tree += cpu * style_bytes / size
        a_seconds += seconds
        a_cpu += cpu
        a_bytes += size
        rel = run_dir.relative_to(root).as_posix()
        ours = merge_tags(rel, [s for r, s in states.items() if r.startswith(rel + "/")])
        problems = compare(ours, theirs)
        verdict = "tbhub agrees" if not problems else "DISAGREES: " + "; ".join(problems[:3])
        notes.append(f"{style:8s} {rel}: {size / 1e6:.1f} MB in {seconds:.1f} s, {len(theirs)} tags, {verdict}")
    covered = sum(sum(b for b, _ in by_style[style]) for style, _ in picks)
    a, a_cpu = a * total_bytes / covered, a_cpu_tree * total_bytes / covered  # styles not sampled: pro rata

    # (c): a PyTorch-style run goes on writing train/loss (one of its tags)
    _, run_dir = by_style["pytorch"][-1] if "pytorch" in by_style else max(x for g in by_style.values() for x in g)
    target = max((p for p in files if p.is_relative_to(run_dir)), key=lambda p: p.stat().st_size)
    original = target.stat()
    rel = target.relative_to(root).as_posix()
    c_results: list[tuple[int, int, int, float]] = []
    previous = states
    try:
        for each in (int(x) for x in args.append.split(",")):
            added = append_events(target, each, 1_000_000 + len(c_results) * 100_000)
            jobs = jobs_for(root, files, previous)
            to_parse = sum(bytes_to_parse(entry, prev) for _, entry, prev in jobs)
            t = time.perf_counter()
            updated = summarize_many(jobs, decoder=decoder, crc32c=crc32c, workers=args.workers, mp_context=fork)
            seconds = time.perf_counter() - t
            previous = {s.relpath: s for s in updated if s is not None}
            (full,) = summarize_many(jobs_for(root, [target]), decoder=decoder, crc32c=crc32c, workers=1)
            assert full is not None and full.tags == previous[rel].tags and full.offset == previous[rel].offset
            c_results.append((each, added, to_parse, seconds))
    finally:
        os.truncate(target, original.st_size)
        os.utime(target, ns=(original.st_atime_ns, original.st_mtime_ns))

    print()
    print(f"(a) TensorBoard EventAccumulator          {a:10.1f} s   ESTIMATED: {len(picks)} runs, "
          f"{a_bytes / 1e6:.1f} MB loaded in {a_seconds:.1f} s ({a_bytes / a_seconds / 1e6:.2f} MB/s), "
          f"each style scaled by its bytes in the {total_bytes / 1e9:.2f} GB tree; {a_cpu:.1f} CPU s")
    for note in notes:
        print(f"      {note}")
    print(f"(b) tbhub first summary (summarize_many)  {b:10.2f} s   ({records:,} records, {points:,} scalar "
          f"points, {len(states)} files, {total_bytes / b / 1e6:.0f} MB/s; {b_cpu:.1f} CPU s = "
          f"{b_cpu / records * 1e6:.2f} µs per record)")
    for each, added, to_parse, seconds in c_results:
        print(f"(c) tbhub update after appending {each:6,} events ({added / 1e6:5.2f} MB) to {rel}: "
              f"{seconds * 1e3:7.1f} ms, {to_parse:,} bytes parsed (= the {added:,} appended: "
              f"{'yes' if to_parse == added else 'NO'}); same result as a full pass of the file")
    print()
    print(f"a/b = {a / b:,.1f}x   (target >= 20x); in CPU time {a_cpu / b_cpu:.1f}x, so "
          f"{a_cpu / b_cpu * args.workers:.0f}x on {args.workers} otherwise idle cores")
    if len(c_results) >= 2:
        (_, add1, _, s1), (_, add2, _, s2) = c_results[0], c_results[-1]
        per_mb = (s2 - s1) / ((add2 - add1) / 1e6)
        print(f"c: only the appended bytes are parsed; {per_mb * 1e3:.0f} ms per MB appended "
              f"(first pass: {b / (total_bytes / 1e6) * 1e3:.1f} ms/MB on {args.workers} workers) "
              f"+ {max(0.0, s1 - per_mb * add1 / 1e6) * 1e3:.0f} ms fixed ({len(files)} files checked, 1 opened)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
