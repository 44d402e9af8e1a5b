"""``tbhub alerts`` (the history) and ``tbhub notify test|enable CHANNEL``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tbhub.app.alerts import alert_history
from tbhub.app.services import Services
from tbhub.errors import DeliveryError, UsageError
from tbhub.interfaces.cli.formatting import CommandGroup
from tbhub.interfaces.cli.options import ConfigOpt, JsonOpt, config_from, note_state, output_console, print_json
from tbhub.interfaces.cli.render import name_text

__all__ = ["alerts_command", "notify_app"]

notify_app = CommandGroup(help="""Notification channels ([[notify]] in the config): list and test them.

Examples:
  tbhub notify list --config tbhub.toml
  tbhub notify test slack-0 --config tbhub.toml
""")


def alerts_command(
    config: ConfigOpt = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="How many, newest first.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """The alert history: which run changed into which status, when, and where it was delivered.

    tbhub serve records the alerts; this command only reads them (it creates no state database).

    Examples:
      tbhub alerts --config tbhub.toml
      tbhub alerts --config tbhub.toml --limit 20 --json
    """
    cfg = config_from(config, None, None)
    with Services(cfg) as services:
        state = services.existing_state() if note_state(services) else None
        records = alert_history(state, limit) if state is not None else []
    if as_json:
        print_json(records)
        return
    table = Table("when", "run", "status", "what", "delivered")
    for r in records:
        when = dt.datetime.fromtimestamp(float(r["at"]), tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        delivered = ", ".join(f"{k}: {v['outcome']}" for k, v in r["deliveries"].items()) or "pending"
        table.add_row(
            when,
            name_text(f"{r['endpoint']}/{r['dataset']}/{r['run']}"),
            str(r["status"]),
            name_text(str(r["message"])),
            name_text(delivered),
        )
    output_console().print(table)


ChannelArg = Annotated[
    str, typer.Argument(metavar="CHANNEL", help="The channel's name (name = ... or TYPE-INDEX, e.g. slack-0).")
]


@notify_app.command("test")
def notify_test(channel: ChannelArg, config: ConfigOpt = None) -> None:
    """Send a test message through CHANNEL; a channel disabled by a failure is enabled again on success.

    A failed test leaves the channel as it was: only the alert engine's own deliveries disable it.

    Examples:
      tbhub notify test slack-0 --config tbhub.toml
    """
    from tbhub.app.alerts import AlertEngine

    cfg = config_from(config, None, None)
    if channel not in cfg.channel_names():
        known = ", ".join(cfg.channel_names()) or "none configured"
        raise UsageError(f"unknown notify channel {channel!r} (known: {known})")
    with Services(cfg) as services:
        engine = AlertEngine(services)
        try:
            engine.send_test(channel)
        except DeliveryError as error:
            # The message quotes the receiver's answer: text, never console markup.
            output_console().print(f"[red]not delivered:[/] {escape(error.message)}", soft_wrap=True)
            raise typer.Exit(1) from None
    output_console().print(f"test message delivered to {channel}")


@notify_app.command("list")
def notify_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The channels, what they are sent, and whether a permanent failure disabled them.

    Examples:
      tbhub notify list --config tbhub.toml
      tbhub notify list --config tbhub.toml --json
    """
    cfg = config_from(config, None, None)
    with Services(cfg) as services:
        state = services.existing_state() if note_state(services, "no channel was disabled") else None
        states = state.channel_states() if state is not None else {}
    rows = [
        {
            "name": n,
            "type": c.type,
            "on": c.on,
            "disabled": states.get(n, (False, None))[0],
            "reason": states.get(n, (False, None))[1],
        }
        for n, c in zip(cfg.channel_names(), cfg.notify, strict=True)
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("channel", "type", "on", "state")
    for r in rows:
        table.add_row(
            str(r["name"]),
            str(r["type"]),
            ", ".join(str(x) for x in r["on"]),  # type: ignore[union-attr]
            name_text(f"disabled: {r['reason']}") if r["disabled"] else "active",
        )
    output_console().print(table)
