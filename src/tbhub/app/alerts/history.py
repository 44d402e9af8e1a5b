"""The alerts recorded so far, with each channel's last delivery attempt."""

from __future__ import annotations

import json
from typing import Any

from tbhub.adapters.db.store import StateStore

__all__ = ["alert_history"]


def alert_history(state: StateStore, limit: int = 100) -> list[dict[str, Any]]:
    """The newest alerts, newest first, each with the last delivery attempt per channel (JSON-ready)."""
    out = []
    for a in state.alerts(limit=limit):
        per_channel: dict[str, dict[str, Any]] = {}
        for d in state.deliveries(a.id):
            per_channel[d["channel"]] = {"outcome": d["outcome"], "attempts": d["attempt"], "error": d["error"]}
        out.append(
            {
                "id": a.id,
                "key": a.key,
                "endpoint": a.endpoint,
                "dataset": a.dataset,
                "run": a.run,
                "status": a.status,
                "at": a.at,
                "message": a.message,
                "details": json.loads(a.details),
                "url": a.url,
                "deliveries": per_channel,
            }
        )
    return out
