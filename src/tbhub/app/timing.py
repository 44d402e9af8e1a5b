"""The background loops' default pace: one owner for what ``tbhub serve``'s flags, the web app factory and
the loops themselves default to (a light module: the CLI reads it without importing the loops)."""

from __future__ import annotations

__all__ = ["ALERTS_WARMUP_S", "JOB_INTERVAL_S", "SCAN_INTERVAL_S"]

#: Seconds between background scans of every endpoint (``tbhub serve --scan-interval``).
SCAN_INTERVAL_S = 15.0
#: Seconds between checks for due jobs: retention, usage snapshots (``--job-interval``).
JOB_INTERVAL_S = 30.0
#: Seconds every TensorBoard must be up before the first alert pass (``--alerts-warmup``).
ALERTS_WARMUP_S = 30.0
