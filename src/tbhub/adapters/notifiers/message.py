"""How an ``Alert`` reads as text: shared by every notification channel.

Invariants:

* Rendering never fails: ``Alert.details`` comes from the status rules, but a missing key, a ``None``
  or a value of the wrong type only drops (or prints as-is) that one fact; it never stops an alert
  from being delivered.
* Output is deterministic for a given alert (no "now", no locale): tests and receivers can compare it.
* Nothing here knows about a channel's secrets: only the alert is rendered.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tbhub.core.models import Alert, RunStatus

__all__ = [
    "Fact",
    "facts",
    "format_duration",
    "format_step",
    "format_time",
    "format_value",
    "isoformat_utc",
    "render_html",
    "render_text",
    "subject",
]

#: How many scalars of a finished run are listed; the engine picks the key ones, this only bounds a
#: misconfigured rule that would list hundreds (Slack allows 10 fields per section anyway).
MAX_SCALARS = 8


@dataclass(frozen=True, slots=True)
class Fact:
    """One labelled fact of an alert (``Duration: 2h 14m``): a Slack field, an email table row."""

    label: str
    value: str


def format_duration(seconds: float | None) -> str:
    """A human duration with its two largest units: ``45s``, ``12m 5s``, ``2h 14m``, ``3d 4h``.

    ``None``, negative or non-finite input gives ``"?"`` rather than an exception.
    """
    if seconds is None or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        return "?"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def format_value(value: Any) -> str:
    """A scalar as people read it: 6 significant digits, ``NaN``/``inf`` spelled out.

    Diverged runs are exactly the ones with NaN and huge values, so those must print, not raise.
    """
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    return str(value)


def format_step(step: Any) -> str:
    """A step with thousands separators (``12,000``); anything else as-is."""
    if isinstance(step, int) and not isinstance(step, bool):
        return f"{step:,}"
    if isinstance(step, float) and step.is_integer():
        return f"{int(step):,}"
    return str(step)


def isoformat_utc(at: float) -> str:
    """``2026-05-09T07:35:25Z``: ISO 8601, UTC, whole seconds (the alert's key, not its time, is its identity)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_time(at: float) -> str:
    """``2026-05-09 07:35 UTC``: for people; UTC because a team spans time zones."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def subject(alert: Alert) -> str:
    """The one-line headline: ``[tbhub] lora/claims-v2/r16 finished``."""
    return f"[tbhub] {alert.title}"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _scalar_fact(tag: str, summary: Any) -> Fact:
    if not isinstance(summary, Mapping):
        return Fact(tag, format_value(summary))
    parts = []
    if "final" in summary:
        parts.append(f"final {format_value(summary['final'])}")
    if "best" in summary:
        best = f"best {format_value(summary['best'])}"
        if summary.get("best_step") is not None:
            best += f" @ step {format_step(summary['best_step'])}"
        parts.append(best)
    return Fact(tag, ", ".join(parts) or "?")


def facts(alert: Alert) -> list[Fact]:
    """The status-specific facts of ``alert.details``, in reading order.

    finished: duration, last step, then final/best of each key scalar (at most ``MAX_SCALARS``);
    diverged: tag, step, value, reason; stalled: idle time. Missing details are skipped.
    """
    details = alert.details if isinstance(alert.details, Mapping) else {}
    out: list[Fact] = []
    if alert.status is RunStatus.FINISHED:
        if "duration_s" in details:
            out.append(Fact("Duration", format_duration(_number(details["duration_s"]))))
        if details.get("last_step") is not None:
            out.append(Fact("Last step", format_step(details["last_step"])))
        scalars = details.get("scalars")
        if isinstance(scalars, Mapping):
            for tag, summary in list(scalars.items())[:MAX_SCALARS]:
                out.append(_scalar_fact(str(tag), summary))
    elif alert.status is RunStatus.DIVERGED:
        for key, label in (("tag", "Tag"), ("step", "Step"), ("value", "Value"), ("reason", "Reason")):
            if details.get(key) is not None:
                value = details[key]
                text = format_step(value) if key == "step" else format_value(value)
                out.append(Fact(label, text))
    elif alert.status is RunStatus.STALLED and "idle_s" in details:
        out.append(Fact("Idle for", format_duration(_number(details["idle_s"]))))
    return out


def render_text(alert: Alert) -> str:
    """The alert as plain text (the email body, Slack's notification fallback)::

        [tbhub] lora/claims-v2/r16 finished
        Training finished after 2h 14m.

        Duration: 2h 14m
        Last step: 12,000
        loss: final 0.123, best 0.101 @ step 9,000

        Endpoint lora, dataset claims-v2, run r16 · 2026-05-09 07:35 UTC
        Open in TensorBoard: https://hub.example/...
    """
    lines = [subject(alert), alert.message.strip() or alert.status.value]
    run_facts = facts(alert)
    if run_facts:
        lines.append("")
        lines.extend(f"{fact.label}: {fact.value}" for fact in run_facts)
    lines.append("")
    lines.append(f"{_where(alert)} · {format_time(alert.at)}")
    if alert.url:
        lines.append(f"Open in TensorBoard: {alert.url}")
    return "\n".join(lines) + "\n"


def _where(alert: Alert) -> str:
    """``Endpoint lora, dataset claims-v2, run r16``; without a dataset (the ``{run}`` layout) no empty one."""
    dataset = f", dataset {alert.dataset}" if alert.dataset else ""
    return f"Endpoint {alert.endpoint}{dataset}, run {alert.run}"


def render_html(alert: Alert) -> str:
    """A small, inline-styled HTML version of ``render_text`` (mail clients ignore style sheets)."""
    esc = html.escape
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{esc(f.label)}</th><td>{esc(f.value)}</td></tr>'
        for f in facts(alert)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family:sans-serif">',
        f"<h2>{esc(alert.title)}</h2>",
        f"<p>{esc(alert.message.strip() or alert.status.value)}</p>",
    ]
    if rows:
        parts.append(f"<table>{rows}</table>")
    parts.append(
        f'<p style="color:#666">{esc(_where(alert))} · {esc(format_time(alert.at))}</p>'
    )
    if alert.url:
        parts.append(f'<p><a href="{esc(alert.url, quote=True)}">Open in TensorBoard</a></p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
