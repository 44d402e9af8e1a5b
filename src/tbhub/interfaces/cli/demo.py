"""``tbhub demo``: realistic demo logs, two of them still training, served exactly like ``serve``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tbhub.config import AlertsConfig, AuthConfig, Config, ServerConfig, StateConfig
from tbhub.config import EndpointConfig as Endpoint
from tbhub.errors import UsageError
from tbhub.interfaces.cli.options import checked_by
from tbhub.interfaces.cli.serve import run_hub

__all__ = ["demo_command"]


def demo_command(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="An empty folder for the demo logs (default: a new temporary folder)."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Hub port.")] = 6005,
    lora_port: Annotated[int, typer.Option("--lora-port", help="Port of the lora TensorBoard.")] = 6006,
    router_port: Annotated[int, typer.Option("--router-port", help="Port of the router TensorBoard.")] = 6007,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between live training steps.")] = 3.0,
    reload_interval: Annotated[
        int,
        typer.Option("--reload-interval", help="TensorBoard reload seconds (at least 1).",
                     callback=checked_by("endpoints.NAME.reload_interval")),
    ] = 5,
) -> None:
    """Write demo logs for two trainers (lora, router), keep two runs training, and serve them."""
    from tbhub.demo import LiveWriter, write_demo_logs  # tensorboard: only when asked for

    base = directory or Path(tempfile.mkdtemp(prefix="tbhub-demo-"))
    if base.exists() and any(base.iterdir()):
        raise UsageError(f"{base} is not empty; give --dir an empty folder (or none for a temporary one)")
    base.mkdir(parents=True, exist_ok=True)
    console = Console()
    logs = write_demo_logs(base)
    for run in logs.runs:
        if run.kind in ("finished", "old"):
            # Trainers often drop a marker when done; the demo's status rules look for it.
            marker, mtime = run.path / "DONE", run.path.stat().st_mtime
            marker.touch()
            os.utime(marker, (mtime, mtime))
            os.utime(run.path, (mtime, mtime))
    console.print(f"demo logs in {base}: {len(logs.runs)} runs, {len(logs.live)} still training", soft_wrap=True)
    config = Config(
        server=ServerConfig(port=port),
        state=StateConfig(dir=base / "state"),
        alerts=AlertsConfig(marker_files=["DONE"], stalled_after="2m"),
        auth=AuthConfig(mode="none"),  # a demo on 127.0.0.1 needs no setup
        endpoints={
            "lora": Endpoint(logdir=str(logs.roots["lora"]), port=lora_port, reload_interval=reload_interval,
                             title="LoRA fine-tunes"),
            "router": Endpoint(logdir=str(logs.roots["router"]), port=router_port,
                               reload_interval=reload_interval, title="MoE routers"),
        },
    )
    writer = LiveWriter(logs, interval=interval)
    writer.start()
    try:
        run_hub(config, scan_interval=max(2.0, interval), console=console, alerts_warmup=5.0)
    finally:
        writer.stop()
