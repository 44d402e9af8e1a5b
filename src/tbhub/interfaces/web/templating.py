"""The page templates and the filters they use."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from tbhub.core.units import format_age, format_size
from tbhub.interfaces.web.markup import note_text, render_note

__all__ = ["STATIC", "hub_templates"]

HERE = Path(__file__).parent
STATIC = HERE / "static"


def _when(t: float | None, relative: bool = True) -> Markup:
    """A ``<time>`` element: the age as text and the exact time with its zone as its title; ``hub.js``
    rewrites both in the browser's own time zone and keeps the age current."""
    if t is None:
        return Markup('<span class="dim">never</span>')
    moment = dt.datetime.fromtimestamp(t).astimezone()
    exact = moment.strftime("%Y-%m-%d %H:%M:%S %Z")
    iso = moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    text = format_age(max(0.0, dt.datetime.now().timestamp() - t)) + " ago" if relative else exact
    return Markup('<time datetime="{}" title="{}"{}>{}</time>').format(
        iso, exact, Markup(" data-relative") if relative else Markup(""), text
    )


def hub_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["note"] = render_note
    templates.env.filters["note_text"] = note_text
    templates.env.filters["size"] = format_size
    templates.env.filters["age"] = format_age
    templates.env.filters["when"] = _when
    return templates
