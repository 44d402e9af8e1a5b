"""``tbhub serve``: every endpoint's TensorBoard, supervised, behind the hub on one port."""

from __future__ import annotations

import errno
import signal
import socket
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from tbhub.config import Config
from tbhub.errors import ServeError
from tbhub.hub import Hub
from tbhub.interfaces.cli.options import ConfigOpt, LogdirOpt, PathArg, config_from

__all__ = ["check_port", "run_hub", "serve_command"]


def check_port(host: str, port: int, what: str) -> None:
    """Raise ``ServeError`` naming ``what`` when ``host:port`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ServeError(f"port {port} for {what} is already in use") from None
            raise ServeError(f"cannot listen on {host}:{port} for {what}: {error.strerror}") from None


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_hub(
    config: Config, *, scan_interval: float, console: Console, job_interval: float = 30.0, alerts_warmup: float = 30.0
) -> None:
    """Start the TensorBoards, print the URLs, serve until SIGINT/SIGTERM, then stop everything."""
    host, port = config.server.host, config.server.port
    try:
        config.check_auth()  # again: --host may have moved the hub off loopback after the file was checked
    except ValueError as error:
        raise ServeError(str(error)) from None
    check_port(host, port, "the hub")
    hub = Hub.from_config(config)
    try:
        assert hub.supervisor is not None
        hub.supervisor.start()
        # Imported once the TensorBoards are loading: FastAPI, uvicorn and the alert engine cost about a
        # second, which neither their start nor other commands should wait for.
        import uvicorn

        from tbhub.interfaces.web.app import create_app
        from tbhub.watch import build_channels

        build_channels(config)  # a missing secret is one clear line, not a failure in the background
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        console.print(f"[bold]tbhub[/] hub on http://{shown}:{port}/", soft_wrap=True)
        for spec in hub.specs.values():
            console.print(
                f"  {spec.name:<12} http://{shown}:{port}/tb/{spec.name}/   "
                f"(direct: http://127.0.0.1:{spec.port}/tb/{spec.name}/, reload every {spec.reload_interval}s)",
                soft_wrap=True,
            )
        if config.auth.enabled:
            _offer_setup(hub, f"http://{shown}:{port}", console)
        app = create_app(hub, scan_interval=scan_interval, job_interval=job_interval, alerts_warmup=alerts_warmup)
        server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3,
                           access_log=False)
        )
        # uvicorn re-raises the signal that stopped it once it has shut down; with the default SIGTERM
        # action that would kill this process before the TensorBoards are stopped. Turn it into an
        # exception so the `finally` below always runs.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            server.run()
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        hub.close()


def _offer_setup(hub: Hub, base_url: str, console: Console) -> None:
    """With auth on and no admin yet: print a one-time link that creates the first admin."""
    from tbhub.adapters.db.accounts import AccountStore

    accounts = AccountStore(hub.state.engine)
    if accounts.has_admin():
        return
    token = accounts.create_setup_token()
    console.print(
        f"[bold yellow]no admin yet:[/] create one at {base_url}/setup/{token} "
        "(works once, for 24 h), or run `tbhub users add NAME --role admin`",
        soft_wrap=True,
    )


def serve_command(
    path: PathArg = None,
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    host: Annotated[str | None, typer.Option("--host", help="Hub address (default from config).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Hub port (default 6005).")] = None,
    scan_interval: Annotated[
        float, typer.Option("--scan-interval", help="Seconds between background scans of the log roots.")
    ] = 15.0,
    job_interval: Annotated[
        float, typer.Option("--job-interval", help="Seconds between checks for due jobs (retention, usage).")
    ] = 30.0,
    alerts_warmup: Annotated[
        float,
        typer.Option("--alerts-warmup", help="Seconds every TensorBoard must be up before the first alert pass."),
    ] = 30.0,
) -> None:
    """Serve every endpoint's TensorBoard (restarted if it dies) and the hub with one proxy URL."""
    cfg = config_from(config, logdir, path)
    cfg.endpoint_specs()  # no endpoints: one clear line before anything starts
    if host is not None or port is not None:
        server = cfg.server.model_copy(update={k: v for k, v in {"host": host, "port": port}.items() if v})
        cfg = cfg.model_copy(update={"server": server})
    run_hub(cfg, scan_interval=scan_interval, console=Console(), job_interval=job_interval, alerts_warmup=alerts_warmup)
