"""``tbhub db``: the state database."""

from __future__ import annotations

from rich.console import Console

from tbhub.app.database import upgrade_database
from tbhub.app.services import Services
from tbhub.interfaces.cli.formatting import CommandGroup
from tbhub.interfaces.cli.options import ConfigOpt, config_from

__all__ = ["db_app"]

db_app = CommandGroup(help="""The state database ([state] in the config): create or migrate it.

Examples:
  tbhub db upgrade --config tbhub.toml
""")


@db_app.command("upgrade")
def upgrade(config: ConfigOpt = None) -> None:
    """Create or migrate the state database to the newest schema.

    Examples:
      tbhub db upgrade --config tbhub.toml
    """
    cfg = config_from(config, None, None)
    before, after = upgrade_database(cfg)
    Console().print(f"state database {Services(cfg).describe_state()}: {before or 'empty'} -> {after}")
