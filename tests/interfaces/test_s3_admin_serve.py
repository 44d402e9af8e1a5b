"""A clean from the hub of an ``s3://`` log root, end to end: a real ``tbhub serve`` with auth on over a
bucket of a real S3-compatible server (moto_server on 127.0.0.1).

The JSON API's dry run deletes nothing; the real clean archives (to ``s3://`` from the API, to a local
folder from the pages), removes exactly the chosen runs' objects, leaves no delete marker and records
the history; the hub's runs and TensorBoard (through its mirror of the bucket) then stop listing them.
Active and pinned runs are skipped as on disk (``test_admin_serve.py`` is the same flow on a local root).

Objects cannot be aged as files can (``LastModified`` is the upload time), so ``active_minutes`` is a
few seconds here: the "old" runs age past it while the server starts, and the "live" run is uploaded
again (a writer's flush) right before each step.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving import Server, accounts_of, serve, wait_for

from eventfiles import scalar_event, write_events, write_scalar_file
from s3 import list_keys, read_object, s3_client, upload_tree
from tbhub.adapters.storage.archive import verify_archive
from tbhub.adapters.storage.objectstore import DELETE_MARKER

pytestmark = pytest.mark.slow

NAME = "cloud"
PREFIX = "logs"
#: 12 s: longer than a preview-to-confirm round trip after a flush, short enough to wait out.
ACTIVE_MINUTES = 0.2
RUNS = ("chat/old", "chat/older", "chat/pinned", "chat/live", "code/kept")
EVENTS = "events.out.tfevents.1700000000.host.1.0"


def logs(src: Path) -> Path:
    for relpath in RUNS:
        write_scalar_file(src / relpath, range(30))
    (src / "chat" / "old" / "notes.txt").write_text("kept with the run\n")  # not an event file: goes too
    return src


def flush(endpoint: str, bucket: str, src: Path, step: int) -> None:
    """The live run's writer appends a step and its event file is uploaded again (now: active)."""
    path = write_events(src / "chat" / "live" / EVENTS, [scalar_event(step, 0.5)], append=True)
    s3_client(endpoint).upload_file(str(path), bucket, f"{PREFIX}/chat/live/{EVENTS}")


def fingerprint(endpoint: str, bucket: str, prefix: str = "") -> dict[str, str]:
    """Key -> SHA-256 of its bytes, for every object below ``prefix``."""
    return {key: hashlib.sha256(read_object(endpoint, bucket, key)).hexdigest()
            for key in list_keys(endpoint, bucket, prefix)}


def below(keys: dict[str, str], *relpaths: str) -> dict[str, str]:
    return {k: v for k, v in keys.items() if any(k.startswith(f"{PREFIX}/{r}/") for r in relpaths)}


def config(endpoint: str) -> str:
    return f'[s3]\nendpoint_url = "{endpoint}"\n\n[retention]\nactive_minutes = {ACTIVE_MINUTES}\n'


def tensorboard_runs(server: Server, headers: dict[str, str]) -> set[str]:
    response = server.get(f"/tb/{NAME}/data/runs", headers=headers)
    return set(response.json()) if response.status_code == 200 else set()


def hub_runs(server: Server, headers: dict[str, str]) -> set[str]:
    return {r["relpath"] for r in server.get(f"/api/endpoints/{NAME}/runs", headers=headers).json()}


def source_files(src: Path, relpath: str) -> dict[str, str]:
    run = src / relpath
    return {p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in run.rglob("*") if p.is_file()}


def test_clean_of_an_s3_root_through_the_api_archives_to_s3_and_deletes_only_the_chosen_runs(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    src = logs(tmp_path / "src")
    upload_tree(s3_endpoint, src, s3_bucket, PREFIX)
    cold = f"s3://{s3_bucket}/cold"
    with serve(tmp_path / "srv", {NAME: f"s3://{s3_bucket}/{PREFIX}"}, auth=None,  # type: ignore[dict-item]
               extra_config=config(s3_endpoint)) as server:
        _, admin_token, editor_token = accounts_of(server)
        admin = {"authorization": f"Bearer {admin_token}"}
        editor = {"authorization": f"Bearer {editor_token}"}
        with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client:
            wait_for(lambda: tensorboard_runs(server, admin) == set(RUNS), 60, "every run in TensorBoard")
            assert client.post(f"/api/endpoints/{NAME}/clean", json={"runs": ["chat/old"]},
                               headers=editor).status_code == 403
            assert client.post(f"/api/endpoints/{NAME}/pins", json={"run": "chat/pinned"},
                               headers=editor).status_code == 200

            def dry_run(runs: list[str]) -> dict[str, Any]:
                answer = client.post(f"/api/endpoints/{NAME}/clean", json={"runs": runs, "archive_to": cold},
                                     headers=admin)
                assert answer.status_code == 200, answer.text
                return answer.json()  # type: ignore[no-any-return]

            wait_for(lambda: not dry_run(["chat/old", "chat/older"])["skipped"], 60,
                     f"the uploads to be older than {ACTIVE_MINUTES} minutes")
            flush(s3_endpoint, s3_bucket, src, 30)
            before = fingerprint(s3_endpoint, s3_bucket)

            # 1. The dry run (the default) names what it would delete, and deletes nothing.
            chosen = ["chat/old", "chat/older", "chat/live", "chat/pinned"]
            plan = dry_run(chosen)
            assert plan["dry_run"] is True and plan["archive_to"] == cold
            assert sorted(r["relpath"] for r in plan["runs"]) == ["chat/old", "chat/older"]
            assert plan["bytes"] == sum(r["size_bytes"] for r in plan["runs"]) > 0
            skipped = {s["relpath"]: s["reason"] for s in plan["skipped"]}
            assert skipped.keys() == {"chat/live", "chat/pinned"}
            assert skipped["chat/live"] == f"active: written to in the last {ACTIVE_MINUTES:g} minutes"
            assert skipped["chat/pinned"].startswith("pinned by ")
            assert fingerprint(s3_endpoint, s3_bucket) == before
            assert list_keys(s3_endpoint, s3_bucket, "cold/") == []
            assert client.get("/api/history", headers=admin).json() == []

            # 2. The clean: archived to s3:// and verified, then exactly these runs' objects deleted.
            flush(s3_endpoint, s3_bucket, src, 31)  # still written: still skipped, the plan unchanged
            done = client.post(f"/api/endpoints/{NAME}/clean", headers=admin,
                               json={"runs": chosen, "archive_to": cold, "dry_run": False, "plan": plan["plan"]})
            assert done.status_code == 200, f"{done.text}\n{server.output()[-4000:]}"
            report = done.json()
            assert (report["dry_run"], report["deleted"], report["failed"]) == (False, 2, 0)
            assert report["bytes_freed"] == plan["bytes"]
            assert {s["relpath"] for s in report["skipped"]} == {"chat/live", "chat/pinned"}

            after = fingerprint(s3_endpoint, s3_bucket)
            assert below(after, "chat/old", "chat/older") == {}
            assert below(after, "chat/pinned", "code/kept") == below(before, "chat/pinned", "code/kept")
            assert set(below(after, "chat/live")) == set(below(before, "chat/live"))
            assert [k for k in after if k.rpartition("/")[2] == DELETE_MARKER] == []

            # Each run's outcome and archive, as `tbhub clean --json` reports them (the plan's entries hid them).
            assert sorted((r["relpath"], r["outcome"], r["error"]) for r in report["runs"]) == [
                ("chat/old", "deleted", None), ("chat/older", "deleted", None)]
            archives = {r["relpath"]: r["archive"] for r in report["runs"]}
            for relpath, archive in archives.items():
                assert archive.startswith(f"{cold}/{NAME}/chat/") and archive.endswith(".tar.zst"), archive
                manifest = verify_archive(archive, storage_options={"endpoint_url": s3_endpoint})
                assert (manifest.endpoint, manifest.relpath) == (NAME, relpath)
                assert {f.path: f.sha256 for f in manifest.files} == source_files(src, relpath)
            history = client.get("/api/history", headers=admin).json()
            assert sorted((h["relpath"], h["actor"], h["outcome"], h["archive"]) for h in history) == [
                ("chat/old", "token:ops (hub)", "deleted", archives["chat/old"]),
                ("chat/older", "token:ops (hub)", "deleted", archives["chat/older"])]

            # 3. The hub forgets them at once; TensorBoard once the mirror has synced the deletion.
            kept = {"chat/live", "chat/pinned", "code/kept"}
            assert hub_runs(server, admin) == kept
            wait_for(lambda: tensorboard_runs(server, admin) == kept, 60, "the deleted runs gone from TensorBoard")
            mirror = tmp_path / "srv" / "state" / "mirrors" / NAME
            assert not (mirror / "chat" / "old").exists() and not (mirror / "chat" / "older").exists()

            # The same plan confirmed again: its runs are gone, so it is refused and nothing changes.
            again = client.post(f"/api/endpoints/{NAME}/clean", headers=admin,
                                json={"runs": chosen, "archive_to": cold, "dry_run": False, "plan": plan["plan"]})
            assert again.status_code == 400 and "chat/old" in again.text
            assert fingerprint(s3_endpoint, s3_bucket, f"{PREFIX}/") == below(after, *RUNS)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def test_clean_of_an_s3_root_from_the_pages_archives_to_a_local_folder(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    src = logs(tmp_path / "src")
    upload_tree(s3_endpoint, src, s3_bucket, PREFIX)
    cold = tmp_path / "cold"
    with serve(tmp_path / "srv", {NAME: f"s3://{s3_bucket}/{PREFIX}"}, auth=None,  # type: ignore[dict-item]
               extra_config=config(s3_endpoint)) as server:
        password, admin_token, _ = accounts_of(server)
        admin = {"authorization": f"Bearer {admin_token}"}
        with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client:
            assert client.get(f"/endpoints/{NAME}/clean").status_code == 401
            client.get("/login")
            login = {"name": "ada", "password": password, "csrf": client.cookies["tbhub_csrf"]}
            assert client.post("/login", data=login).status_code == 303
            wait_for(lambda: tensorboard_runs(server, admin) == set(RUNS), 60, "every run in TensorBoard")
            wait_for(lambda: 'class="badge active"' not in client.get(f"/endpoints/{NAME}/clean").text, 60,
                     f"the uploads to be older than {ACTIVE_MINUTES} minutes")

            csrf = csrf_of(client.get(f"/endpoints/{NAME}/clean").text)
            choice = {"run": ["chat/old", "chat/older", "chat/live"], "mode": "archive", "archive_to": str(cold),
                      "csrf": csrf}
            flush(s3_endpoint, s3_bucket, src, 30)
            before = fingerprint(s3_endpoint, s3_bucket)
            preview = client.post(f"/endpoints/{NAME}/clean/preview", data=choice)
            assert preview.status_code == 200 and "<strong>2 runs," in preview.text, server.output()[-4000:]
            assert f"active: written to in the last {ACTIVE_MINUTES:g} minutes" in preview.text
            plan = re.search(r'name="plan" value="(\w+)"', preview.text)
            assert plan is not None
            assert fingerprint(s3_endpoint, s3_bucket) == before and not cold.exists()

            flush(s3_endpoint, s3_bucket, src, 31)
            done = client.post(f"/endpoints/{NAME}/clean/execute", data={**choice, "plan": plan[1], "confirm": "yes"})
            assert done.status_code == 200 and "deleted 2, failed 0" in done.text, server.output()[-4000:]

            after = fingerprint(s3_endpoint, s3_bucket)
            assert below(after, "chat/old", "chat/older") == {}
            assert below(after, "chat/pinned", "code/kept") == below(before, "chat/pinned", "code/kept")
            assert set(below(after, "chat/live")) == set(below(before, "chat/live"))
            assert [k for k in after if k.rpartition("/")[2] == DELETE_MARKER] == []
            written = {p.name.split("--")[0]: p for p in cold.rglob("*.tar.*")}
            assert sorted(written) == ["old", "older"]
            for run, archive in written.items():
                manifest = verify_archive(archive)
                assert {f.path: f.sha256 for f in manifest.files} == source_files(src, f"chat/{run}")
            history = client.get("/api/history", headers=admin).json()
            assert sorted((h["relpath"], h["actor"], h["outcome"]) for h in history) == [
                ("chat/old", "ada (hub)", "deleted"), ("chat/older", "ada (hub)", "deleted")]

            kept = {"chat/live", "chat/pinned", "code/kept"}
            assert hub_runs(server, admin) == kept
            wait_for(lambda: tensorboard_runs(server, admin) == kept, 60, "the deleted runs gone from TensorBoard")
