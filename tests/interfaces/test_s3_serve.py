"""``tbhub serve`` with an ``s3://`` log root on a real S3-compatible server (moto_server on 127.0.0.1).

TensorBoard reads a local mirror of the bucket with its fast loader; these tests watch runs and
scalars arrive, grow and go through the hub's proxy as objects are uploaded, re-uploaded and deleted.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from serving import Server, serve, wait_for

import s3
from eventfiles import scalar_event, write_events, write_scalar_file
from s3 import s3_bucket, s3_endpoint, s3_server  # noqa: F401  (pytest fixtures)
from tbhub.adapters.storage.mirror import MANIFEST

pytestmark = pytest.mark.slow

PREFIX = "team/tb"
NAME = "cloud"


def _scalars(server: Server, run: str, tag: str = "loss") -> list[list[Any]]:
    response = server.get(f"/tb/{NAME}/data/plugin/scalars/scalars?run={quote(run, safe='')}&tag={tag}")
    return response.json() if response.status_code == 200 else []  # type: ignore[no-any-return]


def _runs(server: Server) -> set[str]:
    response = server.get(f"/tb/{NAME}/data/runs")
    return set(response.json()) if response.status_code == 200 else set()


def _config(endpoint: str) -> str:
    return f'[s3]\nendpoint_url = "{endpoint}"\n'


def test_an_s3_root_is_served_from_its_mirror_and_follows_the_bucket(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path  # noqa: F811  (pytest fixtures)
) -> None:
    src = tmp_path / "src"
    grows = write_scalar_file(src / "llm" / "run-a", range(40), ("loss", "lr"))
    write_scalar_file(src / "llm" / "run-b", range(25), name="events.out.tfevents.1700000001.host.2.0")
    write_scalar_file(src / "vision" / "run-c" / "train", range(10), name="events.out.tfevents.1700000002.host.3.0")
    s3.upload_tree(s3_endpoint, src, s3_bucket, PREFIX)
    url = f"s3://{s3_bucket}/{PREFIX}"

    with serve(tmp_path / "serve", {NAME: url}, extra_config=_config(s3_endpoint)) as server:  # type: ignore[dict-item]
        # TensorBoard reads the mirror under the state directory, with the fast loader, not the URL.
        cmdline = server.tensorboard(NAME).cmdline()
        mirror = tmp_path / "serve" / "state" / "mirrors" / NAME
        assert cmdline[cmdline.index("--logdir") + 1] == str(mirror)
        assert cmdline[cmdline.index("--load_fast") + 1] == "true"
        assert (mirror / MANIFEST).exists()

        expected = {"llm/run-a", "llm/run-b", "vision/run-c/train"}
        wait_for(lambda: _runs(server) == expected, 60, "every run listed through the proxy")
        points = wait_for(lambda: _scalars(server, "llm/run-a") if len(_scalars(server, "llm/run-a")) == 40 else None,
                          60, "run-a's scalars")
        assert [step for _, step, _ in points] == list(range(40))
        assert [value for _, _, value in points] == pytest.approx([1.0 / (s + 1) for s in range(40)])

        endpoint = server.get(f"/api/endpoints/{NAME}").json()
        assert endpoint["mirror"]["ready"] is True
        assert endpoint["mirror"]["error"] is None
        assert endpoint["mirror"]["files"] == 3

        # The job writes on: its event file is uploaded again, grown; the new steps arrive.
        write_events(grows, [scalar_event(step, 0.001, "loss") for step in range(40, 60)], append=True)
        s3.upload_tree(s3_endpoint, src / "llm" / "run-a", s3_bucket, f"{PREFIX}/llm/run-a")
        wait_for(lambda: _scalars(server, "llm/run-a")[-1:] and _scalars(server, "llm/run-a")[-1][1] == 59,
                 60, "the appended steps through the proxy")
        assert [step for _, step, _ in _scalars(server, "llm/run-a")] == list(range(60))

        # A run deleted from the bucket goes from the mirror and from TensorBoard.
        for key in s3.list_keys(s3_endpoint, s3_bucket, f"{PREFIX}/llm/run-b/"):
            s3.s3_client(s3_endpoint).delete_object(Bucket=s3_bucket, Key=key)
        wait_for(lambda: not (mirror / "llm" / "run-b").exists(), 60, "run-b removed from the mirror")
        wait_for(lambda: _runs(server) == expected - {"llm/run-b"}, 60, "run-b gone from TensorBoard")

        # An event file rewritten in place (shorter: not an append). The fast loader would go on
        # reading the file it has open, so the endpoint's TensorBoard is restarted on the new copy.
        restarts = server.get(f"/api/endpoints/{NAME}").json()["restarts"]
        rewritten = write_scalar_file(tmp_path / "rewritten", range(7), name=grows.name)
        s3.s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key=f"{PREFIX}/llm/run-a/{grows.name}",
                                             Body=rewritten.read_bytes())
        wait_for(lambda: [step for _, step, _ in _scalars(server, "llm/run-a")] == list(range(7)), 90,
                 "the rewritten run through the proxy")
        assert server.get(f"/api/endpoints/{NAME}").json()["restarts"] == restarts + 1
        assert (mirror / "llm" / "run-a" / grows.name).read_bytes() == rewritten.read_bytes()

        # TensorBoard's flags name the mirror folder; the proxy keeps server paths to itself.
        assert str(mirror) not in server.get(f"/tb/{NAME}/data/environment").text
        assert server.proc.poll() is None


def test_a_root_that_cannot_be_mirrored_yet_is_an_error_and_is_retried(
    s3_endpoint: str, tmp_path: Path  # noqa: F811  (pytest fixtures)
) -> None:
    """The bucket does not exist at start: the hub runs and says why; once it appears, it is served."""
    bucket = f"created-later-{uuid.uuid4().hex[:12]}"
    url = f"s3://{bucket}/{PREFIX}"
    with serve(tmp_path / "serve", {NAME: url}, extra_config=_config(s3_endpoint), wait=False) as server:  # type: ignore[dict-item]
        wait_for(lambda: server.get("/healthz").status_code == 200, 60, "the hub")
        endpoint = wait_for(lambda: (e := server.get(f"/api/endpoints/{NAME}").json())["mirror"]["error"] and e,
                            60, "the mirror's error on the endpoint")
        assert endpoint["error"] == f"log root {url} does not exist"
        assert endpoint["mirror"]["ready"] is False
        assert endpoint["state"] == "error"
        assert server.get("/readyz").status_code == 503

        src = tmp_path / "src"
        write_scalar_file(src / "ds" / "late", range(5))
        s3.s3_client(s3_endpoint).create_bucket(Bucket=bucket)
        s3.upload_tree(s3_endpoint, src, bucket, PREFIX)

        wait_for(lambda: server.get("/readyz").status_code == 200, 60, "TensorBoard started on the first sync")
        wait_for(lambda: _runs(server) == {"ds/late"}, 60, "the run listed")
        endpoint = server.get(f"/api/endpoints/{NAME}").json()
        assert endpoint["mirror"]["error"] is None
        assert endpoint["mirror"]["ready"] is True
        assert server.proc.poll() is None
