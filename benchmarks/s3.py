"""Object-storage benchmark: time to all runs for an ``s3://`` log root, tbhub against TensorBoard.

    .venv/bin/python benchmarks/s3.py                     # 20 runs / 1 M records (~150 MB), a few minutes
    .venv/bin/python benchmarks/s3.py --runs 10 --records 200000 --timeout 120   # quicker

Both read the same tree from the same S3-compatible server (moto's ``moto_server`` on 127.0.0.1,
started and stopped here; the tree from ``gentree.py`` is uploaded once):

- **tbhub**: ``tbhub serve`` with ``logdir = "s3://BUCKET/tree"`` (``[s3] endpoint_url`` pointing at
  moto). It mirrors the bucket into its state directory and runs TensorBoard's fast loader on the
  mirror; measured through the hub's proxy ``/tb/NAME/``.
- **TensorBoard**: ``tensorboard --logdir s3://BUCKET/tree --load_fast=false`` with ``S3_ENDPOINT`` and
  ``AWS_ENDPOINT_URL`` pointing at moto: its S3 support is the Python loader (the fast loader cannot
  read ``s3://``), bounded by ``--timeout``; if it does not finish, it is reported as "> timeout" with
  the runs served by then, and the ratio as a lower bound.

"Time to all runs" is the measure of ``serve.py`` (its ``start_and_measure``): from just before
``Popen`` until ``/data/plugin/scalars/tags`` lists every TensorBoard run and, for each run, the
scalars of the tag written last end at the run's last step. tbhub runs first, TensorBoard second, in
one invocation; the ratio is printed and the figures written to ``bench-results/s3.json``.
Everything listens on 127.0.0.1 and every process started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import boto3
import httpx
from tensorboard import version as tb_version

import tbhub
from gentree import ensure_tree, read_marker
from serve import (
    LOCAL,
    Processes,
    Startup,
    _git_head,
    _secs,
    free_port,
    load_average,
    log,
    start_and_measure,
    tree_facts,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TREE = Path("/tmp/tbhub-bench/s3-tree")
DEFAULT_RUNS, DEFAULT_RECORDS = 20, 1_000_000
ENDPOINT = "bench"
BUCKET = "tbhub-bench"
PREFIX = "tree"
RELOAD_INTERVAL = 5
TARGET_RATIO = 10.0
#: Dummy credentials for moto; the region is set rather than passed (s3fs and moto agree on it).
AWS_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def moto_server(procs: Processes) -> Iterator[str]:
    """A fresh ``moto_server`` on a free loopback port; its URL."""
    binary = Path(sys.executable).parent / "moto_server"
    port = free_port()
    url = f"http://{LOCAL}:{port}"
    proc, out = procs.start("moto", [str(binary), "-H", LOCAL, "-p", str(port)])
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/moto-api/data.json", timeout=2, trust_env=False).status_code == 200:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"moto_server did not start: {out.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    try:
        yield url
    finally:
        procs.stop(proc, grace=5.0)


def upload(url: str, root: Path) -> tuple[int, int, float]:
    """Upload every event file below ``root`` to ``s3://BUCKET/PREFIX/``; (files, bytes, seconds)."""
    client = boto3.client("s3", endpoint_url=url)
    client.create_bucket(Bucket=BUCKET)
    paths = [p for p in sorted(root.rglob("*")) if p.is_file() and "tfevents" in p.name]
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: client.upload_file(str(p), BUCKET, f"{PREFIX}/{p.relative_to(root).as_posix()}"),
                      paths))
    return len(paths), sum(p.stat().st_size for p in paths), time.perf_counter() - started


def tbhub_config(tmp: Path, s3_url: str, hub_port: int, tb_port: int) -> Path:
    path = tmp / "tbhub-s3.toml"
    path.write_text(
        f'[server]\nport = {hub_port}\n\n[state]\ndir = "{tmp / "state"}"\n\n[auth]\nmode = "none"\n\n'
        f'[s3]\nendpoint_url = "{s3_url}"\n\n'
        f'[endpoints.{ENDPOINT}]\nlogdir = "s3://{BUCKET}/{PREFIX}"\nport = {tb_port}\n'
        f"reload_interval = {RELOAD_INTERVAL}\n"
    )
    return path


_STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
_SYNCED = re.compile(_STAMP + r" .*mirror of \S+: (\d+) fetched, .* ([\d.]+) MB in ([\d.]+) s")
_LAUNCHED = re.compile(_STAMP + r" .*launched TensorBoard pid")
_UP = re.compile(_STAMP + r" .*TensorBoard is up")


def _when(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def phases(serve_log: str) -> dict[str, float | None]:
    """From ``tbhub serve``'s log (level info): the first sync (seconds, MB) and its TensorBoard's start
    (launch until it answers)."""
    out: dict[str, float | None] = {"first_sync_s": None, "first_sync_mb": None, "tensorboard_start_s": None}
    if m := _SYNCED.search(serve_log):
        out["first_sync_mb"], out["first_sync_s"] = float(m.group(3)), float(m.group(4))
    launched, up = _LAUNCHED.search(serve_log), _UP.search(serve_log)
    if launched and up:
        out["tensorboard_start_s"] = round(_when(up.group(1)) - _when(launched.group(1)), 3)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.update(AWS_ENV)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "S3_ENDPOINT"):
        os.environ.pop(key, None)
    results: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cpus": os.cpu_count(),
            "tensorboard": tb_version.VERSION,
            "git": _git_head(),
            "tbhub_source": str(Path(tbhub.__file__).resolve().parent),
            "load_avg_start": load_average(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }
    }
    root = ensure_tree(args.tree, args.runs, args.records, log=log)
    facts = tree_facts(root)
    marker = read_marker(root)
    with tempfile.TemporaryDirectory(prefix="tbhub-bench-s3-") as tmp_name:
        tmp = Path(tmp_name)
        procs = Processes(tmp)
        try:
            with moto_server(procs) as s3_url:
                files, size, seconds = upload(s3_url, root)
                log(f"uploaded {files} event files, {size / 1e6:.0f} MB to s3://{BUCKET}/{PREFIX} in {seconds:.1f} s")
                results["tree"] = {
                    "root": str(root), "runs": facts.hub_runs, "tensorboard_runs": len(facts.runs),
                    "files": files, "bytes": size, "records": marker.records if marker else None,
                    "upload_s": round(seconds, 1),
                }

                results["cold_scan"] = cold_scans(s3_url, tmp)

                hub_port, tb_port = free_port(), free_port()
                config = tbhub_config(tmp, s3_url, hub_port, tb_port)
                ours, running = start_and_measure(
                    procs, "tbhub serve", [sys.executable, "-m", "tbhub", "serve", "--config", str(config)],
                    f"http://{LOCAL}:{hub_port}/tb/{ENDPOINT}", facts, timeout=args.tbhub_timeout, poll=0.25,
                )
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    mirror = httpx.get(f"http://{LOCAL}:{hub_port}/api/endpoints/{ENDPOINT}", timeout=10,
                                       trust_env=False).json()["mirror"]
                    results["tbhub_mirror"] = mirror
                ours.record_stop(procs.stop(running.proc))
                results["tbhub_phases"] = phases(running.log.read_text(errors="replace"))

                port = free_port()
                env_cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", f"s3://{BUCKET}/{PREFIX}",
                           "--load_fast=false", "--reload_interval", str(RELOAD_INTERVAL),
                           "--port", str(port), "--host", LOCAL]
                # TensorBoard's S3 filesystem reads S3_ENDPOINT; boto3 also honours AWS_ENDPOINT_URL.
                os.environ["S3_ENDPOINT"] = os.environ["AWS_ENDPOINT_URL"] = s3_url
                try:
                    theirs, running = start_and_measure(
                        procs, "tensorboard s3", env_cmd, f"http://{LOCAL}:{port}", facts,
                        timeout=args.timeout, poll=1.0,
                    )
                finally:
                    del os.environ["S3_ENDPOINT"], os.environ["AWS_ENDPOINT_URL"]
                theirs.record_stop(procs.stop(running.proc))
        finally:
            procs.stop_all()
    results["tbhub"] = asdict(ours)
    results["tensorboard_s3"] = asdict(theirs)
    results["ratio"] = ratio(ours, theirs)
    results["meta"]["load_avg_end"] = load_average()
    return results


def cold_scans(s3_url: str, tmp: Path, repeats: int = 2) -> dict[str, Any]:
    """The scanner's first scan of the whole s3:// root (every header read over the network), with the
    reads in flight at once (tbhub's default) against one at a time (the baseline), best of ``repeats``
    each, alternating; both must index the same events."""
    from tbhub.adapters.crc import crc32c
    from tbhub.adapters.db.store import open_state
    from tbhub.adapters.storage.objectstore import ObjectLogStore
    from tbhub.core.inventory import REMOTE_READERS, scan_endpoint
    from tbhub.core.models import EndpointSpec

    spec = EndpointSpec(ENDPOINT, f"s3://{BUCKET}/{PREFIX}", reload_interval=RELOAD_INTERVAL)
    options = {"endpoint_url": s3_url}
    timings: dict[int, list[float]] = {1: [], REMOTE_READERS: []}
    events: dict[int, int] = {}
    for trial in range(repeats):
        for readers in (1, REMOTE_READERS):
            state = open_state(f"sqlite:///{tmp / f'scan-{readers}-{trial}.db'}")  # an empty index: a cold scan
            try:
                store = ObjectLogStore(spec.logdir, options)
                started = time.perf_counter()
                inventory = scan_endpoint(spec, store, state, crc32c=crc32c, remote_readers=readers)
                timings[readers].append(time.perf_counter() - started)
                events[readers] = sum(run.event_count for run in inventory.runs)
            finally:
                state.dispose()
    if events[1] != events[REMOTE_READERS]:
        raise SystemExit(f"the two scans disagree: {events}")
    serial, parallel = min(timings[1]), min(timings[REMOTE_READERS])
    log(f"cold scan of s3://: {parallel:.2f} s with {REMOTE_READERS} reads in flight, {serial:.2f} s one at a time")
    return {"readers": REMOTE_READERS, "parallel_s": round(parallel, 3), "serial_s": round(serial, 3),
            "ratio": round(serial / parallel, 2), "events": events[1],
            "trials": {str(k): v for k, v in timings.items()}}


def ratio(ours: Startup, theirs: Startup) -> dict[str, Any]:
    """TensorBoard's time over tbhub's; a lower bound when TensorBoard did not finish in time."""
    if ours.served_s is None:
        return {"value": None, "lower_bound": False, "met": False}
    baseline = theirs.served_s if theirs.served_s is not None else theirs.timeout_s
    value = baseline / ours.served_s
    return {"value": round(value, 1), "lower_bound": theirs.served_s is None, "met": value >= TARGET_RATIO}


def report(r: dict[str, Any]) -> str:
    tree, ours, theirs, q = r["tree"], r["tbhub"], r["tensorboard_s3"], r["ratio"]
    lines = [
        "",
        f"tree: {tree['runs']} runs ({tree['tensorboard_runs']} TensorBoard runs), {tree['files']} files, "
        f"{tree['bytes'] / 1e6:.0f} MB, {tree['records'] or 0:,} records, in moto_server",
        "",
        f"{'':<34} {'time to all runs':>18} {'runs served':>12} {'peak RSS':>10}",
    ]
    for label, s in (("tbhub serve (mirror + fast loader)", ours), ("tensorboard --logdir s3://", theirs)):
        lines.append(f"{label:<34} {_secs(s['served_s'], s['timeout_s']):>18} "
                     f"{s['runs_done']:>5}/{s['runs_total']:<6} {s['peak_rss_mb']:>7.0f} MB")
    p = r.get("tbhub_phases") or {}
    if p.get("first_sync_s") is not None:
        lines.append(f"\ntbhub: first sync {p['first_sync_mb']:.0f} MB in {p['first_sync_s']:.2f} s; "
                     f"its TensorBoard answered {_secs(p.get('tensorboard_start_s'))} after launch")
    scan = r.get("cold_scan")
    if scan:
        lines.append(f"\ncold scan of the s3:// root ({scan['events']:,} events indexed): "
                     f"{scan['parallel_s']:.2f} s with {scan['readers']} reads in flight vs {scan['serial_s']:.2f} s "
                     f"one at a time = {scan['ratio']:.1f}x")
    if q["value"] is None:
        lines.append("\nratio: tbhub did not serve every run in time")
    else:
        bound = ">= " if q["lower_bound"] else ""
        lines.append(f"\nratio: {bound}{q['value']:.1f}x faster (target >= {TARGET_RATIO:.0f}x: "
                     f"{'met' if q['met'] else 'MISSED'})")
    return "\n".join(lines)


def _sig_term(signum: int, frame: object) -> None:
    raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=DEFAULT_TREE, help=f"tree root (default {DEFAULT_TREE})")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for TensorBoard on s3:// (300)")
    parser.add_argument("--tbhub-timeout", type=float, default=180.0, help="seconds for tbhub (180)")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "s3.json")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _sig_term)  # the cleanup in `finally` blocks runs on SIGTERM too
    results = run(args)
    print(report(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
