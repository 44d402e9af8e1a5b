"""Compare benchmark: the compare page and its curves for 10 runs x 2 tags on a 10,000-run index.

    .venv/bin/python benchmarks/compare.py            # 10,000 runs; the tree is generated once (~1 min)
    .venv/bin/python benchmarks/compare.py --runs 2000 --steps 20000 --reps 5

The tree (``--tree``, default /tmp/tbhub-bench/compare-RUNS) holds RUNS runs in 50 datasets, each one
PyTorch-style event file with ``train/loss`` every step and ``eval/loss`` every 10 steps (200 steps);
the 10 compared runs are long: ``--steps`` steps (default 50,000, so 55,000 points per run, 2.6 MB).
The index and the scalar states are built first (what ``tbhub serve``'s scanner and parse worker keep
in the state database), then the hub app answers in process (httpx over ASGI, no network):

1. ``/compare?run=...x10&tag=train/loss&tag=eval/loss``: the page (table, tag picker) from the index;
2. ``/api/compare/series`` for the same runs and tags: the curves, cold (event files read, thinned to
   1,000 points per series) and warm (the app's series cache);
3. one compared run's page (``/runs/bench/...``: status, scalars with sparklines), cold and warm;
4. the series reader alone (``core.series.read_file_series`` over the 10 runs' event files, what the
   cold curves spend most of their time in), per record;
5. baselines in the same run: the hub's compare before runs could be chosen (``/api/compare`` of the
   two tags over every run of the endpoint), and TensorBoard's own loader (``EventAccumulator``, 1,000
   points per series, its default) reading the 10 runs.

Medians of ``--reps`` repetitions; cold series with an empty series cache each time, as a freshly started
hub has (the OS page cache is warm). The machine's load average is printed before and after: the
figures are CPU-bound and move with what else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gentree import frame, simple_value_template

DATASETS = 50
SHORT_STEPS = 200
MARKER = ".tbhub-bench-compare.json"


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def write_run(path: Path, steps: int, seed: int, t0: float) -> None:
    loss, evals = simple_value_template("train/loss"), simple_value_template("eval/loss")
    chunks = [frame(b"\x09" + struct.pack("<d", t0) + b"\x1a\x0dbrain.Event:2")]
    for s in range(steps):
        tags = [(loss, 2.0 / (1 + 0.001 * (s + seed % 97)))]
        if s % 10 == 0:
            tags.append((evals, 2.2 / (1 + 0.001 * (s + seed % 89))))
        for (before, after), value in tags:
            summary = before + struct.pack("<f", value) + after
            chunks.append(frame(b"\x09" + struct.pack("<d", t0 + s) + b"\x10" + _varint(s)
                                + b"\x2a" + _varint(len(summary)) + summary))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(chunks))


def chosen_runs(runs: int) -> list[str]:
    return [f"ds{i % DATASETS:02d}/run{i:05d}" for i in range(0, runs, max(1, runs // 10))][:10]


def ensure_tree(root: Path, runs: int, steps: int) -> None:
    marker = root / MARKER
    want = {"runs": runs, "steps": steps, "format": 1}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return
    shutil.rmtree(root, ignore_errors=True)
    long = set(chosen_runs(runs))
    started = time.perf_counter()
    for i in range(runs):
        rel = f"ds{i % DATASETS:02d}/run{i:05d}"
        write_run(root / rel / "events.out.tfevents.1700000000.bench.1.0", steps if rel in long else SHORT_STEPS,
                  i, 1.7e9 + 60 * i)
    marker.write_text(json.dumps(want))
    print(f"tree: {runs:,} runs written in {time.perf_counter() - started:.1f} s under {root}")


def median_ms(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=50_000, help="steps of each of the 10 compared runs")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tree", type=Path)
    args = parser.parse_args(argv)
    root = args.tree or Path(f"/tmp/tbhub-bench/compare-{args.runs}")
    ensure_tree(root, args.runs, args.steps)
    load_before = os.getloadavg()

    from starlette.testclient import TestClient
    from tensorboard.backend.event_processing import event_accumulator as ea

    from tbhub.adapters.scalar_decoder import ProtobufDecoder
    from tbhub.app.hub import Hub
    from tbhub.app.scalars import update_scalar_states
    from tbhub.app.series import SeriesCache
    from tbhub.app.services import Services
    from tbhub.config import AuthConfig, Config, EndpointConfig, StateConfig
    from tbhub.interfaces.web.app import create_app

    work = Path(tempfile.mkdtemp(prefix="tbhub-bench-compare-"))
    try:
        cfg = Config(auth=AuthConfig(mode="none"), state=StateConfig(dir=work / "state"),
                     endpoints={"bench": EndpointConfig(logdir=str(root))})
        services = Services(cfg)
        hub = Hub(services, None)
        started = time.perf_counter()
        hub.refresh("bench")
        scanned = time.perf_counter() - started
        update_scalar_states(services, services.spec("bench"), hub.runs("bench"), ProtobufDecoder())
        parsed = time.perf_counter() - started - scanned
        print(f"index: {len(hub.runs('bench')):,} runs scanned in {scanned:.1f} s, scalar states in {parsed:.1f} s")

        chosen = chosen_runs(args.runs)
        runs = "&".join(f"run=bench/{r}" for r in chosen)
        tags = "tag=train/loss&tag=eval/loss"

        def client() -> httpx.Client:
            # In process, without the lifespan: no background scan competes with the requests.
            app = create_app(hub, scan_interval=3600, job_interval=3600, alerts=False)
            return TestClient(app, base_url="http://hub")

        def get(c: httpx.Client, url: str) -> httpx.Response:
            answer = c.get(url)
            answer.raise_for_status()
            return answer

        with client() as c:
            page = get(c, f"/compare?{runs}&{tags}")
            assert page.text.count('data-run="bench/') == 10, "the page lists the 10 runs"
            page_ms = median_ms(lambda: get(c, f"/compare?{runs}&{tags}"), args.reps)
            body = get(c, f"/api/compare/series?{runs}&{tags}")
            series = body.json()
            points = sum(len(s["steps"]) for r in series["runs"] for s in r["series"].values())
            total = sum(s["total"] for r in series["runs"] for s in r["series"].values())
            warm_ms = median_ms(lambda: get(c, f"/api/compare/series?{runs}&{tags}"), args.reps)
            old_ms = median_ms(lambda: get(c, f"/api/compare?{tags}"), max(1, args.reps // 2))
            run_page = f"/runs/bench/{chosen[0]}"
            c.app.state.series_cache = SeriesCache()  # type: ignore[attr-defined]
            started = time.perf_counter()
            get(c, run_page)
            run_cold_ms = 1000 * (time.perf_counter() - started)
            run_ms = median_ms(lambda: get(c, run_page), args.reps)

            def cold() -> None:
                c.app.state.series_cache = SeriesCache()  # type: ignore[attr-defined]  # as a fresh hub has
                get(c, f"/api/compare/series?{runs}&{tags}")

            cold_ms = median_ms(cold, args.reps)

        def tensorboard() -> None:
            for r in chosen:
                acc = ea.EventAccumulator(str(root / r), size_guidance={ea.SCALARS: 1000})
                acc.Reload()
                acc.Scalars("train/loss")
                acc.Scalars("eval/loss")

        from tbhub.adapters.crc import crc32c
        from tbhub.core.series import read_file_series

        files = sorted(f for r in chosen for f in (root / r).iterdir())
        records = 0

        def reader() -> None:
            nonlocal records
            records = 0
            decoder = ProtobufDecoder()
            for path in files:
                with open(path, "rb") as fh:
                    state = read_file_series(fh, size=path.stat().st_size, decoder=decoder, crc32c=crc32c,
                                             keep=lambda tag: tag)
                state.series()
                records += state.walk.records

        reader_ms = median_ms(reader, args.reps)
        tb_ms = median_ms(tensorboard, max(1, min(3, args.reps)))
        load_after = os.getloadavg()
        mb = sum(f.stat().st_size for r in chosen for f in (root / r).iterdir()) / 1e6
        print(f"\ncompare of 10 runs x 2 tags on a {args.runs:,}-run index ({args.steps:,} steps per compared run, "
              f"{total:,} points, {mb:.1f} MB of event files; medians of {args.reps}):")
        print(f"  page /compare (table, tag picker)         {page_ms:8.1f} ms  ({len(page.content) / 1e3:.0f} kB)")
        print(f"  curves /api/compare/series, cold          {cold_ms:8.1f} ms  ({points:,} points sent, "
              f"{len(body.content) / 1e3:.0f} kB)")
        print(f"  curves /api/compare/series, warm (cache)  {warm_ms:8.1f} ms")
        print(f"  page + cold curves                        {page_ms + cold_ms:8.1f} ms  (target < 1,000 ms)")
        print(f"  run page of one compared run, cold / warm  {run_cold_ms:8.1f} ms / {run_ms:.1f} ms (sparklines)")
        print(f"  the series reader alone, the 10 runs' files  {reader_ms:8.1f} ms  ({records:,} records, "
              f"{1000 * reader_ms / records:.2f} µs per record)")
        print("baselines:")
        print(f"  /api/compare of the 2 tags over all {args.runs:,} runs (compare before run choice) "
              f"{old_ms:8.1f} ms")
        print(f"  TensorBoard EventAccumulator, the 10 runs (1,000 points per series)   {tb_ms:8.1f} ms  "
              f"(cold curves are {tb_ms / cold_ms:.1f}x faster)")
        print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after, on {os.cpu_count()} cores")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
