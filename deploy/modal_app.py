"""tbhub on Modal: one TensorBoard per trainer plus the hub, each at a stable URL.

This is the deployment tbhub grew out of: training jobs on Modal write TensorBoard logs to one Modal
Volume per trainer, and a web endpoint per trainer serves them. ``modal deploy`` gives every web
endpoint a fixed label, so its URL survives redeploys (WORKSPACE is your Modal workspace)::

    modal deploy deploy/modal_app.py

    https://WORKSPACE--tb-lora.modal.run     TensorBoard over the ``lora`` trainer's Volume
    https://WORKSPACE--tb-router.modal.run   TensorBoard over the ``router`` trainer's Volume
    https://WORKSPACE--tbhub.modal.run       the hub: every trainer, runs, compare, alerts, /metrics

Volumes are mounted read-only: serving never writes to a log root. A container sees a Volume as it
was when the container started, so each endpoint calls ``volume.reload()`` every reload interval to
bring in what the trainers committed since. Modal refuses a reload while files on the Volume are open
(TensorBoard reading an event file at that moment); such a reload is logged and tried again at the
next interval.

The hub keeps its state database (accounts, the index, alerts) in SQLite on the ``tbhub-state``
Volume, so it runs in one container at a time. For PostgreSQL instead, create a Modal Secret holding
``TBHUB_DATABASE_URL`` and name it in ``DATABASE_SECRET``. Sign-in is on: the first admin's setup link
is in the hub's log (``modal app logs tbhub``), or run ``tbhub users add`` against the same database.

To add a trainer: a Volume name in ``TRAINERS`` and a three-line function like ``lora`` below (Modal
finds functions by their module-level name, so they are written out rather than made in a loop).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import modal

APP_NAME = "tbhub"
#: Trainer (the endpoint's name) → the Modal Volume its training jobs write TensorBoard logs to.
TRAINERS: dict[str, str] = {"lora": "lora-tensorboard", "router": "router-tensorboard"}
#: Each trainer's Volume is mounted read-only at LOGS/NAME.
LOGS = "/logs"
#: Seconds between ``volume.reload()`` calls; also TensorBoard's own reload interval.
RELOAD_INTERVAL_S = 30
TENSORBOARD_PORT = 6006
HUB_PORT = 6005
#: Web endpoint labels: the stable part of each URL.
TENSORBOARD_LABEL = "tb-{name}"
HUB_LABEL = "tbhub"
#: The hub's SQLite state database lives on this Volume, mounted at STATE.
STATE_VOLUME = "tbhub-state"
STATE = "/state"
#: A Modal Secret with TBHUB_DATABASE_URL (PostgreSQL) for the hub's state, or None for SQLite on STATE.
DATABASE_SECRET: str | None = None
#: Seconds a container may run; web endpoints are restarted by Modal when one ends.
CONTAINER_TIMEOUT_S = 24 * 3600
#: A trainer's TensorBoard stops after this long without requests and starts again on the next one;
#: the hub stays up (min_containers=1): it scans, alerts and keeps its TensorBoards loaded.
IDLE_TENSORBOARD_S = 20 * 60

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("tbhub.modal")

image = (
    modal.Image.debian_slim(python_version="3.11")
    # The same pinned dependencies as every other install (read when the image is built).
    .pip_install_from_pyproject(str(REPO / "pyproject.toml"), optional_dependencies=["postgres"])
    .env({"PYTHONUNBUFFERED": "1"})
    # The package itself, templates, static files and migrations included (not only .py files).
    .add_local_python_source("tbhub", ignore=["**/__pycache__", "**/*.pyc"])
)

app = modal.App(APP_NAME, image=image)

log_volumes: dict[str, modal.Volume] = {
    name: modal.Volume.from_name(volume, create_if_missing=True) for name, volume in TRAINERS.items()
}
state_volume = modal.Volume.from_name(STATE_VOLUME, create_if_missing=True)
hub_secrets = [modal.Secret.from_name(DATABASE_SECRET)] if DATABASE_SECRET else []


def read_only_mounts(names: Iterable[str]) -> dict[str, modal.Volume]:
    """Mount path → the trainer's Volume, read-only."""
    return {f"{LOGS}/{name}": log_volumes[name].with_mount_options(read_only=True) for name in names}


class Reloadable(Protocol):
    def reload(self) -> None: ...


def reload_forever(volumes: Mapping[str, Reloadable], interval: float, stop: threading.Event) -> None:
    """Call ``reload()`` on every Volume each ``interval`` seconds until ``stop`` is set.

    A failed reload (files open on the Volume, a network error) is logged; the next one catches up.
    """
    while not stop.wait(interval):
        for name, volume in volumes.items():
            try:
                volume.reload()
            except Exception as error:  # Modal raises RuntimeError for open files, grpc errors otherwise
                log.warning("reloading the %s volume failed, trying again in %g s: %s", name, interval, error)


def start_reloading(volumes: Mapping[str, Reloadable]) -> threading.Event:
    stop = threading.Event()
    threading.Thread(
        target=reload_forever, args=(volumes, RELOAD_INTERVAL_S, stop), name="volume-reload", daemon=True
    ).start()
    return stop


def tensorboard_command(name: str) -> list[str]:
    """Plain TensorBoard over one trainer's Volume, on all interfaces (Modal's proxy is the way in)."""
    return [
        sys.executable, "-m", "tensorboard.main",
        "--logdir", f"{LOGS}/{name}",
        "--host", "0.0.0.0",
        "--port", str(TENSORBOARD_PORT),
        "--reload_interval", str(RELOAD_INTERVAL_S),
    ]


def hub_config(database_url: str | None = None) -> str:
    """The hub's ``tbhub.toml``: every trainer as an endpoint over its read-only mount."""
    database = database_url or f"sqlite:///{STATE}/tbhub.db"
    lines = [
        "[server]",
        'host = "0.0.0.0"',
        f"port = {HUB_PORT}",
        "",
        "[state]",
        # Child logs and pid files on the container's disk; the database on the state Volume (or PostgreSQL).
        'dir = "/tmp/tbhub"',
        f'database = "{database}"',
        "",
    ]
    for name in TRAINERS:
        lines += [f"[endpoints.{name}]", f'logdir = "{LOGS}/{name}"', f"reload_interval = {RELOAD_INTERVAL_S}", ""]
    return "\n".join(lines)


def hub_command(config: Path) -> list[str]:
    """``tbhub serve`` with JSON logs, which ``modal app logs`` shows line by line."""
    return [sys.executable, "-m", "tbhub", "serve", "--config", str(config), "--log-format", "json"]


def serve_tensorboard(name: str) -> None:
    start_reloading({name: log_volumes[name]})
    subprocess.Popen(tensorboard_command(name))


@app.function(
    volumes=read_only_mounts(["lora"]),
    max_containers=1,
    timeout=CONTAINER_TIMEOUT_S,
    scaledown_window=IDLE_TENSORBOARD_S,
)
@modal.concurrent(max_inputs=100)
@modal.web_server(TENSORBOARD_PORT, startup_timeout=300, label=TENSORBOARD_LABEL.format(name="lora"))
def lora() -> None:
    serve_tensorboard("lora")


@app.function(
    volumes=read_only_mounts(["router"]),
    max_containers=1,
    timeout=CONTAINER_TIMEOUT_S,
    scaledown_window=IDLE_TENSORBOARD_S,
)
@modal.concurrent(max_inputs=100)
@modal.web_server(TENSORBOARD_PORT, startup_timeout=300, label=TENSORBOARD_LABEL.format(name="router"))
def router() -> None:
    serve_tensorboard("router")


@app.function(
    volumes={**read_only_mounts(TRAINERS), STATE: state_volume},
    secrets=hub_secrets,
    # Always on, in one container: SQLite on a Volume has one writer.
    min_containers=1,
    max_containers=1,
    timeout=CONTAINER_TIMEOUT_S,
)
@modal.concurrent(max_inputs=200)
@modal.web_server(HUB_PORT, startup_timeout=300, label=HUB_LABEL)
def hub() -> None:
    config = Path("/tmp/tbhub.toml")
    config.write_text(hub_config(os.environ.get("TBHUB_DATABASE_URL")))
    start_reloading(log_volumes)
    subprocess.Popen(hub_command(config))
