"""The page templates and the filters they use."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.templating import Jinja2Templates

from tbhub.core.units import format_age, format_size
from tbhub.interfaces.web.markup import render_note

__all__ = ["STATIC", "hub_templates"]

HERE = Path(__file__).parent
STATIC = HERE / "static"


def _timestamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def hub_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["note"] = render_note
    templates.env.filters["size"] = format_size
    templates.env.filters["age"] = format_age
    templates.env.filters["timestamp"] = _timestamp
    return templates
