"""Every setting as data: one row of (key, default, help) per setting, and its one validation.

``tests/test_docs.py`` checks that each key is in the README's table and that the table and the models
name the same settings. A model field whose default or check is here reads it from here
(``setting(key).default``, ``checked(key)``): there is no second copy to drift.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AfterValidator

from tbhub.core.models import DEFAULT_LAYOUT
from tbhub.core.runs import check_layout

__all__ = [
    "FIRST_ENDPOINT_PORT",
    "LOOPBACK_HOSTS",
    "SETTINGS",
    "Setting",
    "checked",
    "default",
    "default_state_dir",
    "setting",
]

_T = TypeVar("_T")

#: Endpoints without a port get the next free one from here, in config order.
FIRST_ENDPOINT_PORT = 6006

#: Hosts the hub may listen on with ``[auth] mode = "none"``.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its dotted key (``NAME``, ``ENDPOINT`` and ``GLOB`` stand for any table name), the
    default the README shows, a one-line help, and optionally the check its value must pass (raising
    ``ValueError`` with a message that reads after ``key:``)."""

    key: str
    default: object
    help: str
    check: Callable[[Any], Any] | None = None


def default_state_dir() -> Path:
    home = os.environ.get("TBHUB_HOME")
    if home:
        return Path(home).expanduser()
    return Path("~/.local/share/tbhub").expanduser()


def _reload_interval(seconds: int) -> int:
    # TensorBoard reads 0 as "load once at startup, never again" (and a mirrored s3:// root would sync
    # in a busy loop): a hub that silently stops showing new steps is never what was meant.
    if seconds < 1:
        raise ValueError(
            f"must be a whole number of seconds, at least 1 (got {seconds}); "
            "0 would make TensorBoard load the logs once and never show new steps"
        )
    return seconds


#: Every setting, in the README's order.
SETTINGS: tuple[Setting, ...] = (
    Setting("server.host", "127.0.0.1", "Address the hub binds to."),
    Setting("server.port", 6005, "Port of the hub (pages, API and the /tb/NAME proxy)."),
    Setting("server.public_url", None, "The hub's URL as users reach it, for links in notifications."),
    Setting("state.dir", "$TBHUB_HOME or ~/.local/share/tbhub", "Folder for the state database and logs."),
    Setting("state.database", "sqlite:///STATE_DIR/tbhub.db", "SQLAlchemy URL of the state database."),
    Setting("display.fresh_days", 1, "Runs younger than this many days show green."),
    Setting("display.old_days", 7, "Runs at least this many days old show red and are 'old'."),
    Setting("endpoints.NAME.logdir", None, "The log root (required)."),
    Setting("endpoints.NAME.layout", DEFAULT_LAYOUT,
            "Where runs live below the log root: \"{dataset}/{run}\" or \"{run}\" (no datasets).", check_layout),
    Setting("endpoints.NAME.port", f"{FIRST_ENDPOINT_PORT}, {FIRST_ENDPOINT_PORT + 1}, ...",
            "Port of this endpoint's TensorBoard."),
    Setting("endpoints.NAME.reload_interval", 30, "Seconds between TensorBoard reloads (at least 1).",
            _reload_interval),
    Setting("endpoints.NAME.title", None, "A human title for the hub page."),
    Setting("endpoints.NAME.expose", False, "Bind this TensorBoard to all interfaces, not only 127.0.0.1."),
    Setting("endpoints.NAME.s3", None,
            "[s3] settings for this endpoint's s3:// log root; unset keys come from [s3]."),
    Setting("s3.endpoint_url", None, "S3-compatible server URL (else $AWS_ENDPOINT_URL, else AWS)."),
    Setting("s3.region", None, "Region (else $AWS_DEFAULT_REGION or the profile's)."),
    Setting("s3.profile", None, "Profile in ~/.aws/config and credentials (else $AWS_PROFILE)."),
    Setting("s3.access_key_id_env", None, "Variable holding the access key id (else $AWS_ACCESS_KEY_ID)."),
    Setting("s3.secret_access_key_env", None, "Variable holding the secret key (else $AWS_SECRET_ACCESS_KEY)."),
    Setting("s3.secret_access_key_file", None, "Or a file holding the secret key."),
    Setting("s3.anon", False, "Read public buckets without credentials."),
    Setting("s3.sync_requests", 32, "Requests in flight while serve mirrors an s3:// log root (1-256)."),
    Setting("retention.schedule", None, "Apply the retention policies daily at this local time (\"03:00\")."),
    Setting("retention.every", None, "Or apply them at this interval (\"6h\")."),
    Setting("retention.active_minutes", 10, "Runs written this recently are never removed by a policy."),
    Setting("retention.ENDPOINT.keep_days", None, "Remove runs older than this many days."),
    Setting("retention.ENDPOINT.keep_last", None, "Always keep this many newest runs of each dataset."),
    Setting("retention.ENDPOINT.archive_to", None, "Archive runs here before removing them."),
    Setting("retention.ENDPOINT.max_delete", None, "Refuse (and report) an application that removes more runs."),
    Setting("retention.ENDPOINT.max_bytes", None,
            "Refuse (and report) an application that frees more (\"500GB\")."),
    Setting("retention.ENDPOINT.datasets.GLOB", None,
            "A rule for matching datasets: keep_days, keep_last, archive_to."),
    Setting("alerts.stalled_after", "15m", "A run with no new events for this long is stalled."),
    Setting("alerts.max_steps", None, "A run whose last step reaches this is finished (a Keras run: its epochs)."),
    Setting("alerts.final_tags", [], "A run that logs one of these tags is finished (train/train_runtime)."),
    Setting("alerts.marker_files", [], "A run folder holding one of these files is finished (DONE)."),
    Setting("alerts.watch", ["*loss*"], "Scalar tags watched for divergence."),
    Setting("alerts.threshold", None, "A watched scalar above this has diverged."),
    Setting("alerts.factor", None, "A watched scalar above factor x its minimum has diverged."),
    Setting("alerts.max_age", "24h", "Alerts older than this are dropped, not delivered, when a channel recovers."),
    Setting("alerts.endpoints.NAME", None, "Status rules for one endpoint; .datasets.GLOB for matching datasets."),
    Setting("notify", [], "[[notify]] channels: type slack, webhook or email; see Alerts."),
    Setting("cost.storage_per_gb_month", 0.0,
            "Storage price per GB and month, for `tbhub usage`; 0: not set (said so, not priced 0.00)."),
    Setting("cost.currency", "USD", "Currency of every price (storage and compute)."),
    Setting("cost.gpu_hour", None, "Compute price per GPU-hour of a run's busy time (unset: not priced)."),
    Setting("cost.gpus", None, "GPUs per run (else the device count of the run's plan, else 1)."),
    Setting("cost.endpoints.NAME", None, "gpu_hour and gpus for one endpoint; .datasets.GLOB for matching datasets."),
    Setting("auth.mode", "password",
            "\"password\" (accounts and roles) or \"none\" (no login; only on a loopback host)."),
    Setting("auth.session_max_age", "12h", "A browser session ends this long after login."),
    Setting("auth.trusted_proxies", [], "Addresses of an authenticating proxy (oauth2-proxy) whose header is trusted."),
    Setting("auth.proxy_header", "X-Auth-Request-Email", "The header naming the user, read only from trusted_proxies."),
    Setting("auth.proxy_role", "viewer", "Role of a proxy-authenticated user who has no account of their own."),
)

_BY_KEY = {s.key: s for s in SETTINGS}


def setting(key: str) -> Setting:
    """The row of ``key``; a ``KeyError`` is a programming error (a model naming a setting not in the table)."""
    return _BY_KEY[key]


def default(key: str, kind: type[_T]) -> _T:
    """The default of ``key``, typed for a model field (``port: int = default("server.port", int)``)."""
    value = setting(key).default
    if not isinstance(value, kind):
        raise TypeError(f"setting {key}: default {value!r} is not a {kind.__name__}")
    return value


def checked(key: str) -> AfterValidator:
    """The pydantic validator running ``key``'s check, for ``Annotated[type, checked(key)]``."""
    check = setting(key).check
    if check is None:
        raise KeyError(f"setting {key} has no check")
    return AfterValidator(check)
