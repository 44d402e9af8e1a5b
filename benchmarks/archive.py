"""Archiving benchmark: tbhub's ``archive_run`` against ``tar -czf`` on the same runs, in one command.

    python benchmarks/archive.py [--tree DIR] [--runs N] [--out DIR]

``--runs`` runs (default 5) of the tree ``gentree.py`` generates are picked evenly across it, so the
run styles (PyTorch, Keras, TF1, resumed) are mixed, and each is archived:

(a) tbhub ``archive_run``: zstd level 3, single-threaded, every file hashed while it is read, the
    archive fsynced, then re-read and verified in full before it gets its name. This is what
    ``tbhub clean --archive-to`` does before it deletes a run. ``verify_archive`` alone is also timed
    on the results (it is part of (a)).
(b) ``tar -czf`` (gzip level 6) as a subprocess: no hashing, no verification, no fsync.
(c) ``tar --use-compress-program 'zstd -3 -T1'`` when the zstd CLI exists: the same codec as tbhub
    without the safety work, to show what that work costs.

The page cache is warmed first (every file read once), so disk speed is not what is measured. MB/s
is uncompressed run bytes per second; the ratio is run bytes / archive bytes. Archives go to a
temporary folder next to the tree (``--out`` to choose) that is removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gentree import DEFAULT_RECORDS, DEFAULT_ROOT, DEFAULT_RUNS, ensure_tree
from tbhub.adapters.storage.archive import archive_run, verify_archive


def pick_runs(root: Path, n: int) -> list[Path]:
    """``n`` run folders spread over the tree, in generation order (gentree names them ``..._seed{i}``)."""
    def seed(run: Path) -> tuple[int, str]:
        digits = run.name.rpartition("seed")[2]
        return (int(digits) if digits.isdigit() else -1, str(run))

    runs = sorted((p for p in root.glob("*/*") if p.is_dir()), key=seed)
    if not runs:
        raise SystemExit(f"{root} holds no {{dataset}}/{{run}} folders")
    n = min(n, len(runs))
    # gentree cycles through 8 styles by seed; the "+ i" keeps evenly spaced picks off a single style.
    return [runs[(i * len(runs) // n + i) % len(runs)] for i in range(n)]


def run_bytes(run: Path) -> int:
    return sum(p.stat().st_size for p in run.rglob("*") if p.is_file())


def warm_page_cache(runs: list[Path]) -> None:
    for run in runs:
        for path in run.rglob("*"):
            if path.is_file():
                with open(path, "rb", buffering=0) as f:
                    while f.read(1 << 22):
                        pass


def time_tar(root: Path, runs: list[Path], out: Path, compress: list[str], suffix: str) -> tuple[float, int]:
    out.mkdir()
    seconds = 0.0
    size = 0
    for run in runs:
        archive = out / f"{run.parent.name}__{run.name}{suffix}"
        started = time.perf_counter()
        subprocess.run(
            ["tar", *compress, "-cf", str(archive), "-C", str(root), f"{run.parent.name}/{run.name}"], check=True
        )
        seconds += time.perf_counter() - started
        size += archive.stat().st_size
    return seconds, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tree", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--runs", type=int, default=5, help="runs to archive (default 5)")
    parser.add_argument("--tree-runs", type=int, default=DEFAULT_RUNS, help="runs in the generated tree")
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS, help="records in the generated tree")
    parser.add_argument("--out", type=Path, default=None, help="where archives are written (default: next to the tree)")
    args = parser.parse_args(argv)
    if shutil.which("tar") is None:
        raise SystemExit("tar is not installed")

    root = ensure_tree(args.tree, args.tree_runs, args.records)
    runs = pick_runs(root, args.runs)
    total = sum(run_bytes(run) for run in runs)
    warm_page_cache(runs)
    mb = total / 1e6
    print(f"{len(runs)} runs, {mb:.1f} MB from {root}; page cache warm")
    for run in runs:
        print(f"  {run.parent.name}/{run.name}  {run_bytes(run) / 1e6:.1f} MB")

    out = Path(tempfile.mkdtemp(prefix="archive-bench-", dir=args.out or root.parent))
    try:
        started = time.perf_counter()
        results = [
            archive_run(run, out / "tbhub", endpoint="bench", dataset=run.parent.name, run=run.name,
                        relpath=f"{run.parent.name}/{run.name}", compression="zstd")
            for run in runs
        ]
        tbhub_s = time.perf_counter() - started
        tbhub_size = sum(r.bytes_out for r in results)
        assert sum(r.bytes_in for r in results) == total

        started = time.perf_counter()
        for r in results:
            verify_archive(r.archive)
        verify_s = time.perf_counter() - started

        gz_s, gz_size = time_tar(root, runs, out / "tar-gz", ["-z"], ".tar.gz")
        zstd_cli = shutil.which("zstd") is not None
        if zstd_cli:
            zst_s, zst_size = time_tar(root, runs, out / "tar-zst", ["--use-compress-program", "zstd -3 -T1"],
                                       ".tar.zst")
    finally:
        shutil.rmtree(out, ignore_errors=True)

    print()
    print(f"{'':54}{'seconds':>9}{'MB/s':>9}{'MB out':>9}{'ratio':>8}")

    def row(label: str, seconds: float, size: int | None) -> None:
        sizes = f"{size / 1e6:9.1f}{total / size:7.1f}x" if size else ""
        print(f"{label:54}{seconds:9.2f}{mb / seconds:9.1f}{sizes}")

    row("(a) tbhub archive_run (zstd-3, hash, fsync, verify)", tbhub_s, tbhub_size)
    row("      of which verify_archive alone", verify_s, None)
    row("(b) tar -czf (gzip -6)", gz_s, gz_size)
    if zstd_cli:
        row("(c) tar | zstd -3 -T1 (no hash, no verify)", zst_s, zst_size)
    print()
    print(f"a vs b: {gz_s / tbhub_s:.2f}x the speed of tar -czf, archives {tbhub_size / gz_size:.2f}x its size")
    if zstd_cli:
        print(f"a vs c: {tbhub_s / zst_s:.2f}x the time of tar | zstd, hashing, fsync and full re-read included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
