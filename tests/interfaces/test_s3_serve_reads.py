"""``tbhub serve`` reads each byte of an ``s3://`` root once: the mirror fetches it, and the index scan
and the alert engine's scalar parse read the mirror (moto_server behind the latency proxy, which
counts every request)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import Server, serve, wait_for

import s3
from eventfiles import write_scalar_file
from latency_proxy import LatencyProxy

pytestmark = pytest.mark.slow

PREFIX = "team/tb"
NAME = "cloud"


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[LatencyProxy]:
    with LatencyProxy.to(s3_endpoint, delay_ms=5) as running:
        yield running


def _runs(server: Server) -> list[dict[str, Any]]:
    response = server.get(f"/api/endpoints/{NAME}/runs")
    return response.json() if response.status_code == 200 else []  # type: ignore[no-any-return]


def test_serve_fetches_each_event_file_once_and_scans_and_parses_the_mirror(
    s3_endpoint: str, s3_bucket: str, proxy: LatencyProxy, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_scalar_file(src / "llm" / "run-a", range(3000), ("loss", "lr"))
    write_scalar_file(src / "llm" / "run-b", range(2000), name="events.out.tfevents.1700000001.host.2.0")
    write_scalar_file(src / "vision" / "run-c" / "train", range(1000), name="events.out.tfevents.1700000002.host.3.0")
    s3.upload_tree(s3_endpoint, src, s3_bucket, PREFIX)
    url = f"s3://{s3_bucket}/{PREFIX}"
    sizes = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())

    with serve(tmp_path / "serve", {NAME: url},  # type: ignore[dict-item]
               extra_config=f'[s3]\nendpoint_url = "{proxy.url}"\n') as server:
        # The index lists every run with its last step, and the alert pass decided every status.
        runs = wait_for(lambda: (r := _runs(server)) and len(r) == 3 and all(x.get("status") for x in r) and r,
                        90, "every run indexed and given a status")
        assert {r["relpath"]: r["last_step"] for r in runs} == {
            "llm/run-a": 2999, "llm/run-b": 1999, "vision/run-c": 999}
        stats = proxy.stats()
    # Three objects, each fetched once (by the mirror); the scans and the parse read the local copies.
    assert stats["requests"].get("GET") == 3, stats
    assert "HEAD" not in stats["requests"], stats
    assert sizes < stats["bytes_down"] < sizes + 64 * 1024  # the bodies once, plus headers and listings
