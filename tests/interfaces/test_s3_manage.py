"""tbhub runs / clean / archives / restore / retention on an s3:// log root, against a real moto_server.

The commands run in-process through the CLI's ``main`` (as a user runs them), with the endpoint
URL coming from ``AWS_ENDPOINT_URL`` or from ``[s3]`` in a config file, as it would in production.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clirun import run_cli

from eventfiles import write_scalar_file, write_tf2_run
from s3 import list_keys, read_object, s3_client, upload_tree
from tbhub.adapters.storage.archive import list_archives, restore_archive, verify_archive

pytestmark = pytest.mark.timeout(300)


def local_tree(root: Path) -> Path:
    write_scalar_file(root / "alpaca" / "r1", range(200), ("loss", "acc"))
    write_scalar_file(root / "alpaca" / "r2", range(50))
    write_tf2_run(root / "dolly" / "keras")
    (root / "alpaca" / "r1" / "notes.txt").write_text("kept with the run\n")
    return root


def bucket_fingerprint(endpoint: str, bucket: str, prefix: str) -> dict[str, str]:
    """Key (below ``prefix``) -> SHA-256 of its bytes, for every object below ``prefix``."""
    return {
        key[len(prefix) :]: hashlib.sha256(read_object(endpoint, bucket, key)).hexdigest()
        for key in list_keys(endpoint, bucket, prefix)
    }


@pytest.fixture
def s3_logs(s3_endpoint: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """The tree uploaded to s3://BUCKET/logs; the AWS environment points at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    local = local_tree(tmp_path / "local")
    upload_tree(s3_endpoint, local, s3_bucket, "logs")
    return local, f"s3://{s3_bucket}/logs"


def _without_identity(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    dropped = {"endpoint", "path", "last_modified", "age_seconds"}
    return [{k: v for k, v in row.items() if k not in dropped} for row in rows]


def test_runs_on_an_s3_root_equal_the_local_runs(
    capsys: pytest.CaptureFixture[str], s3_logs: tuple[Path, str]
) -> None:
    local, url = s3_logs
    code, out, err = run_cli(capsys, "runs", "--logdir", f"cloud={url}", "--json")
    assert code == 0, err
    remote_rows = json.loads(out)
    code, out, err = run_cli(capsys, "runs", "--logdir", f"disk={local}", "--json")
    assert code == 0, err
    assert len(remote_rows) == 3
    assert _without_identity(remote_rows) == _without_identity(json.loads(out))
    assert {r["path"] for r in remote_rows} == {f"{url}/alpaca/r1", f"{url}/alpaca/r2", f"{url}/dolly/keras"}
    code, out, err = run_cli(capsys, "runs", url + "/", "--json")  # a bare URL: one endpoint named "logs"
    assert code == 0, err
    assert {(r["endpoint"], r["path"]) for r in json.loads(out)} == {("logs", r["path"]) for r in remote_rows}


def test_unknown_bucket_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    code, out, err = run_cli(capsys, "runs", "--logdir", "cloud=s3://no-such-bucket-9/logs", "--json")
    assert code == 2
    assert out == ""
    assert "bucket no-such-bucket-9 does not exist" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_secrets_never_reach_the_output(
    capsys: pytest.CaptureFixture[str], s3_endpoint: str, s3_bucket: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Credentials from [s3] work, and neither a listing nor an error shows them."""
    monkeypatch.setenv("TB_KEY", "testing")
    monkeypatch.setenv("TB_SECRET", "testing-secret-value")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    write_scalar_file(tmp_path / "t" / "ds" / "run", range(5))
    upload_tree(s3_endpoint, tmp_path / "t", s3_bucket, "p")
    config = tmp_path / "tbhub.toml"
    config.write_text(
        f'[s3]\nendpoint_url = "{s3_endpoint}"\naccess_key_id_env = "TB_KEY"\nsecret_access_key_env = "TB_SECRET"\n'
        f'[endpoints.cloud]\nlogdir = "s3://{s3_bucket}/p"\n'
        '[endpoints.gone]\nlogdir = "s3://no-such-bucket-9/p"\n'
    )
    code, out, err = run_cli(capsys, "runs", "--config", str(config), "--endpoint", "cloud", "--json")
    assert code == 0, err
    assert [r["run"] for r in json.loads(out)] == ["run"]
    code, out2, err2 = run_cli(capsys, "runs", "--config", str(config), "--endpoint", "gone", "--json")
    assert code == 2
    for text in (out, err, out2, err2):
        assert "testing-secret-value" not in text


def test_clean_dry_run_then_archive_to_s3_delete_and_restore(
    capsys: pytest.CaptureFixture[str], s3_endpoint: str, s3_bucket: str, s3_logs: tuple[Path, str]
) -> None:
    _, url = s3_logs
    before = bucket_fingerprint(s3_endpoint, s3_bucket, "logs/")
    archives = f"s3://{s3_bucket}/cold"
    args = ["clean", "--logdir", f"cloud={url}", "--match", "alpaca/*", "--select", "all", "--active-minutes", "0.0001"]

    code, out, err = run_cli(capsys, *args, "--dry-run", "--json", "--archive-to", archives)
    assert code == 0, err
    report = json.loads(out)
    assert report["dry_run"] is True and sorted(r["run"] for r in report["runs"]) == ["r1", "r2"]
    assert bucket_fingerprint(s3_endpoint, s3_bucket, "logs/") == before
    assert list_keys(s3_endpoint, s3_bucket, "cold/") == []

    code, out, err = run_cli(capsys, *args, "--yes", "--json", "--archive-to", archives)
    assert code == 0, err
    report = json.loads(out)
    assert (report["deleted"], report["failed"]) == (2, 0)
    assert list_keys(s3_endpoint, s3_bucket, "logs/alpaca/") == []
    assert set(bucket_fingerprint(s3_endpoint, s3_bucket, "logs/")) == {k for k in before if k.startswith("dolly/")}
    written = {r["run"]: r["archive"] for r in report["runs"]}
    assert all(a.startswith(f"{archives}/cloud/alpaca/") and a.endswith(".tar.zst") for a in written.values())

    code, out, err = run_cli(capsys, "archives", "list", archives, "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert sorted((a["run"], a["archive"]) for a in listed) == sorted(written.items())
    assert {a["run"]: a["files"] for a in listed} == {"r1": 2, "r2": 1}

    code, out, err = run_cli(capsys, "history", "--json")
    assert code == 0, err
    assert {h["archive"] for h in json.loads(out)} == set(written.values())

    for run in ("r1", "r2"):
        code, out, err = run_cli(capsys, "restore", written[run], "--logdir", f"cloud={url}", "--json")
        assert code == 0, err
        assert json.loads(out)["path"] == f"{url}/alpaca/{run}"
    assert bucket_fingerprint(s3_endpoint, s3_bucket, "logs/") == before  # byte-identical, nothing else

    code, out, err = run_cli(capsys, "restore", written["r1"], "--logdir", f"cloud={url}")
    assert code != 0 and "already exists" in err and "Traceback" not in err
    assert bucket_fingerprint(s3_endpoint, s3_bucket, "logs/") == before

    code, out, err = run_cli(capsys, "restore", f"{archives}/cloud/alpaca/nope.tar.zst", "--logdir", f"cloud={url}")
    assert code != 0 and "does not exist" in err and "Traceback" not in err
    code, out, err = run_cli(capsys, "archives", "list", "s3://no-such-bucket-9/cold", "--json")
    assert code != 0 and out == "" and "bucket no-such-bucket-9 does not exist" in err


def test_s3_runs_archive_to_a_local_folder_and_restore_to_a_local_root(
    capsys: pytest.CaptureFixture[str], s3_logs: tuple[Path, str], tmp_path: Path
) -> None:
    local, url = s3_logs
    cold = tmp_path / "cold"
    code, out, err = run_cli(capsys, "clean", "--logdir", f"cloud={url}", "--match", "dolly/*", "--select", "all",
                             "--active-minutes", "0.0001", "--yes", "--json", "--archive-to", str(cold))
    assert code == 0, err
    (outcome,) = json.loads(out)["runs"]
    assert outcome["outcome"] == "deleted" and Path(outcome["archive"]).is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, err = run_cli(capsys, "restore", outcome["archive"], "--logdir", f"cloud={elsewhere}", "--json")
    assert code == 0, err
    restored = elsewhere / "dolly" / "keras"
    original = local / "dolly" / "keras"
    files = sorted(p.relative_to(original) for p in original.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(restored) for p in restored.rglob("*") if p.is_file())
    assert all((restored / f).read_bytes() == (original / f).read_bytes() for f in files)


def test_an_interrupted_s3_delete_is_finished_by_the_next_clean(
    capsys: pytest.CaptureFixture[str], s3_endpoint: str, s3_bucket: str, s3_logs: tuple[Path, str]
) -> None:
    """A clean killed between its delete marker and its last DELETE: the run is hidden from every
    command meanwhile, and the next clean removes what is left before doing anything else."""
    _, url = s3_logs
    client = s3_client(s3_endpoint)
    client.put_object(Bucket=s3_bucket, Key="logs/alpaca/r2/.tbhub-deleting", Body=b"{}")
    code, out, err = run_cli(capsys, "runs", "--logdir", f"cloud={url}", "--json")
    assert code == 0, err
    assert sorted(r["run"] for r in json.loads(out)) == ["keras", "r1"]
    code, out, err = run_cli(capsys, "clean", "--logdir", f"cloud={url}", "--match", "nothing/*", "--select", "all",
                             "--yes")
    assert code == 0, err
    assert "finished an interrupted cleanup: removed cloud:alpaca/r2" in err
    assert list_keys(s3_endpoint, s3_bucket, "logs/alpaca/r2") == []
    assert list_keys(s3_endpoint, s3_bucket, "logs/alpaca/r1") != []


def test_retention_apply_on_an_s3_root_archives_to_s3_and_spares_pins(
    capsys: pytest.CaptureFixture[str], s3_endpoint: str, s3_bucket: str, s3_logs: tuple[Path, str], tmp_path: Path
) -> None:
    _, url = s3_logs
    config = tmp_path / "tbhub.toml"
    # moto cannot backdate LastModified: a policy of about a second, with "active" shorter still.
    config.write_text(
        f'[s3]\nendpoint_url = "{s3_endpoint}"\n'
        f'[endpoints.cloud]\nlogdir = "{url}"\n'
        "[retention]\nactive_minutes = 0.0001\n"
        f'[retention.cloud]\nkeep_days = 0.00001\narchive_to = "s3://{s3_bucket}/retained"\n'
    )
    code, _, err = run_cli(capsys, "pin", "cloud/alpaca/r1", "--config", str(config))
    assert code == 0, err
    code, _, err = run_cli(capsys, "pin", "cloud/alpaca/nope", "--config", str(config))
    assert code == 2 and "no run 'alpaca/nope'" in err
    time.sleep(2)  # every object is now older than keep_days (S3 times have whole seconds)

    code, out, err = run_cli(capsys, "retention", "apply", "--config", str(config), "--dry-run", "--json")
    assert code == 0, err
    assert sorted(d["relpath"] for d in json.loads(out)["delete"]) == ["alpaca/r2", "dolly/keras"]
    assert list_keys(s3_endpoint, s3_bucket, "retained/") == []

    code, out, err = run_cli(capsys, "retention", "apply", "--config", str(config), "--yes", "--json")
    assert code == 0, err
    report = json.loads(out)["report"]
    assert (report["deleted"], report["failed"]) == (2, 0)
    remaining = list_keys(s3_endpoint, s3_bucket, "logs/")
    assert remaining and all(k.startswith("logs/alpaca/r1/") for k in remaining)
    code, out, err = run_cli(capsys, "archives", "list", f"s3://{s3_bucket}/retained", "--config", str(config),
                             "--json")
    assert code == 0, err
    assert sorted(a["run"] for a in json.loads(out)) == ["keras", "r2"]


@pytest.mark.slow
def test_sigkill_during_an_s3_clean_never_loses_a_run(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    """Kills at random moments of `clean --archive-to s3://`: every run is complete and visible in
    place, or archived (and the archive verifies); a rerun finishes what was left half-deleted."""
    template = tmp_path / "template"
    names = []
    for i in range(3):
        write_scalar_file(template / "ds" / f"run{i}" / "train", range(20_000), ("loss", "lr"))
        write_scalar_file(template / "ds" / f"run{i}" / "eval", range(0, 20_000, 50), ("eval/loss",))
        names.append(f"ds/run{i}")
    originals = {
        n: {p.relative_to(template / n).as_posix(): p.read_bytes() for p in (template / n).rglob("*") if p.is_file()}
        for n in names
    }
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_endpoint}

    def clean(prefix: str, *extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tbhub", "clean", "--logdir", f"cloud=s3://{s3_bucket}/{prefix}/logs",
             "--active-minutes", "0.0001", "--yes", "--archive-to", f"s3://{s3_bucket}/{prefix}/cold", *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )

    upload_tree(s3_endpoint, template, s3_bucket, "probe/logs")
    started = time.monotonic()
    probe = clean("probe", "--select", "all")
    assert probe.wait(120) == 0, probe.stderr.read() if probe.stderr else ""
    full = time.monotonic() - started
    if probe.stderr:
        probe.stderr.close()

    rng = random.Random(20261128)
    seen = {"in place": 0, "archived": 0}
    for attempt in range(6):
        prefix = f"t{attempt}"
        upload_tree(s3_endpoint, template, s3_bucket, f"{prefix}/logs")
        proc = clean(prefix, "--select", "all")
        time.sleep(rng.uniform(0.2, full))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
        archived = {}
        for info in list_archives(f"s3://{s3_bucket}/{prefix}/cold", storage_options={"endpoint_url": s3_endpoint}):
            manifest = verify_archive(str(info.archive), storage_options={"endpoint_url": s3_endpoint})
            archived[manifest.relpath] = str(info.archive)
        # Finish the interrupted clean (it selects nothing new), then check every run.
        rerun = clean(prefix, "--match", "nothing/*", "--select", "all")
        assert rerun.wait(120) == 0
        if rerun.stderr:
            rerun.stderr.close()
        for name in names:
            keys = list_keys(s3_endpoint, s3_bucket, f"{prefix}/logs/{name}/")
            if keys:
                in_place = {k.split(f"/{name}/", 1)[1]: read_object(s3_endpoint, s3_bucket, k) for k in keys}
                assert in_place == originals[name], f"attempt {attempt}: {name} is incomplete in place"
                seen["in place"] += 1
                continue
            assert name in archived, f"attempt {attempt}: {name} was deleted without an archive"
            seen["archived"] += 1
            restored = tmp_path / prefix / "restored"
            restored.mkdir(parents=True, exist_ok=True)
            target = restore_archive(archived[name], restored, storage_options={"endpoint_url": s3_endpoint})
            got = {p.relative_to(target).as_posix(): p.read_bytes() for p in Path(target).rglob("*") if p.is_file()}
            assert got == originals[name]
    assert seen["in place"] and seen["archived"], seen  # the kills landed on both sides of the deletes


def test_compare_reads_scalars_from_s3_as_from_disk(
    capsys: pytest.CaptureFixture[str], s3_logs: tuple[Path, str]
) -> None:
    """Scalar summaries and time-to-target come from ranged reads of the objects, equal to disk."""
    local, url = s3_logs
    results = []
    for logdir in (f"cloud={url}", f"disk={local}"):
        code, out, err = run_cli(capsys, "compare", "--logdir", logdir, "--tag", "loss", "--target", "loss<0.05",
                                 "--json")
        assert code == 0, err
        rows = json.loads(out)
        results.append([{k: v for k, v in row.items() if k != "endpoint"} for row in rows])
    assert results[0] == results[1]
    assert {row["run"] for row in results[0]} >= {"r1", "r2"}
    r1 = next(row for row in results[0] if row["run"] == "r1")
    assert r1["tags"]["loss"]["count"] == 200 and r1["target_step"] == 20  # loss = 1/(step+1)
