"""The one cleanup flow (``tbhub.app.cleanup``): what ``tbhub clean`` and the hub's clean share.

Driven through ``Services`` with real adapters (a temporary log root, SQLite), and through the real
``tbhub clean`` command: pinned runs are skipped unless included, the endpoint's retention limits cap a
CLI clean, one cleaner at a time (the second waits or names the holder), and the digest of what was
confirmed guards against runs that changed meanwhile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from eventfiles import write_scalar_file
from tbhub.app.cleanup import (
    RETENTION_LEASE,
    Busy,
    CleanupAsk,
    PlanChanged,
    clean_digest,
    cleanup_lease,
    plan_cleanup,
    run_cleanup,
)
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.config import load_config

DAY = 86400


def _aged(path: Path, days: float) -> None:
    t = time.time() - days * DAY
    for p in [*path.rglob("*"), path]:
        os.utime(p, (t, t))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "lora"
    for name in ("run-0001", "run-0002", "run-0003"):
        write_scalar_file(root / "claims-v1" / name, range(20))
        _aged(root / "claims-v1" / name, 30)
    return root


def _config_file(tmp_path: Path, root: Path, retention: str = "") -> Path:
    path = tmp_path / "tbhub.toml"
    path.write_text(f'[endpoints.lora]\nlogdir = "{root}"\n{retention}')
    return path


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, on this test's state database (``TBHUB_HOME`` from the autouse fixture)."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "tbhub", *args, "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_the_cli_skips_a_pinned_run_unless_asked(tmp_path: Path, root: Path) -> None:
    config = _config_file(tmp_path, root)
    assert _cli(config, "pin", "lora/claims-v1/run-0001").returncode == 0
    dry = _cli(config, "clean", "--dataset", "claims-v1", "--select", "all", "--yes", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert {r["run"] for r in report["runs"]} == {"run-0002", "run-0003"}
    assert [(s["run"], s["reason"]) for s in report["skipped"]] == [("run-0001", "pinned by " + _actor())]

    done = _cli(config, "clean", "--select", "all", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (root / "claims-v1").iterdir()) == ["run-0001"]

    again = _cli(config, "clean", "--select", "all", "--yes", "--include-pinned", "--json")
    assert again.returncode == 0, again.stderr
    assert [r["run"] for r in json.loads(again.stdout)["runs"]] == ["run-0001"]
    assert not (root / "claims-v1" / "run-0001").exists()


def _actor() -> str:
    """Who ``tbhub pin`` records: ``user@host``."""
    import getpass
    import socket

    return f"{getpass.getuser()}@{socket.gethostname()}"


def test_the_cli_honours_the_endpoint_limits(tmp_path: Path, root: Path) -> None:
    config = _config_file(tmp_path, root, "[retention.lora]\nkeep_days = 3650\nmax_delete = 2\n")
    refused = _cli(config, "clean", "--select", "all", "--yes")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].endswith("more than the limit of 2; nothing deleted")
    assert "Traceback" not in refused.stderr
    assert len(list((root / "claims-v1").iterdir())) == 3
    # The caller may lower the limit, never raise it.
    ok = _cli(config, "clean", "--select", "0-1", "--yes", "--max-delete", "5")
    assert ok.returncode == 0, ok.stderr
    assert len(list((root / "claims-v1").iterdir())) == 1


def test_a_second_cleaner_names_the_holder_or_waits(tmp_path: Path, root: Path) -> None:
    config = _config_file(tmp_path, root)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with Services(load_config(config)) as other, cleanup_lease(other, "serve-retention@box"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        busy = _cli(config, "clean", "--select", "all", "--yes")
        assert busy.returncode == 1
        assert "another cleanup or retention application is running (serve-retention@box)" in busy.stderr
        assert "Traceback" not in busy.stderr
        assert len(list((root / "claims-v1").iterdir())) == 3

        threading.Timer(2.0, release.set).start()
        started = time.monotonic()
        waited = _cli(config, "clean", "--select", "all", "--yes", "--wait", "60")
        assert waited.returncode == 0, waited.stderr
        assert time.monotonic() - started >= 1.5
        assert list((root / "claims-v1").iterdir()) == []
    finally:
        release.set()
        holder.join(10)


def test_a_plan_that_changed_after_the_preview_deletes_nothing(tmp_path: Path, root: Path) -> None:
    with Services(load_config(_config_file(tmp_path, root))) as services:
        (inventory,) = scan_endpoints(services, ["lora"])
        ask = CleanupAsk(active_minutes=10)
        preview = plan_cleanup(services, inventory.runs, ask, now_ns=time.time_ns())
        digest = clean_digest(preview, None)
        # A run grows between the preview and the confirmation.
        write_scalar_file(root / "claims-v1" / "run-0002", range(20, 40), name="events.out.tfevents.2.host")
        _aged(root / "claims-v1" / "run-0002", 29)

        def plan_now():  # type: ignore[no-untyped-def]
            (fresh,) = scan_endpoints(services, ["lora"])
            return plan_cleanup(services, fresh.runs, ask, now_ns=time.time_ns())

        with pytest.raises(PlanChanged):
            run_cleanup(services, plan_now, who="test", confirmed=digest)
        assert len(list((root / "claims-v1").iterdir())) == 3
        assert services.state.deletions(limit=10) == []
        _, report = run_cleanup(services, plan_now, who="test", confirmed=clean_digest(plan_now(), None))
        assert len(report.deleted) == 3 and not list((root / "claims-v1").iterdir())
        assert {r.actor for r in services.state.deletions(limit=10)} == {"test"}


def test_the_lease_is_one_for_cleanups_and_retention(tmp_path: Path, root: Path) -> None:
    with Services(load_config(_config_file(tmp_path, root))) as services:
        assert services.state.acquire_lease(RETENTION_LEASE, "retention-job", 60)
        with pytest.raises(Busy, match=r"\(retention-job\)"), cleanup_lease(services, "cli"):
            pass
        services.state.release_lease(RETENTION_LEASE, "retention-job")
        with cleanup_lease(services, "cli"):
            assert services.state.lease_holder(RETENTION_LEASE) is not None
        assert services.state.lease_holder(RETENTION_LEASE) is None


def test_a_killed_cleaner_does_not_hold_the_lease_and_a_live_one_keeps_it(tmp_path: Path, root: Path) -> None:
    config = _config_file(tmp_path, root)
    script = (
        "import sys, time\n"
        "from tbhub.app.cleanup import cleanup_lease\n"
        "from tbhub.app.services import Services\n"
        "from tbhub.config import load_config\n"
        f"with Services(load_config({str(config)!r})) as s, cleanup_lease(s, 'killed@here', ttl_s=0.4):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with Services(load_config(config)) as services:
            time.sleep(1.2)  # three times the lease's life: only its renewals keep it
            with pytest.raises(Busy, match=r"\(killed@here\)"), cleanup_lease(services, "second"):
                pass
            holder.kill()
            holder.wait(10)
            started = time.monotonic()
            with cleanup_lease(services, "second", ttl_s=3600):  # the dead holder's lease is free at once
                assert services.state.lease_holder(RETENTION_LEASE).startswith("second:")  # type: ignore[union-attr]
            assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()  # type: ignore[union-attr]
