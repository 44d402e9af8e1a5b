"""The latency proxy the object-storage tests and benchmark put between tbhub and moto_server."""

from __future__ import annotations

import time

from latency_proxy import LatencyProxy, ProxyProcess, request_kind
from s3 import s3_bucket, s3_client, s3_endpoint, s3_server  # noqa: F401  (pytest fixtures)


def _timed_get(endpoint: str, bucket: str) -> float:
    client = s3_client(endpoint)
    client.list_objects_v2(Bucket=bucket)  # the client's own start-up is not measured
    started = time.perf_counter()
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 1000
    return time.perf_counter() - started


def test_each_request_waits_a_round_trip_and_is_counted(s3_endpoint: str, s3_bucket: str) -> None:  # noqa: F811
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="k", Body=b"x" * 1000)
    direct = _timed_get(s3_endpoint, s3_bucket)
    with LatencyProxy.to(s3_endpoint, delay_ms=40) as proxy:
        proxied = _timed_get(proxy.url, s3_bucket)
        stats = proxy.stats()
    assert proxied - direct >= 0.075  # 2 x 40 ms, less scheduling slack
    assert stats["requests"] == {"LIST": 1, "GET": 1}
    assert stats["bytes_down"] > 1000 and stats["connections"] >= 1


def test_requests_in_flight_overlap(s3_endpoint: str, s3_bucket: str) -> None:  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="k", Body=b"x" * 1000)
    with LatencyProxy.to(s3_endpoint, delay_ms=50) as proxy:
        client = s3_client(proxy.url)
        client.head_object(Bucket=s3_bucket, Key="k")
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: client.get_object(Bucket=s3_bucket, Key="k")["Body"].read(), range(8)))
        elapsed = time.perf_counter() - started
    assert elapsed < 8 * 0.1 / 2  # a latency, not a queue: 8 requests in far less than 8 round trips


def test_the_process_mode_counts_and_resets(s3_endpoint: str, s3_bucket: str) -> None:  # noqa: F811
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="k", Body=b"x" * 1000)
    with ProxyProcess(s3_endpoint, delay_ms=5) as proxy:
        client = s3_client(proxy.url)
        client.head_object(Bucket=s3_bucket, Key="k")
        assert proxy.reset()["requests"] == {"HEAD": 1}
        client.list_objects_v2(Bucket=s3_bucket, Prefix="k")
        assert proxy.stats()["requests"] == {"LIST": 1}


def test_request_kinds() -> None:
    assert request_kind("GET", "/b?list-type=2&prefix=x%2F") == "LIST"
    assert request_kind("GET", "/b/") == "LIST"
    assert request_kind("GET", "/b/run/events.out.tfevents.1") == "GET"
    assert request_kind("HEAD", "/b/k") == "HEAD"
