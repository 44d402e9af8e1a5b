"""The base of every config table."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """A table of the config: frozen once loaded, no type coercion (TOML already has types), and an
    unknown key is an error, so a typo is reported instead of silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
