"""``tbhub demo``: realistic demo logs and their ``tbhub.toml``, two runs still training, served like ``serve``.

The demo writes its config file beside its logs and serves from that file, so the commands it prints
(``tbhub runs --config DIR/tbhub.toml --status`` ...) see what the hub sees. Ctrl-C ends it with exit
code 0 and one closing line; under ``make demo`` it takes the terminal's Ctrl-C for itself
(``_own_ctrl_c``) so that make neither reports an error nor dies of the interrupt.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tbhub.app.services import Services
from tbhub.app.usage import seed_usage_history
from tbhub.config import load_config
from tbhub.errors import UsageError
from tbhub.interfaces.cli.options import checked_by
from tbhub.interfaces.cli.serve import check_port, run_hub

__all__ = ["demo_command", "demo_commands"]

#: The demo's background pace: a scan every few seconds and an alert pass soon after the TensorBoards
#: are up, so the run that diverges and the one that finishes show on /alerts within the first minute
#: (``tbhub serve`` waits 30 s and scans every 15 s: it has real trees to be gentle with).
ALERTS_WARMUP_S = 2.0
#: Days of usage history the demo's backdated runs give /usage (its oldest run started about 5 weeks ago).
DEMO_HISTORY_DAYS = 45


def _program() -> str:
    """How the user can run this same ``tbhub`` from where they are: ``tbhub`` when it is the one on
    PATH, else its path (``.venv/bin/tbhub`` under ``make demo``, relative to the working folder)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "tbhub"
    me = shutil.which(argv0) or argv0
    if Path(me).name != "tbhub":  # python -m tbhub, or a test harness: the console script beside python
        beside = Path(sys.executable).parent / "tbhub"
        me = str(beside) if beside.exists() else "tbhub"
    on_path = shutil.which("tbhub")
    if me == "tbhub" or (on_path and Path(on_path).resolve() == Path(me).resolve()):
        return "tbhub"
    path = Path(me).absolute()
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def demo_commands(program: str, config: Path) -> list[str]:
    """The commands the demo suggests, each ready to paste: they all read the demo's config file."""
    c = f"{program} {{}} --config {shlex.quote(str(config))}"
    return [
        c.format("runs") + " --status",
        c.format("alerts"),
        c.format("clean") + " --dry-run --select old",
        c.format("compare") + " --endpoint lora --tag eval/loss --sort eval/loss:min",
    ]


@contextlib.contextmanager
def _own_ctrl_c() -> Iterator[None]:
    """While serving, be the terminal's foreground process group when a program started us in its own.

    Ctrl-C goes to every process of the terminal's foreground group. Under ``make demo`` that includes
    make, which on SIGINT waits for its recipe and then kills itself with SIGINT (and reports "Error
    130" for a recipe that exited so): a demo stopped on purpose would read as a failure. Moving this
    process into a group of its own and handing it the terminal (what a shell does for each job) keeps
    Ctrl-C for the demo; the terminal is handed back before returning. A shell already gives each job
    its own group: then nothing changes.
    """
    fd, parent = -1, -1
    with contextlib.suppress(OSError, ValueError):
        fd = sys.stdin.fileno()
        if os.isatty(fd) and os.getpgrp() != os.getpid() and os.tcgetpgrp(fd) == os.getpgrp():
            parent = os.getpgrp()
    if parent < 0:
        yield
        return
    # A background group that touches the terminal's settings gets SIGTTOU (stopped): ignore it meanwhile.
    quiet = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    # A stopped demo (Ctrl-Z) would leave make waiting and the terminal to no one: it does not stop.
    no_stop = signal.signal(signal.SIGTSTP, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
        os.tcsetpgrp(fd, os.getpgrp())
    except OSError:
        signal.signal(signal.SIGTTOU, quiet)
        signal.signal(signal.SIGTSTP, no_stop)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, parent)
        signal.signal(signal.SIGTTOU, quiet)
        signal.signal(signal.SIGTSTP, no_stop)


class _Interrupts:
    """SIGINT: the first one stops the demo (``KeyboardInterrupt``); later ones, while it is stopping
    its TensorBoards and writing its closing line, are ignored rather than cutting that short."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.seen += 1
        if self.seen == 1:
            raise KeyboardInterrupt


def _introduce(console: Console, base: Path, config: Path, runs: int, live: list[str]) -> None:
    program = _program()
    out = console.print
    out(f"[bold]tbhub demo[/]: {runs} runs of two trainers (lora, router) in {escape(str(base))}", soft_wrap=True)
    out(f"  config: {escape(str(config))}  (the hub serves from it; give it to any command)", soft_wrap=True)
    out("  while you watch: " + escape(live[0]) + " diverges (its loss turns NaN) and " + escape(live[1])
        + " finishes, within a minute: see /alerts. Ctrl-C stops the demo.", soft_wrap=True)
    here = "" if program == "tbhub" or Path(program).is_absolute() else " (from this folder)"
    out(f"Try these in another terminal{here}:")
    for command in demo_commands(program, config):
        out(f"  {escape(command)}", soft_wrap=True, highlight=False)
    out("Sign-in is off in this demo: the hub listens on 127.0.0.1 only and the data is throwaway. To turn it "
        f'on, set mode = "password" under \\[auth] in {escape(str(config))} and serve it with '
        f"`{escape(program)} serve --config {escape(shlex.quote(str(config)))}`.", soft_wrap=True)


def demo_command(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", metavar="DIR",
                     help="An empty folder for the demo logs and config (default: a new temporary folder)."),
    ] = None,
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Hub port.")] = 6005,
    lora_port: Annotated[int, typer.Option("--lora-port", metavar="PORT", help="Port of the lora TensorBoard.")] = 6006,
    router_port: Annotated[
        int, typer.Option("--router-port", metavar="PORT", help="Port of the router TensorBoard.")
    ] = 6007,
    interval: Annotated[
        float, typer.Option("--interval", metavar="SECONDS", help="Seconds between live training steps.")
    ] = 3.0,
    reload_interval: Annotated[
        int,
        typer.Option("--reload-interval", metavar="SECONDS", help="TensorBoard reload seconds (at least 1).",
                     callback=checked_by("endpoints.NAME.reload_interval")),
    ] = 5,
) -> None:
    """Write demo logs of two trainers and their tbhub.toml, keep runs training, and serve them (Ctrl-C stops).

    Within the first minute one live run diverges and another finishes, so the alert feed has news.
    Sign-in is off (the hub listens on 127.0.0.1 only); the logs stay until you remove them.

    Examples:
      tbhub demo
      tbhub demo --dir /tmp/tbhub-demo --port 6105 --lora-port 6106 --router-port 6107
    """
    from tbhub.demo import DemoPorts, LiveWriter, write_demo_config, write_demo_logs  # tensorboard: when asked

    if not interval > 0:
        raise UsageError(f"--interval must be more than 0 seconds, not {interval:g}")
    # Before anything is written: a port in use is one line, not a folder of logs left behind.
    for number, what in ((port, "the hub"), (lora_port, "the lora TensorBoard"),
                         (router_port, "the router TensorBoard")):
        check_port("127.0.0.1", number, what)
    base = directory or Path(tempfile.mkdtemp(prefix="tbhub-demo-"))
    if base.exists() and any(base.iterdir()):
        raise UsageError(f"{base} is not empty; give --dir an empty folder (or none for a temporary one)")
    base = base.absolute()
    base.mkdir(parents=True, exist_ok=True)
    console = Console()
    interrupts = _Interrupts()
    previous = signal.signal(signal.SIGINT, interrupts)
    writer: LiveWriter | None = None
    try:
        with _own_ctrl_c():
            logs = write_demo_logs(base)
            config_path = write_demo_config(
                base, logs, DemoPorts(hub=port, lora=lora_port, router=router_port, reload_interval=reload_interval)
            )
            config = load_config(config_path)  # what every suggested command reads, read the same way
            with Services(config) as services:  # the backdated runs' size history, for /usage and its growth
                seed_usage_history(services, time.time(), DEMO_HISTORY_DAYS)
            changing = [f"{r.endpoint}/{r.dataset}/{r.run}" for k in ("diverging", "finishing")
                        for r in logs.live if r.kind == k]
            _introduce(console, base, config_path, len(logs.runs), changing)
            writer = LiveWriter(logs, interval=interval)
            writer.start()
            run_hub(config, scan_interval=min(3.0, max(1.0, interval)), console=console,
                    alerts_warmup=ALERTS_WARMUP_S)
    except KeyboardInterrupt:
        pass
    except SystemExit as stop:  # SIGTERM (``run_hub`` turns it into exit 0): the same goodbye
        if stop.code not in (0, None):
            raise
    finally:
        if writer is not None:
            writer.stop()
        signal.signal(signal.SIGINT, previous)
    quoted = shlex.quote(str(base))
    console.print(f"\nDemo stopped. Its logs and config stay in {escape(str(base))}; "
                  f"remove them with: rm -rf {escape(quoted)}", soft_wrap=True, highlight=False)
