"""Compute cost benchmark: keeping busy time leaves the alert engine's cost proportional to new bytes.

    python benchmarks/cost.py [--runs 1000] [--records 300] [--append-mb 1]

Builds (in a temporary folder) a log root of ``--runs`` runs, one PyTorch-style event file each with
``--records`` scalar events (gentree's byte layout), then brings the scalar states up to date the way
the alert engine does (``tbhub.app.scalars``: ``stale_files`` picks the files whose stat changed,
``parse_files`` reads only their bytes past the stored offset; ``tbhub serve`` runs the same two in its
parse worker), three times:

(a) first pass: every byte, no stored state (each file's activity segments are built here);
(b) nothing changed: no event file is opened;
(c) ``--append-mb`` MB appended to one run: the bytes read should be about that much.

Bytes are counted twice: what the parser was told to read (the sum of ``bytes_to_parse`` over the
stale files) and what the process read (``rchar`` of ``/proc/self/io``: event files *and* the state
database, so it is an upper bound). Then (d) the hub's cost of its compute (``/usage``, ``/trends``):
busy time of every run from the stored states, no event file opened.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from gentree import append_events
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.app.compute import compute_runs
from tbhub.app.inventory import scan_endpoints
from tbhub.app.scalars import stale_files, state_from_json, update_scalar_states
from tbhub.app.services import Services
from tbhub.config import load_config
from tbhub.core.models import FileEntry, RunSummary
from tbhub.core.scalars import bytes_to_parse

MB = 1_000_000


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def planned(services: Services, name: str, runs: Sequence[RunSummary]) -> int:
    """The bytes the parser will read: ``bytes_to_parse`` over the stale files."""
    known = services.state.load_scalar_states(name)
    total = 0
    for entry, text in stale_files(known, runs):
        total += bytes_to_parse(FileEntry(entry.relpath, entry.inode, entry.size, entry.mtime_ns),
                                None if text is None else state_from_json(text))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--append-mb", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tbhub-cost-") as tmp:
        root = Path(tmp) / "logs"
        files = []
        for i in range(args.runs):
            path = root / f"ds{i % 10}" / f"run{i:04d}" / "events.out.tfevents.1.host"
            path.parent.mkdir(parents=True)
            append_events(path, args.records, 0)
            files.append(path)
        total = sum(p.stat().st_size for p in files)
        config = Path(tmp) / "tbhub.toml"
        config.write_text(f'[state]\ndir = "{tmp}/state"\n[endpoints.bench]\nlogdir = "{root}"\n'
                          "[cost]\ngpu_hour = 2.5\ngpus = 8\n")
        decoder = ProtobufDecoder()
        print(f"tree: {args.runs} runs, {total / MB:.1f} MB, {args.runs * args.records:,} records")
        with Services(load_config(config)) as services:
            spec = services.spec("bench")

            def rescan_and_update(label: str, appended: int) -> tuple[int, int, float]:
                runs = list(scan_endpoints(services)[0].runs)
                plan = planned(services, "bench", runs)
                before, start = rchar(), time.perf_counter()
                update_scalar_states(services, spec, runs, decoder)
                elapsed, read = time.perf_counter() - start, rchar() - before
                ratio = f"{plan / appended:.3f}x appended" if appended else ""
                print(f"{label:<44} parsed {plan / MB:8.3f} MB  process read {read / MB:8.3f} MB"
                      f"  {elapsed * 1000:8.1f} ms  {ratio}")
                return plan, read, elapsed

            _, _, first = rescan_and_update("(a) first pass, every byte", 0)
            rescan_and_update("(b) nothing changed", 0)
            record = files[0].stat().st_size // args.records
            added = append_events(files[0], int(args.append_mb * MB) // record, args.records)
            label = f"(c) {added / MB:.2f} MB appended to 1 run of {args.runs}"
            plan, read, third = rescan_and_update(label, added)
            start = time.perf_counter()
            computed = compute_runs(services, scan=False)
            hub = time.perf_counter() - start
            busy = sum(r.compute.busy_s for r in computed)
            print(f"(d) the hub's compute of {len(computed)} runs from stored states: {hub * 1000:.1f} ms"
                  f" (busy {busy / 3600:.1f} h)")
            print(f"ratios: (c) parsed / appended = {plan / added:.3f}; (c) process read / appended = "
                  f"{read / added:.2f}; (c) time / (a) time = {third / first:.3f};"
                  f" (a) bytes / (c) parsed = {total / plan:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
