"""The demo's ``tbhub.toml``: written beside its logs, served from, and given to every command it suggests.

One file is what makes the hub and the CLI agree: the state directory (the index and the alerts), the
``DONE`` marker rule that makes a run ``finished`` and the short ``stalled_after`` live only here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tbhub.demo.writer import MARKER, DemoLogs

__all__ = ["CONFIG_NAME", "DemoPorts", "demo_config_text", "write_demo_config"]

CONFIG_NAME = "tbhub.toml"

_TITLES = {"lora": "LoRA fine-tunes", "router": "MoE routers"}


@dataclass(frozen=True, slots=True)
class DemoPorts:
    """The hub's port, each endpoint's TensorBoard port and their reload interval."""

    hub: int = 6005
    lora: int = 6006
    router: int = 6007
    reload_interval: int = 5


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string (same escapes; non-ASCII as \\uXXXX).
    return json.dumps(value)


def demo_config_text(base: Path, logs: DemoLogs, ports: DemoPorts) -> str:
    """The demo's config file: absolute paths, so it works from any folder."""
    endpoint_ports = {"lora": ports.lora, "router": ports.router}
    lines = [
        "# Written by `tbhub demo`. The demo's hub serves from this file; give it to any command",
        f"# (`tbhub runs --config {base / CONFIG_NAME} --status`) and it sees what the hub sees.",
        "",
        "[server]",
        'host = "127.0.0.1"',
        f"port = {ports.hub}",
        "",
        "[state]",
        "# The index, alerts and history of this demo (a real hub keeps them in ~/.local/share/tbhub).",
        f"dir = {_toml_string(str(base / 'state'))}",
        "",
        "[auth]",
        "# Off for the demo only: the hub listens on 127.0.0.1 and the data is throwaway.",
        '# Sign-in on (as on a real hub): mode = "password"',
        'mode = "none"',
        "",
        "[alerts]",
        "# A run is finished when its trainer drops this file; stalled after 2 minutes without events.",
        f"marker_files = [{_toml_string(MARKER)}]",
        'stalled_after = "2m"',
        "",
        "[cost]",
        "# Compute is priced per GPU-hour of a run's busy time (tbhub usage, tbhub trends, /usage, /trends).",
        "gpu_hour = 2.5",
        "gpus = 8",
        "",
        "[cost.endpoints.lora]",
        "gpus = 1                      # a LoRA fine-tune fits on one GPU",
    ]
    for name, root in logs.roots.items():
        lines += [
            "",
            f"[endpoints.{name}]",
            f"logdir = {_toml_string(str(root))}",
            f"port = {endpoint_ports[name]}",
            f"reload_interval = {ports.reload_interval}",
            f"title = {_toml_string(_TITLES.get(name, name))}",
        ]
    return "\n".join(lines) + "\n"


def write_demo_config(base: Path, logs: DemoLogs, ports: DemoPorts) -> Path:
    """Write ``base/tbhub.toml`` (never over an existing file) and return its path."""
    path = base / CONFIG_NAME
    with path.open("x", encoding="utf-8") as fh:
        fh.write(demo_config_text(base, logs, ports))
    return path
