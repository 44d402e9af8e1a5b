"""Object storage at real-world latency: tbhub against TensorBoard, ``aws s3 sync`` and ``rclone sync``.

    .venv/bin/python benchmarks/s3.py --latency-ms 30        # 100 runs, 1.5 M records (~240 MB), ~6 min
    .venv/bin/python benchmarks/s3.py --latency-ms 30 --quick   # 20 runs, 200 k records, ~2 min

An S3-compatible server (moto's ``moto_server``, started and stopped here) holds a tree from
``gentree.py``; everything reads it through one latency proxy (``tests/latency_proxy.py`` as a
process: ``--latency-ms`` added each way per chunk, so a request costs one round trip more, optional
``--bandwidth-mbps``), which also counts the bytes and requests of each phase. One invocation, in order:

1. **Cold scan**: tbhub's scanner indexes the whole ``s3://`` root (every record header read with
   ranged GETs) with 16 reads in flight (its default) and one at a time; the ratio (target >= 8x).
2. **First sync**: tbhub's mirror (what ``serve`` keeps) against ``aws s3 sync`` (awscli in the
   benchmark's own venv under ``~/.cache/tbhub-bench``) and ``rclone sync`` (if installed; skipped
   with a line otherwise), each into an empty folder, default settings (target: no slower than the
   fastest).
3. **Time to all runs**: ``tbhub serve`` on ``s3://`` (mirror + TensorBoard's fast loader, through
   the hub's proxy) against ``tensorboard --logdir s3:// --load_fast=false`` (its S3 support), as in
   ``serve.py``'s ``start_and_measure``; TensorBoard bounded by ``--timeout`` (then a lower bound).
4. **Incremental sync**: 1 MB of scalar events appended to the largest event file of 5 of the runs
   (the grown objects are uploaded; the local tree is not touched), then each tool syncs again: time,
   and bytes over the proxy (target >= 10x fewer bytes than ``aws s3 sync``).
5. **Idle rescan** of a separate prefix of 1,000 small objects: what ``serve`` sends per rescan (a
   mirror sync and a scan of the mirror) and what the CLI sends (a direct scan, index warm), against
   the number of listing pages (target: only those).

Figures are printed with their ratios and written to ``bench-results/s3.json`` (``s3-quick.json``).
Everything listens on 127.0.0.1; every process started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
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
from s3_sync import (
    SyncRun,
    aws_binary,
    grow_runs,
    idle_tree,
    measured,
    rclone_binary,
    run_aws,
    run_rclone,
    tbhub_sync,
)
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
sys.path.insert(0, str(REPO / "tests"))  # the latency proxy lives with the tests, which use it too
from latency_proxy import ProxyProcess  # noqa: E402

TREES = Path("/tmp/tbhub-bench")
DEFAULT_RUNS, DEFAULT_RECORDS = 100, 1_500_000
QUICK_RUNS, QUICK_RECORDS = 20, 200_000
ENDPOINT = "bench"
BUCKET = "tbhub-bench"
PREFIX = "tree"
IDLE_PREFIX = "idle"
RELOAD_INTERVAL = 5
TARGET_RATIO = 10.0  # time to all runs, tbhub against TensorBoard
TARGET_SCAN = 8.0  # cold scan, 16 reads in flight against 1
TARGET_BYTES = 10.0  # incremental sync, aws s3 sync's bytes against tbhub's
PAGE_KEYS = 1000  # keys per listing page (ListObjectsV2)
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
            "command": " ".join(["python benchmarks/s3.py", *sys.argv[1:]]),
        },
        "proxy": {"latency_ms_each_way": args.latency_ms, "bandwidth_mbps": args.bandwidth_mbps,
                  "handshake": False, "note": "moto_server closes every connection; no handshake delay is added"},
    }
    tree = args.tree or TREES / f"s3-tree-{args.runs}-{args.records}"
    root = ensure_tree(tree, args.runs, args.records, log=log)
    facts = tree_facts(root)
    marker = read_marker(root)
    aws = aws_binary(log)
    rclone = rclone_binary()
    url = f"s3://{BUCKET}/{PREFIX}"
    with tempfile.TemporaryDirectory(prefix="tbhub-bench-s3-") as tmp_name:
        tmp = Path(tmp_name)
        procs = Processes(tmp)
        try:
            with moto_server(procs) as s3_url, ProxyProcess(s3_url, delay_ms=args.latency_ms,
                                                            bandwidth_mbps=args.bandwidth_mbps) as proxy:
                files, size, seconds = upload(s3_url, root)
                direct = boto3.client("s3", endpoint_url=s3_url)
                idle_tree(direct, BUCKET, IDLE_PREFIX, args.idle_objects)
                log(f"uploaded {files} event files, {size / 1e6:.0f} MB to {url} in {seconds:.1f} s; "
                    f"proxy {proxy.url}: {args.latency_ms:g} ms each way")
                results["tree"] = {
                    "root": str(root), "runs": facts.hub_runs, "tensorboard_runs": len(facts.runs),
                    "files": files, "bytes": size, "records": marker.records if marker else None,
                    "upload_s": round(seconds, 1),
                }

                results["cold_scan"] = cold_scans(proxy, tmp, args.scan_repeats)

                sync = Syncs(proxy, aws, rclone, tmp)
                if not rclone:
                    log("rclone is not installed (apt-get install rclone): skipped")
                first = sync.first(url, "tree", args.sync_repeats)
                results["first_sync"] = {k: asdict(v) for k, v in first.items()}
                small = sync.first(f"s3://{BUCKET}/{IDLE_PREFIX}", "small", 1)
                results["first_sync_small"] = {k: asdict(v) for k, v in small.items()}

                ours, theirs = serve_phase(args, procs, tmp, proxy.url, facts, results)
                results["tbhub"] = asdict(ours)
                results["tensorboard_s3"] = asdict(theirs) if theirs else None
                results["ratio"] = ratio(ours, theirs) if theirs else None

                grown = grow_runs(direct, BUCKET, PREFIX, root, args.grow_runs, args.grow_bytes)
                again = sync.again(url, "tree")
                results["incremental"] = {"grown": len(grown), "appended_bytes": sum(a for _, a in grown.values()),
                                          "grown_file_bytes": sum(b for b, _ in grown.values()),
                                          "runs": {k: asdict(v) for k, v in again.items()}}
                results["idle"] = idle_rescan(proxy, tmp, args.idle_objects)
        finally:
            procs.stop_all()
    results["meta"]["load_avg_end"] = load_average()
    return results


class Syncs:
    """Each tool's syncs, into folders of its own, through the proxy."""

    def __init__(self, proxy: ProxyProcess, aws: Path, rclone: str | None, tmp: Path) -> None:
        self.proxy, self.aws, self.rclone, self.tmp = proxy, aws, rclone, tmp
        self.tools = ["tbhub", "aws"] + (["rclone"] if rclone else [])
        self.kept: dict[str, int] = {}  # per name, the trial whose folders ``again`` syncs

    def _one(self, tool: str, url: str, dest: Path) -> SyncRun:
        if tool == "tbhub":
            return tbhub_sync(self.proxy, url, dest)
        if tool == "aws":
            return measured("aws", self.proxy, dest, lambda: run_aws(self.aws, self.proxy.url, url, dest, AWS_ENV))
        assert self.rclone is not None
        rclone = self.rclone
        return measured("rclone", self.proxy, dest, lambda: run_rclone(rclone, self.proxy.url, url, dest, AWS_ENV))

    def first(self, url: str, name: str, repeats: int) -> dict[str, SyncRun]:
        """Each tool's sync into an empty folder, best of ``repeats`` (tools alternating); the folder of
        the last repeat is kept for ``again``."""
        best: dict[str, SyncRun] = {}
        for trial in range(repeats):
            for tool in self.tools:
                dest = self.tmp / f"{name}-{tool}-{trial}"
                run = self._one(tool, url, dest)
                self.kept[name] = trial
                if tool not in best or run.seconds < best[tool].seconds:
                    best[tool] = run
                log(f"first sync of {name}, {tool}: {run.seconds:.2f} s, {run.bytes_down / 1e6:.1f} MB, "
                    f"{sum(run.requests.values())} requests, {run.files} files")
        return best

    def again(self, url: str, name: str) -> dict[str, SyncRun]:
        out = {}
        for tool in self.tools:
            out[tool] = run = self._one(tool, url, self.tmp / f"{name}-{tool}-{self.kept[name]}")
            log(f"incremental sync of {name}, {tool}: {run.seconds:.2f} s, {run.bytes_down / 1e6:.2f} MB")
        return out


def serve_phase(args: argparse.Namespace, procs: Processes, tmp: Path, endpoint: str, facts: Any,
                results: dict[str, Any]) -> tuple[Startup, Startup | None]:
    """Time to all runs: tbhub serve, then TensorBoard's S3 loader, both through the proxy."""
    hub_port, tb_port = free_port(), free_port()
    config = tbhub_config(tmp, endpoint, hub_port, tb_port)
    ours, running = start_and_measure(
        procs, "tbhub serve", [sys.executable, "-m", "tbhub", "serve", "--config", str(config)],
        f"http://{LOCAL}:{hub_port}/tb/{ENDPOINT}", facts, timeout=args.tbhub_timeout, poll=0.25,
    )
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
        results["tbhub_mirror"] = httpx.get(f"http://{LOCAL}:{hub_port}/api/endpoints/{ENDPOINT}", timeout=10,
                                            trust_env=False).json()["mirror"]
    ours.record_stop(procs.stop(running.proc))
    results["tbhub_phases"] = phases(running.log.read_text(errors="replace"))
    if args.skip_tensorboard:
        return ours, None
    port = free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", f"s3://{BUCKET}/{PREFIX}", "--load_fast=false",
           "--reload_interval", str(RELOAD_INTERVAL), "--port", str(port), "--host", LOCAL]
    # TensorBoard's S3 filesystem reads S3_ENDPOINT; boto3 also honours AWS_ENDPOINT_URL.
    os.environ["S3_ENDPOINT"] = os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        theirs, running = start_and_measure(procs, "tensorboard s3", cmd, f"http://{LOCAL}:{port}", facts,
                                            timeout=args.timeout, poll=1.0)
    finally:
        del os.environ["S3_ENDPOINT"], os.environ["AWS_ENDPOINT_URL"]
    theirs.record_stop(procs.stop(running.proc))
    return ours, theirs


def cold_scans(proxy: ProxyProcess, tmp: Path, repeats: int) -> dict[str, Any]:
    """The scanner's first scan of the whole s3:// root (every header read over the network), with the
    reads in flight at once (tbhub's default) against one at a time (the baseline), best of ``repeats``
    each, alternating; both must index the same events."""
    from tbhub.adapters.crc import crc32c
    from tbhub.adapters.db.store import open_state
    from tbhub.adapters.storage.objectstore import ObjectLogStore
    from tbhub.core.inventory import REMOTE_READERS, scan_endpoint
    from tbhub.core.models import EndpointSpec

    spec = EndpointSpec(ENDPOINT, f"s3://{BUCKET}/{PREFIX}", reload_interval=RELOAD_INTERVAL)
    timings: dict[int, list[float]] = {REMOTE_READERS: [], 1: []}
    events: dict[int, int] = {}
    requests: dict[int, dict[str, int]] = {}
    for trial in range(repeats):
        for readers in (REMOTE_READERS, 1):
            state = open_state(f"sqlite:///{tmp / f'scan-{readers}-{trial}.db'}")  # an empty index: a cold scan
            try:
                store = ObjectLogStore(spec.logdir, {"endpoint_url": proxy.url})
                proxy.reset()
                started = time.perf_counter()
                inventory = scan_endpoint(spec, store, state, crc32c=crc32c, remote_readers=readers)
                timings[readers].append(time.perf_counter() - started)
                requests[readers] = proxy.stats()["requests"]
                events[readers] = sum(run.event_count for run in inventory.runs)
            finally:
                state.dispose()
            log(f"cold scan, {readers} in flight: {timings[readers][-1]:.2f} s, {requests[readers]}")
    if events[1] != events[REMOTE_READERS]:
        raise SystemExit(f"the two scans disagree: {events}")
    serial, parallel = min(timings[1]), min(timings[REMOTE_READERS])
    return {"readers": REMOTE_READERS, "parallel_s": round(parallel, 3), "serial_s": round(serial, 3),
            "ratio": round(serial / parallel, 2), "events": events[1], "requests": requests[REMOTE_READERS],
            "trials": {str(k): v for k, v in timings.items()}}


def idle_rescan(proxy: ProxyProcess, tmp: Path, objects: int) -> dict[str, Any]:
    """Requests of one rescan of an unchanged root of ``objects`` objects, as serve does it (a mirror sync
    and a scan of the mirror) and as the CLI does it (a direct scan with the index warm)."""
    from tbhub.adapters.crc import crc32c
    from tbhub.adapters.db.store import open_state
    from tbhub.adapters.storage.mirror import Mirror, MirroredLogStore
    from tbhub.adapters.storage.objectstore import ObjectLogStore
    from tbhub.adapters.storage.remote import open_filesystem
    from tbhub.core.inventory import scan_endpoint
    from tbhub.core.models import EndpointSpec

    url = f"s3://{BUCKET}/{IDLE_PREFIX}"
    spec = EndpointSpec("idle", url, reload_interval=RELOAD_INTERVAL)
    options = {"endpoint_url": proxy.url}
    fs, root = open_filesystem(url, options)
    folder = tmp / "idle-mirror"
    mirror = Mirror(fs, root, folder, label=url)
    state = open_state(f"sqlite:///{tmp / 'idle.db'}")
    try:
        mirror.sync()
        scan_endpoint(spec, MirroredLogStore(url, options, folder), state, crc32c=crc32c)
        proxy.reset()
        started = time.perf_counter()
        mirror.sync()
        served = scan_endpoint(spec, MirroredLogStore(url, options, folder), state, crc32c=crc32c)
        serve_s, serve_requests = time.perf_counter() - started, proxy.stats()["requests"]
        proxy.reset()
        started = time.perf_counter()
        cli = scan_endpoint(spec, ObjectLogStore(url, options), state, crc32c=crc32c)
        cli_s, cli_requests = time.perf_counter() - started, proxy.stats()["requests"]
    finally:
        state.dispose()
    pages = math.ceil(objects / PAGE_KEYS)
    log(f"idle rescan of {objects} objects: serve {serve_requests} in {serve_s:.2f} s, CLI {cli_requests}")
    return {"objects": objects, "files": served.files, "list_pages": pages,
            "serve": {"requests": serve_requests, "seconds": round(serve_s, 3), "files_read": served.files_read},
            "cli": {"requests": cli_requests, "seconds": round(cli_s, 3), "files_read": cli.files_read}}


def ratio(ours: Startup, theirs: Startup) -> dict[str, Any]:
    """TensorBoard's time over tbhub's; a lower bound when TensorBoard did not finish in time."""
    if ours.served_s is None:
        return {"value": None, "lower_bound": False, "met": False}
    baseline = theirs.served_s if theirs.served_s is not None else theirs.timeout_s
    value = baseline / ours.served_s
    return {"value": round(value, 1), "lower_bound": theirs.served_s is None, "met": value >= TARGET_RATIO}


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def report(r: dict[str, Any]) -> str:
    tree, p = r["tree"], r["proxy"]
    lines = [
        "",
        f"tree: {tree['runs']} runs ({tree['tensorboard_runs']} TensorBoard runs), {tree['files']} files, "
        f"{tree['bytes'] / 1e6:.0f} MB, {tree['records'] or 0:,} records, in moto_server behind the latency proxy "
        f"({p['latency_ms_each_way']:g} ms each way"
        + (f", {p['bandwidth_mbps']:g} Mbit/s" if p["bandwidth_mbps"] else ", no bandwidth cap") + ")",
    ]
    scan = r["cold_scan"]
    met = "met" if scan["ratio"] >= TARGET_SCAN else "MISSED"
    lines.append(f"\ncold scan ({scan['events']:,} events, {sum(scan['requests'].values())} requests): "
                 f"{scan['parallel_s']:.2f} s with {scan['readers']} reads in flight vs {scan['serial_s']:.2f} s one "
                 f"at a time = {scan['ratio']:.1f}x (target >= {TARGET_SCAN:.0f}x: {met})")
    first = r["first_sync"]
    ours = first["tbhub"]
    lines.append(f"\n{'first sync':<12} {'time':>9} {'MB over the proxy':>18} {'requests':>9}  tbhub is")
    for name, sync in first.items():
        faster = "" if name == "tbhub" else f"{sync['seconds'] / ours['seconds']:.2f}x faster"
        lines.append(f"{name:<12} {sync['seconds']:>8.2f}s {sync['bytes_down'] / 1e6:>18.1f} "
                     f"{sum(sync['requests'].values()):>9}  {faster}")
    fastest = min(s["seconds"] for k, s in first.items() if k != "tbhub")
    lines.append(f"target (no slower than the fastest other tool): "
                 f"{'met' if ours['seconds'] <= fastest else 'MISSED'}")
    small = r["first_sync_small"]
    lines.append(f"\nfirst sync of {r['idle']['objects']:,} small objects: " + ", ".join(
        f"{name} {sync['seconds']:.2f} s" for name, sync in small.items()) + " (tbhub: " + ", ".join(
        f"{sync['seconds'] / small['tbhub']['seconds']:.1f}x faster than {name}"
        for name, sync in small.items() if name != "tbhub") + ")")
    inc = r["incremental"]
    mine = inc["runs"]["tbhub"]
    lines.append(f"\nafter appending {inc['appended_bytes'] / 1e6:.1f} MB to {inc['grown']} runs:")
    lines.append(f"{'incremental':<12} {'time':>9} {'MB over the proxy':>18} {'requests':>9}  tbhub: time, bytes")
    for name, sync in inc["runs"].items():
        versus = "" if name == "tbhub" else (f"{sync['seconds'] / mine['seconds']:.1f}x faster, "
                                             f"{sync['bytes_down'] / mine['bytes_down']:.1f}x fewer bytes")
        lines.append(f"{name:<12} {sync['seconds']:>8.2f}s {sync['bytes_down'] / 1e6:>18.2f} "
                     f"{sum(sync['requests'].values()):>9}  {versus}")
    aws_bytes = inc["runs"]["aws"]["bytes_down"] / mine["bytes_down"]
    lines.append(f"the grown files held {inc['grown_file_bytes'] / 1e6:.1f} MB before: a tool that fetches a grown "
                 f"file whole moves {(inc['grown_file_bytes'] + inc['appended_bytes']) / 1e6:.1f} MB")
    lines.append(f"tbhub fetched {mine['payload_bytes']:,} bytes of objects for {inc['appended_bytes']:,} appended; "
                 f"target >= {TARGET_BYTES:.0f}x fewer bytes than aws s3 sync: "
                 f"{'met' if aws_bytes >= TARGET_BYTES else 'MISSED'}")
    theirs, q = r.get("tensorboard_s3"), r.get("ratio")
    served = r["tbhub"]
    lines.append(f"\n{'':<34} {'time to all runs':>18} {'runs served':>12} {'peak RSS':>10}")
    for label, s in (("tbhub serve (mirror + fast loader)", served), ("tensorboard --logdir s3://", theirs)):
        if s is not None:
            lines.append(f"{label:<34} {_secs(s['served_s'], s['timeout_s']):>18} "
                         f"{s['runs_done']:>5}/{s['runs_total']:<6} {s['peak_rss_mb']:>7.0f} MB")
    ph = r.get("tbhub_phases") or {}
    if ph.get("first_sync_s") is not None:
        lines.append(f"tbhub: first sync {ph['first_sync_mb']:.0f} MB in {ph['first_sync_s']:.2f} s; "
                     f"its TensorBoard answered {_secs(ph.get('tensorboard_start_s'))} after launch")
    if q is not None:
        if q["value"] is None:
            lines.append("ratio: tbhub did not serve every run in time")
        else:
            bound = ">= " if q["lower_bound"] else ""
            lines.append(f"ratio: {bound}{q['value']:.1f}x sooner (target >= {TARGET_RATIO:.0f}x: "
                         f"{'met' if q['met'] else 'MISSED'})")
    idle = r["idle"]
    lines.append(f"\nidle rescan of {idle['objects']:,} objects ({idle['list_pages']} listing page(s)): serve "
                 f"{idle['serve']['requests']} in {idle['serve']['seconds']:.2f} s, CLI {idle['cli']['requests']} "
                 f"in {idle['cli']['seconds']:.2f} s; target (only the listing pages): "
                 f"{'met' if set(idle['serve']['requests']) <= {'LIST'} else 'MISSED'}")
    return "\n".join(lines)


def _sig_term(signum: int, frame: object) -> None:
    raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=30.0, help="added each way by the proxy (30)")
    parser.add_argument("--bandwidth-mbps", type=float, default=None, help="the proxy's link capacity (none)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_RUNS} runs, {QUICK_RECORDS:,} records, TensorBoard bounded by 60 s")
    parser.add_argument("--tree", type=Path, default=None, help=f"tree root (default under {TREES})")
    parser.add_argument("--runs", type=int, default=None, help=f"runs in the tree ({DEFAULT_RUNS})")
    parser.add_argument("--records", type=int, default=None, help=f"records in the tree ({DEFAULT_RECORDS:,})")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for TensorBoard on s3:// (180)")
    parser.add_argument("--tbhub-timeout", type=float, default=180.0, help="seconds for tbhub (180)")
    parser.add_argument("--skip-tensorboard", action="store_true", help="do not time TensorBoard's S3 loader")
    parser.add_argument("--scan-repeats", type=int, default=1, help="cold scans of each kind, best kept (1)")
    parser.add_argument("--sync-repeats", type=int, default=2, help="first syncs of each tool, best kept (2)")
    parser.add_argument("--grow-runs", type=int, default=5, help="runs appended to for the incremental sync (5)")
    parser.add_argument("--grow-bytes", type=int, default=1_000_000, help="bytes appended to each (1,000,000)")
    parser.add_argument("--idle-objects", type=int, default=1000, help="objects of the idle-rescan root (1,000)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.runs = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    args.records = args.records or (QUICK_RECORDS if args.quick else DEFAULT_RECORDS)
    args.timeout = args.timeout or (60.0 if args.quick else 180.0)
    out = args.out or REPO / "bench-results" / ("s3-quick.json" if args.quick else "s3.json")
    signal.signal(signal.SIGTERM, _sig_term)  # the cleanup in `finally` blocks runs on SIGTERM too
    results = run(args)
    print(report(results))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
