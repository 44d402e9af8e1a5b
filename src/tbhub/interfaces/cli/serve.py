"""``tbhub serve``: every endpoint's TensorBoard, supervised, behind the hub on one port."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tbhub.app.tensorboards import tensorboard_supervisor
from tbhub.app.timing import ALERTS_WARMUP_S, JOB_INTERVAL_S, SCAN_INTERVAL_S
from tbhub.config import Config
from tbhub.errors import ServeError, UsageError
from tbhub.interfaces.cli.logs import LOG_FORMATS, LOG_LEVELS, LogFormat, configure_logging
from tbhub.interfaces.cli.options import ConfigOpt, LogdirOpt, PathArg, config_from

if TYPE_CHECKING:
    from tbhub.app.hub import Hub

__all__ = ["check_port", "forwarding", "run_hub", "serve_command"]

log = logging.getLogger("tbhub.serve")
SWITCH_INTERVAL_S = 0.001


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
    config: Config,
    *,
    scan_interval: float,
    console: Console,
    job_interval: float = JOB_INTERVAL_S,
    alerts_warmup: float = ALERTS_WARMUP_S,
    log_format: LogFormat = "text",
    log_level: str = "warning",
    access_log: bool | None = None,
) -> None:
    """Start the TensorBoards, print the URLs, serve until SIGINT/SIGTERM, then stop everything.

    With ``log_format="json"`` the URLs are log records too, so every line of output is JSON;
    ``access_log`` (default: on for JSON) logs each request.
    """
    access_log = log_format == "json" if access_log is None else access_log
    configure_logging(log_format, log_level, access_log=access_log)
    host, port = config.server.host, config.server.port
    try:
        config.check_auth()  # again: --host may have moved the hub off loopback after the file was checked
    except ValueError as error:
        raise ServeError(str(error)) from None
    check_port(host, port, "the hub")
    # The background thread (scans, the alert engine's scalar parsing) holds the GIL for up to the
    # switch interval each time the event loop wants it back: 5 ms by default, paid on every chunk a
    # proxied response streams. 1 ms keeps the proxy close to a direct connection while it runs.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # The TensorBoards start first: loading the event files is what users wait for. The hub's own
    # imports (SQLAlchemy, FastAPI, uvicorn, the alert engine: about a second) and its database follow
    # while they load.
    supervisor = tensorboard_supervisor(config)
    supervisor.start()
    try:
        from tbhub.app.hub import Hub

        hub = Hub.from_config(config, supervisor=supervisor)
    except BaseException:
        supervisor.stop()
        raise
    try:
        import uvicorn

        from tbhub.app.alerts import build_channels
        from tbhub.interfaces.web.app import create_app

        build_channels(config)  # a missing secret is one clear line, not a failure in the background
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if log_format == "json":
            log.info("hub on http://%s:%d/", shown, port, extra={"url": f"http://{shown}:{port}/"})
        else:
            console.print(f"[bold]tbhub[/] hub on http://{shown}:{port}/", soft_wrap=True)
        for spec in hub.specs.values():
            url = f"http://{shown}:{port}/tb/{spec.name}/"
            direct = f"http://127.0.0.1:{spec.port}/tb/{spec.name}/"
            if log_format == "json":
                log.info("endpoint %s on %s", spec.name, url, extra={
                    "endpoint": spec.name, "url": url, "direct_url": direct, "reload_interval": spec.reload_interval})
                continue
            console.print(
                f"  {spec.name:<12} {url}   (direct: {direct}, reload every {spec.reload_interval}s)", soft_wrap=True
            )
        if config.auth.enabled:
            _offer_setup(hub, f"http://{shown}:{port}", console, as_log=log_format == "json")
        app = create_app(hub, scan_interval=scan_interval, job_interval=job_interval, alerts_warmup=alerts_warmup)
        server = uvicorn.Server(
            # Logging is configured above, before the TensorBoards start; uvicorn must not redo it.
            uvicorn.Config(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=3,
                           access_log=access_log, **forwarding(config))
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


def forwarding(config: Config) -> dict[str, Any]:
    """uvicorn's forwarded-header options: off. Left at its defaults, uvicorn rewrites the client
    address from ``X-Forwarded-For`` whenever the peer is 127.0.0.1 (or ``$FORWARDED_ALLOW_IPS``), and
    the hub would then take a forged address for the TCP peer. The hub reads those headers itself,
    only from ``auth.trusted_proxies`` (``tbhub.interfaces.web.forwarded``), and must see the real peer."""
    return {"proxy_headers": False, "forwarded_allow_ips": list(config.auth.trusted_proxies)}


def _offer_setup(hub: Hub, base_url: str, console: Console, *, as_log: bool = False) -> None:
    """With auth on and no admin yet: print (or log) a one-time link that creates the first admin."""

    accounts = hub.services.accounts
    if accounts.has_admin():
        return
    token = accounts.create_setup_token()
    if as_log:
        log.warning("no admin yet: create one at the setup link (works once, for 24 h), or run "
                    "`tbhub users add NAME --role admin`", extra={"setup_url": f"{base_url}/setup/{token}"})
        return
    console.print(
        f"[bold yellow]no admin yet:[/] create one at {base_url}/setup/{token} "
        "(works once, for 24 h), or run `tbhub users add NAME --role admin`",
        soft_wrap=True,
    )


def serve_command(
    path: PathArg = None,
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    host: Annotated[str | None, typer.Option("--host", metavar="ADDRESS", help="Hub address (default from config).")]
    = None,
    port: Annotated[int | None, typer.Option("--port", metavar="PORT", help="Hub port (default 6005).")] = None,
    scan_interval: Annotated[
        float,
        typer.Option("--scan-interval", metavar="SECONDS", help="Seconds between background scans of the log roots."),
    ] = SCAN_INTERVAL_S,
    job_interval: Annotated[
        float,
        typer.Option("--job-interval", metavar="SECONDS",
                     help="Seconds between checks for due jobs (retention, usage)."),
    ] = JOB_INTERVAL_S,
    alerts_warmup: Annotated[
        float,
        typer.Option("--alerts-warmup", metavar="SECONDS",
                     help="Seconds every TensorBoard must be up before the first alert pass."),
    ] = ALERTS_WARMUP_S,
    log_format: Annotated[
        str,
        typer.Option("--log-format", metavar="[text|json]",
                     help="text, or json: one JSON object per line (for log collectors)."),
    ] = "text",
    log_level: Annotated[
        str,
        typer.Option("--log-level", metavar="LEVEL",
                     help="debug, info, warning or error (tbhub's and the server's logs)."),
    ] = "info",
    access_log: Annotated[
        bool | None,
        typer.Option("--access-log/--no-access-log", help="Log every request (default: on with --log-format json)."),
    ] = None,
) -> None:
    """Serve every endpoint's TensorBoard (restarted if it dies) and the hub with one proxy URL.

    Examples:
      tbhub serve --config tbhub.toml
      tbhub serve --logdir lora=/data/tb/lora --logdir router=/data/tb/router --port 8080
      tbhub serve --config tbhub.toml --host 0.0.0.0 --log-format json
    """
    if log_format not in LOG_FORMATS:
        raise UsageError(f"--log-format must be text or json, not {log_format!r}")
    if log_level.lower() not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
    cfg = config_from(config, logdir, path)
    cfg.endpoint_specs()  # no endpoints: one clear line before anything starts
    if host is not None or port is not None:
        server = cfg.server.model_copy(update={k: v for k, v in {"host": host, "port": port}.items() if v})
        cfg = cfg.model_copy(update={"server": server})
    run_hub(
        cfg,
        scan_interval=scan_interval,
        console=Console(),
        job_interval=job_interval,
        alerts_warmup=alerts_warmup,
        log_format="json" if log_format == "json" else "text",
        log_level=log_level.lower(),
        access_log=access_log,
    )
